"""The frozen model of what has been loaded: connectors, their auth and operations.

Built once by `_catalog` from validated manifests and never mutated afterwards;
JSON Schema fragments stay plain dicts because validators and clients consume them as such.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp_server._secrets import ValueRef

ParameterLocation = Literal["path", "query", "header", "cookie"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""RFC 9110 §9.2.2: repeating the request has the same effect; drives both tool annotations and retries."""
PATH_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
"""`{name}` in an operation path; the catalog checks them, the request builder expands them."""
JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class NoAuth:
    pass


@dataclass(frozen=True, slots=True)
class BearerAuth:
    token: ValueRef
    scheme: str = "Bearer"


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    location: Literal["header", "query", "cookie"]
    name: str
    value: ValueRef


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: ValueRef
    password: ValueRef


@dataclass(frozen=True, slots=True)
class HeadersAuth:
    headers: Mapping[str, ValueRef]


Auth = NoAuth | BearerAuth | ApiKeyAuth | BasicAuth | HeadersAuth


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: ParameterLocation
    schema: Mapping[str, Any]
    required: bool = False
    description: str | None = None
    style: str | None = None
    explode: bool | None = None

    @property
    def effective_style(self) -> str:
        """OpenAPI's defaults: `simple` for path and header, `form` for query and cookie."""
        if self.style is not None:
            return self.style
        return "simple" if self.location in ("path", "header") else "form"

    @property
    def effective_explode(self) -> bool:
        if self.explode is not None:
            return self.explode
        return self.effective_style == "form"


@dataclass(frozen=True, slots=True)
class Body:
    schema: Mapping[str, Any]
    content_type: str = JSON_CONTENT_TYPE
    required: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `total` bounds the whole call, retries and waits included; `read` is per chunk received."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    """Upper bound on attempts, the first included; 1 disables retries."""
    backoff_base: float = 0.25
    """Full jitter: attempt n sleeps uniform(0, min(backoff_max, backoff_base * 2**n))."""
    backoff_max: float = 8.0
    retry_after_cap: float = 30.0
    """A `Retry-After`/`X-RateLimit-Reset` longer than this is not waited for: the call fails with RATE_LIMITED."""
    idempotency_header: str | None = None
    """When set (e.g. `Idempotency-Key`), POST/PATCH are retried too, with one fresh key per tool call."""
    budget_ratio: float = 0.2
    """Retries per connector stay under this share of its first attempts (plus a small floor)."""


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """How one operation's calls are sent: the connector's settings with the operation's overrides applied."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_response_bytes: int = 5 * 1024 * 1024
    """Decoded body bytes read before the call fails with RESPONSE_TOO_LARGE."""
    max_result_chars: int = 100_000
    """Longer JSON results lose whole array items (with a note); longer text is cut (with a note)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `requests` per `per_seconds`, bursts up to `burst`; callers wait at most `max_wait`."""

    requests: int
    per_seconds: float
    burst: int | None = None
    max_wait: float = 10.0


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Opens after `consecutive_failures`, or when `failure_ratio` of the last `window` calls failed
    (once at least `min_calls` were seen); after `cooldown` seconds one probe call decides."""

    consecutive_failures: int = 5
    failure_ratio: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown: float = 30.0


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    method: HttpMethod
    path: str
    title: str | None = None
    description: str | None = None
    parameters: tuple[Parameter, ...] = ()
    body: Body | None = None
    headers: Mapping[str, ValueRef] = field(default_factory=dict[str, ValueRef])
    annotations: Mapping[str, bool] = field(default_factory=dict[str, bool])
    policy: CallPolicy = field(default_factory=CallPolicy)


@dataclass(frozen=True, slots=True)
class Connector:
    name: str
    base_url: str
    operations: tuple[Operation, ...]
    title: str | None = None
    description: str | None = None
    auth: Auth = field(default_factory=NoAuth)
    headers: Mapping[str, ValueRef] = field(default_factory=dict[str, ValueRef])
    policy: CallPolicy = field(default_factory=CallPolicy)
    """The connector-wide defaults; each operation carries its own merged copy."""
    rate_limit: RateLimit | None = None
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    allow_networks: tuple[str, ...] = ()
    """Private addresses (CIDRs or host names) this connector may reach besides its base URL's own host."""
    source: Path | None = None


@dataclass(frozen=True, slots=True)
class ManifestFault:
    """Why one manifest file was refused: its file, the JSON path of the fault and a one-line reason."""

    file: Path
    json_path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: at {self.json_path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Catalog:
    connectors: tuple[Connector, ...]
    faults: tuple[ManifestFault, ...] = ()
