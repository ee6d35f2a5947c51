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
from mcp_server._webhook_model import WebhookSpec

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


@dataclass(frozen=True, slots=True)
class OAuth2ClientCredentials:
    """RFC 6749 §4.4: the server trades its client id and secret for an access token, cached until shortly
    before it expires; a 401 from the API drops the cached token and the call is retried once."""

    token_url: str
    client_id: ValueRef
    client_secret: ValueRef
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    client_auth: Literal["basic", "body"] = "basic"
    """How the client authenticates to the token endpoint: HTTP Basic (RFC 6749's default) or form fields."""
    extra_params: Mapping[str, str] = field(default_factory=dict[str, str])


@dataclass(frozen=True, slots=True)
class OAuth2AuthorizationCode:
    """RFC 6749 §4.1 with PKCE (RFC 7636): `mcp-connectors auth login` obtains the tokens once, interactively;
    they live in the vault record `token_secret` and are refreshed (and rotated) as they expire."""

    authorization_url: str
    token_url: str
    client_id: ValueRef
    token_secret: str
    """Vault record holding the token set as JSON (access and refresh token, expiry)."""
    client_secret: ValueRef | None = None
    scopes: tuple[str, ...] = ()
    client_auth: Literal["basic", "body"] = "body"
    redirect_port: int = 0
    """Port of the loopback callback (`http://127.0.0.1:PORT/callback`); 0 picks a free one."""
    extra_params: Mapping[str, str] = field(default_factory=dict[str, str])
    """Extra query parameters for the authorization URL (e.g. `access_type: offline`)."""


JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]


@dataclass(frozen=True, slots=True)
class JwtAuth:
    """A JWT signed per request with a key from the vault (an HMAC secret or a PEM private key)."""

    algorithm: JwtAlgorithm
    key: ValueRef
    claims: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """Fixed claims (iss, sub, aud, ...); `iat`, `exp` and a fresh `jti` are added per request."""
    lifetime: int = 300
    """Seconds from `iat` to `exp`."""
    key_id: str | None = None
    """`kid` in the JOSE header."""
    header: str = "Authorization"
    scheme: str | None = "Bearer"
    """Prefix before the token in `header`; None sends the bare token."""


HmacAlgorithm = Literal["sha256", "sha384", "sha512", "sha1"]


@dataclass(frozen=True, slots=True)
class HmacAuth:
    """Request signing with a shared secret: key id, timestamp and an HMAC over a canonical string built from the
    request, each in its own header. The defaults are the common `X-API-Key`/`X-Timestamp`/`X-Signature` scheme."""

    key_id: ValueRef
    secret: ValueRef
    algorithm: HmacAlgorithm = "sha256"
    canonical: str = "{method}\n{path}\n{timestamp}\n{body_sha256}"
    """Template over `method`, `path` (with the query), `path_only`, `query`, `timestamp`, `body_sha256`,
    `body_sha512`, `body_md5`, `host`, `key_id`, `nonce`."""
    key_header: str | None = "X-API-Key"
    timestamp_header: str = "X-Timestamp"
    signature_header: str = "X-Signature"
    nonce_header: str | None = None
    signature_encoding: Literal["hex", "base64"] = "hex"
    signature_prefix: str = ""
    """Prepended to the encoded signature (e.g. `sha256=`)."""
    timestamp_format: Literal["unix", "unix_ms", "iso8601"] = "unix"


@dataclass(frozen=True, slots=True)
class SigV4Auth:
    """AWS Signature Version 4, computed over the final request (headers, query and body hash)."""

    access_key_id: ValueRef
    secret_access_key: ValueRef
    region: str
    service: str
    session_token: ValueRef | None = None


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """mTLS: a PEM certificate (chain) and private key from the vault, presented on every connection."""

    certificate: ValueRef
    private_key: ValueRef
    password: ValueRef | None = None


StaticAuth = NoAuth | BearerAuth | ApiKeyAuth | BasicAuth | HeadersAuth
"""Applied by the pure request builder from resolved values."""
DynamicAuth = OAuth2ClientCredentials | OAuth2AuthorizationCode | JwtAuth | HmacAuth | SigV4Auth
"""Applied after the request is built, per attempt: tokens fetched or refreshed, signatures over the final bytes."""
Auth = StaticAuth | DynamicAuth


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: ParameterLocation
    schema: Mapping[str, Any]
    required: bool = False
    description: str | None = None
    style: str | None = None
    explode: bool | None = None
    content_type: str | None = None
    """OpenAPI's `content` form of a parameter: the value is sent as one piece of text of this media type (JSON for
    `application/json` and `+json` types), percent-encoded where the location needs it; `style`/`explode` do not
    apply."""

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


FormStyle = Literal["brackets", "openapi"]
"""How a form-encoded body writes the properties its `encoding` does not name. `brackets` is Stripe's way (nested
keys `a[b]=1`, indexed arrays `items[0][price]=x`), the default for hand-written manifests; `openapi` is OpenAPI's
default for form bodies (each property a query parameter of style `form`, exploded), what imported documents use."""


@dataclass(frozen=True, slots=True)
class PropertyEncoding:
    """OpenAPI's Encoding Object for one property of a form-encoded or multipart body.

    In a form-encoded body, `style`/`explode` (query styles: `form`, `spaceDelimited`, `pipeDelimited`,
    `deepObject`) win over `content_type`, as OpenAPI says; with neither, the body's `form_style` applies. In a
    multipart body only `content_type` counts: a JSON type makes the property one JSON part, and it is the
    Content-Type of a file part.
    """

    content_type: str | None = None
    style: str | None = None
    explode: bool | None = None


