"""`_exchange` helpers that stand in for httpx2's own."""

from __future__ import annotations

import httpx2
import pytest

from mcp_server._exchange import _charset  # pyright: ignore[reportPrivateUsage]

CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "text/plain; charset=ISO-8859-1",
    'text/html; charset="windows-1252"',
    "text/plain;charset=idna",
    "text/plain; format=flowed; charset=utf-16",
    "text/plain; charset=",
    "application/json; charset=utf-8; charset=latin-1",
    "garbage ;;; charset = utf-8",
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_charset_is_what_httpx2_reads(content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    assert _charset(content_type) == httpx2.Response(200, headers=headers).charset_encoding
