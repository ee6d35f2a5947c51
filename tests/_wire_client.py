"""A raw HTTP/1.1 client for bad-input tests: exact bytes out, a deadline on every exchange.

httpx normalises what it sends (Host, Content-Length, header case, body encoding); the wire tests
need to send exactly what a broken or hostile client would, and to notice a server that hangs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEADLINE = 15.0
"""Seconds any one exchange may take before the test calls it a hang."""


class Hang(AssertionError):
    """The server did not answer within the deadline."""


@dataclass
class WireResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    streaming: bool = False
    raw_headers: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def exchange(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    host: str | None = "default",
    deadline: float = DEADLINE,
    content_length: bool = True,
    read_stream: bool = False,
) -> WireResponse:
    """Send one request with exactly these headers (plus Host and Content-Length unless told otherwise).

    A `text/event-stream` answer is returned as soon as its headers arrive (`streaming=True`), since
    such a stream may be open-ended; with `read_stream`, it is read to its end (`Hang` if it does not
    end before the deadline: the stream answering a POST must close after the response).
    """
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    lines = [f"{method} {path} HTTP/1.1"]
    if host == "default":
        lines.append(f"Host: 127.0.0.1:{port}")
    elif host is not None:
        lines.append(f"Host: {host}")
    names = {name.lower() for name, _ in items}
    if content_length and body and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(body))))
    items.append(("Connection", "close"))
    lines += [f"{name}: {value}" for name, value in items]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    end = time.monotonic() + deadline
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
        with contextlib.suppress(OSError):  # the server may answer (413) and close before taking the whole body
            sock.sendall(request)
        t0 = time.monotonic()
        r = _read_response(sock, end, read_stream)
        if os.environ.get("SLOW_LOG") and time.monotonic() - t0 > 0.5:
            print("SLOW", round(time.monotonic() - t0, 2), method, path, items, body[:150], r.status, r.body[:200])
        return r


def _recv(sock: socket.socket, end: float) -> bytes:
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise Hang("no complete answer before the deadline")
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise Hang("no complete answer before the deadline") from None
    except ConnectionResetError:
        return b""


def _read_response(sock: socket.socket, end: float, read_stream: bool = False) -> WireResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock, end)
        if not chunk:
            raise AssertionError(f"connection closed without a complete answer: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    raw_headers = [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in header_lines)]
    headers = dict(raw_headers)
    if headers.get("content-type", "").startswith("text/event-stream"):
        if read_stream:
            while chunk := _recv(sock, end):
                rest += chunk
            if headers.get("transfer-encoding", "").lower() == "chunked":
                rest = _dechunk(rest)
        return WireResponse(status, headers, rest, streaming=True, raw_headers=raw_headers)
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = _recv(sock, end)
            if not chunk:
                break
            rest += chunk
        return WireResponse(status, headers, rest[:length], raw_headers=raw_headers)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = _recv(sock, end)
            if not chunk:
                break
            rest += chunk
        return WireResponse(status, headers, _dechunk(rest), raw_headers=raw_headers)
    while chunk := _recv(sock, end):
        rest += chunk
    return WireResponse(status, headers, rest, raw_headers=raw_headers)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def sse_data(stream: bytes) -> list[str]:
    """The `data` of every event in an SSE body (pings and comments skipped)."""
    events: list[str] = []
    for block in stream.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].strip() for line in block.split("\n") if line.startswith("data:")]
        if data and any(data):
            events.append("\n".join(data))
    return events


def is_jsonrpc_error(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body.get("jsonrpc") == "2.0"
        and "id" in body
        and isinstance(body.get("error"), dict)
        and isinstance(body["error"].get("code"), int)
        and isinstance(body["error"].get("message"), str)
    )


def is_rest_error(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error", "message", "details"}
        and body["error"]
        in ("bad_request", "unauthorized", "forbidden", "not_found", "rate_limit_exceeded", "internal_error")
        and isinstance(body["message"], str)
        and isinstance(body["details"], dict)
    )


class SseSession:
    """A legacy HTTP+SSE session on a raw socket: the stream, its message endpoint, and reading answers."""

    def __init__(self, port: int, deadline: float = DEADLINE) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=deadline)
        self.sock.sendall(
            f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode("latin-1")
        )
        self._buffer = b""
        self._raw = b""  # the stream as received (chunked on the wire)
        self._plain = b""  # de-chunked, not yet consumed
        end = time.monotonic() + deadline
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += _recv(self.sock, end)
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0], head
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        event, data = self.next_event(deadline)
        assert event == "endpoint", (event, data)
        self.endpoint = data

    def next_event(self, deadline: float = DEADLINE) -> tuple[str, str]:
        """The next SSE event (name, data), skipping pings; `Hang` if none comes in time."""
        end = time.monotonic() + deadline
        while True:
            text = self._text()
            sep = "\r\n\r\n" if "\r\n\r\n" in text else "\n\n"
            if sep in text:
                block, _, _ = text.partition(sep)
                self._consume(len((block + sep).encode()))
                name, data = "message", []
                for line in block.replace("\r\n", "\n").split("\n"):
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                if data or name != "message":
                    return name, "\n".join(data)
                continue
            self._raw += _recv(self.sock, end)

    def _text(self) -> str:
        if self._buffer:
            self._raw += self._buffer
            self._buffer = b""
        if self.chunked:
            while True:
                size_line, sep, rest = self._raw.partition(b"\r\n")
                if not sep:
                    break
                size = int(size_line.split(b";")[0] or b"0", 16)
                if len(rest) < size + 2:
                    break
                self._plain += rest[:size]
                self._raw = rest[size + 2 :]
        else:
            self._plain += self._raw
            self._raw = b""
        return self._plain.decode("utf-8", errors="replace")

    def _consume(self, count: int) -> None:
        self._plain = self._plain[count:]

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> WireResponse:
        sent = {"Content-Type": "application/json", **(headers or {})}
        return exchange(self.port, "POST", self.endpoint, sent, body)

    def call(self, method: str, params: dict[str, Any] | None = None, request_id: int | str = 1) -> dict[str, Any]:
        """A JSON-RPC request over the session; its answer from the stream."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        response = self.post(json.dumps(message).encode())
        assert response.status == 202, (response.status, response.body)
        while True:
            event, data = self.next_event()
            if event == "message":
                answer = json.loads(data)
                if answer.get("id") == request_id:
                    return answer

    def initialize(self) -> None:
        answer = self.call(
            "initialize",
            {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "wire-test", "version": "1"}},
            request_id=0,
        )
        assert "result" in answer, answer
        notified = self.post(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        assert notified.status == 202

    def close(self) -> None:
        self.sock.close()


def wire_server_env(base: Path, upstream_url: str) -> dict[str, str]:
    """Environment for a server process with the echo connectors (and their secrets) on the fake upstream."""
    from mcp_server._vault import Vault
    from tests.conftest import API_KEY, PASSPHRASE, PASSWORD, SECRET, auth_manifests, echo_manifest

    tools = base / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    (tools / "echo.yaml").write_text(echo_manifest(upstream_url))
    for name, text in auth_manifests(upstream_url).items():
        (tools / f"{name}.yaml").write_text(text)
    vault = Vault(base / "vault.json", passphrase=PASSPHRASE, use_keyring=False)
    vault.set("echo_token", SECRET)
    vault.set("api_key", API_KEY)
    vault.set("password", PASSWORD)
    env = dict(os.environ)
    env.update(
        {
            "MCP_CONNECTORS_VAULT": str(base / "vault.json"),
            "MCP_CONNECTORS_VAULT_KEY": PASSPHRASE,
            "MCP_CONNECTORS_TOOLS": str(tools),
            "ECHO_ENV_TOKEN": "env-token-for-wire-tests",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