@dataclass(frozen=True, slots=True)
class Body:
    schema: Mapping[str, Any]
    content_type: str = JSON_CONTENT_TYPE
    required: bool = False
    description: str | None = None
    form_style: FormStyle = "brackets"
    encoding: Mapping[str, PropertyEncoding] = field(default_factory=dict[str, PropertyEncoding])
    """Per-property overrides, by body property name (the original name, not the tool argument's)."""


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


JsonPointer = str
"""RFC 6901: `""` is the whole document, `/data/0/id` a member inside it. Where the manifest points into a response."""

PaginationStyle = Literal["cursor", "offset", "link", "keyset"]
DEFAULT_MAX_ITEMS = 1000
DEFAULT_MAX_PAGES = 10


@dataclass(frozen=True, slots=True)
class Pagination:
    """How a list operation pages, so every list tool answers `{"has_more", "next_page", "items"}` and can follow
    pages itself (`all_pages`).

    - `cursor`: the request parameter `cursor_param` takes a cursor, read from the last item (`cursor_field`, Stripe's
      `starting_after` = the last id) or from the body (`next_cursor`).
    - `offset`: `offset_param` takes the index of the first item (Frappe's `limit_start`), `limit_param` the page size.
    - `link`: the `Link` header's `rel="next"` URL (RFC 8288, GitHub); its `cursor_param` query value is the next page.
    - `keyset`: the results are sorted by `keys` (fields of each item); the next page starts after the last item's key
      tuple. The tool gets an opaque `cursor_param` argument; `set` writes the request parameters from the key.
    """

    style: PaginationStyle
    items: JsonPointer = ""
    """Where the array of items is in the body; `""` when the body is the array."""
    cursor_param: str | None = None
    cursor_field: JsonPointer | None = None
    """Cursor style: the cursor is this member of the last item."""
    next_cursor: JsonPointer | None = None
    """Cursor style: the cursor is this member of the body (null or absent on the last page)."""
    has_more: JsonPointer | None = None
    """A boolean in the body saying whether more items follow; otherwise the style decides."""
    offset_param: str | None = None
    limit_param: str | None = None
    default_limit: int | None = None
    """The page size the API uses when `limit_param` is not given."""
    lookahead: bool = False
    """Ask for one item more than the page size: `has_more` is then certain, and the extra item is not returned."""
    keys: tuple[JsonPointer, ...] = ()
    start: tuple[Any, ...] = ()
    """Keyset style: the key before the first item, per key a literal or `{"argument": NAME}`."""
    set: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """Arguments the pagination writes on every page and the tool does not offer; `{"key": N}` inside a value is the
    N-th key of the last item seen (keyset), `{"argument": NAME}` a tool argument."""
    max_items: int = DEFAULT_MAX_ITEMS
    max_pages: int = DEFAULT_MAX_PAGES
    """`all_pages` stops at whichever of these comes first (and at the call's deadline), saying so."""


@dataclass(frozen=True, slots=True)
class Argument:
    """A tool argument that is not sent as it is: it feeds the pagination (`start`) or picks a variant (`when`)."""

    name: str
    schema: Mapping[str, Any]
    required: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    """Another request the same tool sends when the arguments match `when` (Stripe's cancel: DELETE now, or an update
    with `cancel_at_period_end` for later). Name, descriptions, policy and pagination stay the operation's."""

    when: Mapping[str, Any]
    """Argument name → value; every pair must match (an absent argument counts as its schema's default)."""
    operation: Operation
    set: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """Arguments of this request with fixed values, not offered by the tool."""


@dataclass(frozen=True, slots=True)
class ErrorFormat:
    """Where an API's error body keeps its parts, each as JSON pointers tried in order (the first that holds a value
    wins; a pointer descends into JSON text embedded in a string, as in Frappe's `_server_messages`).

    A failed call then reads `<title>: <code> (<type>): <message>`, with `code`, `type` and every `details` field in
    the error's details."""

    message: tuple[JsonPointer, ...]
    code: tuple[JsonPointer, ...] = ()
    type: tuple[JsonPointer, ...] = ()
    details: Mapping[str, tuple[JsonPointer, ...]] = field(default_factory=dict[str, tuple[JsonPointer, ...]])


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
    base_url: str | None = None
    """This operation's own server (OpenAPI's operation or path item `servers`), used instead of the connector's;
    the SSRF guard lets its host through like the connector's."""
    output_schema: Mapping[str, Any] | None = None
    """JSON Schema (2020-12, self-contained) of the result: the whole JSON body, or one item when `pagination` is set
    (the tool's `outputSchema` then wraps it in the page object)."""
    pagination: Pagination | None = None
    arguments: tuple[Argument, ...] = ()
    variants: tuple[Variant, ...] = ()


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
    client_certificate: ClientCertificate | None = None
    """mTLS, combined with any `auth` (`auth: {type: mtls}` in a manifest is this alone)."""
    ca_certificate: str | None = None
    """PEM of a private CA this connector's server certificates are trusted under, besides the system's."""
    allow_networks: tuple[str, ...] = ()
    """Private addresses (CIDRs or host names) this connector may reach besides its base URL's own host."""
    webhooks: WebhookSpec | None = None
    """Deliveries to `POST /webhooks/<name>`: signature check, event ids, retention (`_webhook_model`)."""
    source: Path | None = None
    error_format: ErrorFormat | None = None
    base_url_unset: str | None = None
    """The environment variable `base_url: {env: NAME}` names when it was unset at load time (and no default was
    given): the connector is listed, and each call fails with AUTH_MISSING naming the variable."""
    document: str | None = None
    """URI of the OpenAPI document the operations were imported from (`openapi:`); the start-up snapshot
    (`_startup_snapshot`) watches it besides the tools directories."""


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
