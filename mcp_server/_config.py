"""Settings, resolved once at start-up from flags, then the environment, then built-in defaults.

Nothing here is read at import time: the CLI (or a test) builds a `Settings` and passes it in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from mcp_server._local_settings import LocalToolSettings
from mcp_server._resources import bundled_dir
from mcp_server._secrets import Secret

ENV_TOOLS = "MCP_CONNECTORS_TOOLS"
ENV_VAULT = "MCP_CONNECTORS_VAULT"
ENV_VAULT_KEY = "MCP_CONNECTORS_VAULT_KEY"
ENV_VAULT_BACKEND = "MCP_CONNECTORS_VAULT_BACKEND"
ENV_ACCOUNTS = "MCP_CONNECTORS_ACCOUNTS"
ENV_AUDIT_LOG = "MCP_CONNECTORS_AUDIT_LOG"
ENV_HTTP_FAST_PATH = "MCP_CONNECTORS_HTTP_FAST_PATH"
ENV_VAULT_MOUNT = "MCP_CONNECTORS_VAULT_MOUNT"
ENV_VAULT_PREFIX = "MCP_CONNECTORS_VAULT_PREFIX"
# The HashiCorp variables are the ones the `vault` CLI itself reads, so an existing Vault login just works.
ENV_HASHICORP_ADDR = "VAULT_ADDR"
ENV_HASHICORP_TOKEN = "VAULT_TOKEN"  # noqa: S105 - the variable's name, not its value
ENV_HASHICORP_NAMESPACE = "VAULT_NAMESPACE"
ENV_HASHICORP_CACERT = "VAULT_CACERT"
ENV_HASHICORP_SKIP_VERIFY = "VAULT_SKIP_VERIFY"
VAULT_BACKENDS = ("file", "hashicorp")
DEFAULT_HASHICORP_MOUNT = "secret"
DEFAULT_HASHICORP_PREFIX = "mcp-connectors/"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_vault_path() -> Path:
    return platformdirs.user_data_path("mcp-connectors") / "vault.json"


def parse_accounts(entries: Sequence[str]) -> dict[str, str]:
    """`CONNECTOR=ACCOUNT` pairs (`*=ACCOUNT` for every connector) → a mapping; ValueError on a malformed one."""
    accounts: dict[str, str] = {}
    for entry in entries:
        connector, _, account = entry.strip().partition("=")
        connector, account = connector.strip(), account.strip()
        if not connector or not _ACCOUNT_RE.fullmatch(account) or not _CONNECTOR_RE.fullmatch(connector):
            raise ValueError(
                f"invalid account choice {entry!r}: write CONNECTOR=ACCOUNT (or *=ACCOUNT), the account being "
                "1 to 64 letters, digits, _ . -"
            )
        accounts[connector] = account
    return accounts


_ACCOUNT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CONNECTOR_RE = re.compile(r"\*|[a-z][a-z0-9_]{0,31}")


def _explicitly_true(value: str | None) -> bool:
    """Go's `strconv.ParseBool` truths, as the `vault` CLI reads VAULT_SKIP_VERIFY; anything else is false."""
    return value is not None and value.strip().lower() in {"1", "t", "true"}


@dataclass(frozen=True, slots=True)
class HashiCorpSettings:
    """Where the `hashicorp` vault backend finds HashiCorp Vault (a KV version 2 secrets engine)."""

    addr: str | None = None
    """`VAULT_ADDR`: the Vault API address, e.g. `https://vault.example.com:8200`. Required by the backend."""

    token: Secret | None = field(default=None, repr=False)
    """`VAULT_TOKEN`: the token sent as `X-Vault-Token`. Required by the backend; never logged or shown."""

    namespace: str | None = None
    """`VAULT_NAMESPACE`: the Vault Enterprise / HCP namespace, sent as `X-Vault-Namespace`; None for the root."""

    mount: str = DEFAULT_HASHICORP_MOUNT
    """`MCP_CONNECTORS_VAULT_MOUNT`: the path the KV v2 secrets engine is mounted at."""

    prefix: str = DEFAULT_HASHICORP_PREFIX
    """`MCP_CONNECTORS_VAULT_PREFIX`: the folder under the mount; secret NAME is `<mount>/data/<prefix>NAME`.

    Always treated as a folder (a trailing `/` is implied); `/` alone means the mount's root."""

    ca_cert: Path | None = None
    """`VAULT_CACERT`: a PEM CA bundle to verify Vault's TLS certificate with, instead of the system's."""

    skip_verify: bool = False
    """`VAULT_SKIP_VERIFY`: disable TLS verification; only an explicit true value (`1`, `t`, `true`) counts."""

    timeout: float = 10.0
    """Seconds to wait for Vault to connect and to answer each request."""


