"""Keep secret values out of everything that leaves the process.

A `Redactor` scrubs one call's secrets from its result and error; `InFlightSecrets`
plus `RedactingFilter` scrub the secrets of calls in progress from log records,
so a library that logs a URL with an API key in its query string cannot leak it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Generator, Iterable
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4
"""Shorter values are not redacted: scrubbing every "abc" would mangle results and protect nothing."""


def _lower_hex(quoted: str) -> str:
    """`%2F` → `%2f`: percent-encoding is case-insensitive and some servers echo it lower-cased."""
    return re.sub(r"%[0-9A-F]{2}", lambda match: match.group(0).lower(), quoted)


def _variants(secret: str) -> frozenset[str]:
    """The forms a secret takes on the wire: as is, URL-encoded, JSON-escaped, base64."""
    quoted = quote(secret, safe="")
    forms = {
        secret,
        quoted,
        _lower_hex(quoted),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # JSON encoders that escape the solidus (PHP's)
        base64.b64encode(secret.encode()).decode(),
        *_embedded_base64(secret.encode()),
    }
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


_EMBEDDED_MIN_CHARS = 8
"""Shorter stable runs would also match unrelated base64 text by chance."""


def _embedded_base64(data: bytes) -> set[str]:
    """The characters a secret always contributes to a longer base64 or base64url text (a JWT, a Basic header).

    Inside a longer text the secret starts at byte offset 0, 1 or 2 of a 3-byte group; for each offset the
    characters that encode only the secret's own bits are the same whatever surrounds it. Those runs are
    what is matched (and replaced): the neighbouring characters mix in the surrounding bytes.
    """
    forms: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii").rstrip("=")
        start = -(-offset * 8 // 6)  # the first character whose 6 bits all belong to the secret
        end = (offset + len(data)) * 8 // 6  # characters after this one mix in what follows
        run = encoded[start:end]
        if len(run) >= _EMBEDDED_MIN_CHARS:
            forms.add(run)
            forms.add(run.replace("+", "-").replace("/", "_"))
    return forms


class Redactor:
    """Replaces every known form of the given secrets with `[REDACTED]`."""

    __slots__ = ("_forms",)

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                # A call's secrets are in flight while it runs: their forms were computed once, when the first
                # call holding them began (a dozen encodings cost more than the scrubbing), and are dropped
                # when the last one ends, so no value outlives the calls that use it.
                forms |= IN_FLIGHT.forms_of(secret) or _variants(secret)
        # Longest first, so a secret that contains another is replaced whole.
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, value: str) -> str:
        for form in self._forms:
            if form in value:
                value = value.replace(form, REDACTED)
        return value

    def contains_secret(self, value: str) -> bool:
        return any(form in value for form in self._forms)

    def value(self, value: Any) -> Any:
        """A copy of a parsed JSON value with secrets scrubbed from strings, keys and numbers."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        if isinstance(value, list):
            return [self.value(item) for item in value]  # pyright: ignore[reportUnknownVariableType]
        if isinstance(value, int | float) and not isinstance(value, bool) and self.contains_secret(str(value)):
            return REDACTED
        return value


class InFlightSecrets:
    """Secrets of the calls now running, counted so overlapping calls with one secret work."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._forms: dict[str, frozenset[str]] = {}
        self._redactor = Redactor(())

    def forms_of(self, secret: str) -> frozenset[str] | None:
        """The forms of a secret some call holds now; None for one no call holds."""
        return self._forms.get(secret)

    @contextmanager
    def holding(self, secrets: Iterable[str]) -> Generator[None]:
        held = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH]
        if not held:
            yield
            return
        with self._lock:
            new = [s for s in dict.fromkeys(held) if s not in self._counts]
            self._counts.update(held)
            if new:  # concurrent calls with the same credentials share one redactor
                self._forms.update((s, _variants(s)) for s in new)
                self._redactor = Redactor(self._counts)
        try:
            yield
        finally:
            with self._lock:
                self._counts.subtract(held)
                gone = [s for s in dict.fromkeys(held) if self._counts[s] <= 0]
                if gone:
                    self._counts = +self._counts
                    for s in gone:
                        self._forms.pop(s, None)
                    self._redactor = Redactor(self._counts)

    @property
    def redactor(self) -> Redactor:
        return self._redactor


IN_FLIGHT = InFlightSecrets()


class RedactingFilter(logging.Filter):
    """Scrub in-flight secrets from a record's message and traceback before any handler sees it."""

    def __init__(self, in_flight: InFlightSecrets = IN_FLIGHT) -> None:
        super().__init__()
        self._in_flight = in_flight

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._in_flight.redactor
        if not redactor:
            return True
        message = record.getMessage()
        if redactor.contains_secret(message):
            record.msg = redactor.text(message)
            record.args = None
        if record.exc_info:
            record.exc_text = redactor.text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