# -- who may call the HTTP transports (see README "Running for a team (HTTP)") ----------------------------
ENV_CLIENTS = "MCP_CONNECTORS_CLIENTS"
ENV_OAUTH_ISSUER = "MCP_CONNECTORS_OAUTH_ISSUER"
ENV_OAUTH_JWKS_URL = "MCP_CONNECTORS_OAUTH_JWKS_URL"
ENV_OAUTH_AUDIENCE = "MCP_CONNECTORS_OAUTH_AUDIENCE"
ENV_OAUTH_TENANT_CLAIM = "MCP_CONNECTORS_OAUTH_TENANT_CLAIM"
ENV_CLIENT_RATE_LIMIT = "MCP_CONNECTORS_CLIENT_RATE_LIMIT"
ENV_CLIENT_CONCURRENCY = "MCP_CONNECTORS_CLIENT_CONCURRENCY"
ENV_CLIENT_STREAMS = "MCP_CONNECTORS_CLIENT_STREAMS"
DEFAULT_CLIENT_RATE_LIMIT = "120/60"
DEFAULT_CLIENT_CONCURRENCY = 8
DEFAULT_CLIENT_STREAMS = 16
_OFF = ("off", "none", "0", "unlimited")


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A token bucket: `requests` calls per `per_seconds`, in bursts of up to `requests`."""

    requests: int
    per_seconds: float

    @classmethod
    def parse(cls, text: str) -> RateSpec | None:
        """`120/60` (120 calls per 60 s), `10` (per 60 s), `off` → None; ValueError otherwise."""
        text = text.strip().lower()
        if text in _OFF:
            return None
        count, slash, seconds = text.partition("/")
        try:
            spec = cls(int(count), float(seconds.removesuffix("s")) if slash else 60.0)
        except ValueError:
            spec = None
        if spec is None or spec.requests < 1 or not 0 < spec.per_seconds < 1e9:
            raise ValueError(f"invalid rate limit {text!r}: write CALLS/SECONDS, e.g. 120/60, or off")
        return spec

    def __str__(self) -> str:
        return f"{self.requests}/{self.per_seconds:g}"


def parse_concurrency(text: str) -> int | None:
    """`8` → 8; `off`/`0` → None (unbounded); ValueError otherwise."""
    text = text.strip().lower()
    if text in _OFF:
        return None
    if not text.isdigit():
        raise ValueError(f"invalid bound {text!r}: a whole number (how many at once), or off")
    return int(text)


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Inbound authentication, authorization and per-client limits of the HTTP transports (never stdio)."""

    clients_path: Path | None = None
    """`MCP_CONNECTORS_CLIENTS`: the static clients file; None means `clients.json` beside the vault.

    While it exists (even empty), every HTTP request but /health, /ready and /.well-known/* needs a token."""

    oauth_issuer: str | None = None
    """`--oauth-issuer` / `MCP_CONNECTORS_OAUTH_ISSUER`: the authorization server whose JWT access tokens are
    accepted (`iss` must equal it). Turns the OAuth 2.1 resource-server mode on, with `oauth_jwks_url`."""

    oauth_jwks_url: str | None = None
    """`--oauth-jwks-url` / `MCP_CONNECTORS_OAUTH_JWKS_URL`: where the issuer publishes its signing keys."""

    oauth_audience: str | None = None
    """`--oauth-audience` / `MCP_CONNECTORS_OAUTH_AUDIENCE`: this server's resource URL, which tokens must name
    in `aud`; default `http://HOST:PORT/mcp` from the bind address (set it behind a proxy)."""

    oauth_tenant_claim: str | None = None
    """`--oauth-tenant-claim` / `MCP_CONNECTORS_OAUTH_TENANT_CLAIM`: a claim whose value is the vault account
    of the token's calls (`*=VALUE`); None: OAuth callers use the server's accounts."""

    oauth_jwks_cooldown: float = 10.0
    """Seconds between JWKS refreshes that a token with an unknown `kid` may trigger."""

    allow_unauthenticated: bool = False
    """`--allow-unauthenticated`: serve a non-loopback bind with no authentication configured."""

    read_only: bool = False
    """`--read-only`: serve only tools whose `readOnlyHint` is true, to every client and transport."""

    client_rate_limit: RateSpec | None = field(default_factory=lambda: RateSpec.parse(DEFAULT_CLIENT_RATE_LIMIT))
    """`MCP_CONNECTORS_CLIENT_RATE_LIMIT`: tool calls per authenticated client unless its record says otherwise."""

    client_concurrency: int | None = DEFAULT_CLIENT_CONCURRENCY
    """`MCP_CONNECTORS_CLIENT_CONCURRENCY`: tool calls one authenticated client may have running at once."""

    client_streams: int | None = DEFAULT_CLIENT_STREAMS
    """`MCP_CONNECTORS_CLIENT_STREAMS`: long-lived streams (SSE sessions, listen and event streams) one
    authenticated client may hold open at once (`_streams.py`); None = no bound."""

    def clients_file(self, vault_path: Path) -> Path:
        return self.clients_path if self.clients_path is not None else vault_path.with_name("clients.json")

    @property
    def oauth(self) -> bool:
        return self.oauth_issuer is not None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **flags: object) -> AccessSettings:
        """Flags given (not None) first, then the environment; ValueError for a malformed value."""

        def pick(name: str, env: str) -> object:
            flag = flags.get(name)
            return flag if flag is not None else (environ.get(env, "").strip() or None)

        values: dict[str, object] = {
            "oauth_issuer": pick("oauth_issuer", ENV_OAUTH_ISSUER),
            "oauth_jwks_url": pick("oauth_jwks_url", ENV_OAUTH_JWKS_URL),
            "oauth_audience": pick("oauth_audience", ENV_OAUTH_AUDIENCE),
            "oauth_tenant_claim": pick("oauth_tenant_claim", ENV_OAUTH_TENANT_CLAIM),
            "allow_unauthenticated": bool(flags.get("allow_unauthenticated")),
            "read_only": bool(flags.get("read_only")),
        }
        clients = pick("clients_path", ENV_CLIENTS)
        if clients is not None:
            values["clients_path"] = Path(str(clients)).expanduser()
        rate = pick("client_rate_limit", ENV_CLIENT_RATE_LIMIT)
        if rate is not None:
            values["client_rate_limit"] = RateSpec.parse(str(rate))
        concurrency = pick("client_concurrency", ENV_CLIENT_CONCURRENCY)
        if concurrency is not None:
            values["client_concurrency"] = parse_concurrency(str(concurrency))
        streams = pick("client_streams", ENV_CLIENT_STREAMS)
        if streams is not None:
            values["client_streams"] = parse_concurrency(str(streams))
        if (values["oauth_issuer"] is None) != (values["oauth_jwks_url"] is None):
            raise ValueError(
                "the OAuth resource-server mode needs both --oauth-issuer and --oauth-jwks-url "
                f"({ENV_OAUTH_ISSUER}, {ENV_OAUTH_JWKS_URL})"
            )
        return cls(**values)  # pyright: ignore[reportArgumentType]


DEFAULT_PAGE_SIZE = 500
"""Tools per `tools/list` page: big enough that clients which ignore `nextCursor` still see typical catalogs whole."""
DEFAULT_DRAIN_TIMEOUT = 10.0
DEFAULT_WATCH_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Settings:
    tools_dirs: tuple[Path, ...]
    """Directories of connector manifests, loaded in this order (a later duplicate name is refused)."""

    vault_path: Path
    """The encrypted vault file; created on the first `vault set`."""

    vault_passphrase: str | None = field(default=None, repr=False)
    """From `MCP_CONNECTORS_VAULT_KEY`; None means the OS keyring or a key file beside the vault."""

    host: str = "127.0.0.1"
    """HTTP bind address. Loopback by default; any other bind must be chosen explicitly."""

    port: int = 8765

    allowed_hosts: tuple[str, ...] = ()
    """Extra host names accepted in the Host header (DNS-rebinding guard), beyond loopback and the bind host."""

    allowed_origins: tuple[str, ...] = ()
    """Extra browser origins (`https://app.example.com`) accepted in the Origin header."""

    include_tools: tuple[str, ...] = ()
    """Globs over tool names: when given, only matching tools are served."""

    exclude_tools: tuple[str, ...] = ()
    """Globs over tool names that are never served."""

    discovery: bool = False
    """Serve `search_tools`, `describe_tool` and `call_tool` instead of every tool (MCP transports)."""

    page_size: int = DEFAULT_PAGE_SIZE
    """Tools per `tools/list` page."""

    allow_networks: tuple[str, ...] = ()
    """Private networks (CIDR) or host names every connector may reach (the SSRF guard refuses them otherwise)."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    """Where `{env: NAME}` manifest values are read from."""

    vault_backend: str = "file"
    """`MCP_CONNECTORS_VAULT_BACKEND`: `file` (the encrypted vault file) or `hashicorp` (HashiCorp Vault).

    Kept as given (lower-cased), not checked here: `open_vault` names the variable when it is neither."""

    hashicorp: HashiCorpSettings = field(default_factory=HashiCorpSettings)
    """The `hashicorp` backend's settings; read from the environment whatever the backend, used only by it."""

    accounts: Mapping[str, str] = field(default_factory=dict[str, str])
    """Connector (or `*`) → account: `{secret: NAME}` reads `NAME@ACCOUNT` (`--account`, `MCP_CONNECTORS_ACCOUNTS`).

    Chosen by whoever runs the server (or, per HTTP client, by its identity), never by a tool argument."""

    audit_log: Path | None = None
    """The credential audit log (JSON lines); None switches it off (`MCP_CONNECTORS_AUDIT_LOG=off`)."""

    # -- operations (HTTP deployment: README "Running in production") --
    stateless: bool = False
    """`--stateless`: Streamable HTTP without sessions, for replicas behind a load balancer; SSE is off."""

    http_fast_path: bool = True
    """Answer Streamable HTTP 2026-07-28 `tools/call` requests without the SDK's per-request machinery
    (`_http_fastpath`, same bytes on the wire); `MCP_CONNECTORS_HTTP_FAST_PATH=off` sends every request
    through the SDK."""

    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    """`--drain-timeout`: seconds a SIGTERM waits for tool calls in flight before they are cancelled."""

    watch_tools: bool = True
    """Reload the tools directories when a file in them changes (`--no-watch` turns it off; SIGHUP always works)."""

    watch_interval: float = DEFAULT_WATCH_INTERVAL
    """`--watch-interval`: seconds between two looks at the tools directories' files."""

    access: AccessSettings = field(default_factory=AccessSettings)
    """Who may call the HTTP transports: client tokens, OAuth, scopes, `--read-only`, per-client limits."""

    local_tools: LocalToolSettings = field(default_factory=LocalToolSettings)
    """`batch_invoke` limits and the webhook event store (`MCP_CONNECTORS_BATCH_*`, `MCP_CONNECTORS_EVENTS_DB`)."""

    @classmethod
    def resolve(
        cls,
        *,
        environ: Mapping[str, str],
        tools_dirs: Sequence[Path] = (),
        vault_path: Path | None = None,
        **overrides: object,
    ) -> Settings:
        """Flags first (non-empty arguments), then environment variables, then defaults."""
        if not tools_dirs:
            from_env = [Path(p).expanduser() for p in environ.get(ENV_TOOLS, "").split(os.pathsep) if p]
            tools_dirs = from_env or [bundled_dir("tools")]
        if vault_path is None:
            env_vault = environ.get(ENV_VAULT)
            vault_path = Path(env_vault).expanduser() if env_vault else default_vault_path()
        passphrase = environ.get(ENV_VAULT_KEY) or None
        # Empty counts as unset throughout, as it does for the passphrase: `VAULT_TOKEN= cmd` is no token.
        token = environ.get(ENV_HASHICORP_TOKEN)
        ca_cert = environ.get(ENV_HASHICORP_CACERT)
        hashicorp = HashiCorpSettings(
            addr=environ.get(ENV_HASHICORP_ADDR, "").strip() or None,
            token=Secret(token) if token else None,
            namespace=environ.get(ENV_HASHICORP_NAMESPACE, "").strip() or None,
            mount=environ.get(ENV_VAULT_MOUNT, "").strip() or DEFAULT_HASHICORP_MOUNT,
            prefix=environ.get(ENV_VAULT_PREFIX, "").strip() or DEFAULT_HASHICORP_PREFIX,
            ca_cert=Path(ca_cert).expanduser() if ca_cert else None,
            skip_verify=_explicitly_true(environ.get(ENV_HASHICORP_SKIP_VERIFY)),
        )
        if "accounts" not in overrides:
            overrides["accounts"] = parse_accounts([e for e in environ.get(ENV_ACCOUNTS, "").split(",") if e.strip()])
        if "audit_log" not in overrides:
            audit = environ.get(ENV_AUDIT_LOG, "").strip()
            if audit.lower() in ("off", "none", "0", "false"):
                overrides["audit_log"] = None
            else:
                overrides["audit_log"] = Path(audit).expanduser() if audit else vault_path.with_name("audit.jsonl")
        overrides.setdefault("vault_backend", environ.get(ENV_VAULT_BACKEND, "").strip().lower() or "file")
        overrides.setdefault("hashicorp", hashicorp)
        if "http_fast_path" not in overrides:
            switch = environ.get(ENV_HTTP_FAST_PATH, "").strip().lower()
            overrides["http_fast_path"] = switch not in ("off", "no", "false", "0", "none", "disabled")
        if "access" not in overrides:
            overrides["access"] = AccessSettings.from_environ(environ)
        if "local_tools" not in overrides:
            overrides["local_tools"] = LocalToolSettings.from_environ(environ)
        return cls(
            tools_dirs=tuple(tools_dirs),
            vault_path=vault_path,
            vault_passphrase=passphrase,
            environ=dict(environ),
            **overrides,  # pyright: ignore[reportArgumentType]
        )
