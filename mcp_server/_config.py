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

from mcp_server._resources import bundled_dir
from mcp_server._secrets import Secret

ENV_TOOLS = "MCP_CONNECTORS_TOOLS"
ENV_VAULT = "MCP_CONNECTORS_VAULT"
ENV_VAULT_KEY = "MCP_CONNECTORS_VAULT_KEY"
ENV_VAULT_BACKEND = "MCP_CONNECTORS_VAULT_BACKEND"
ENV_ACCOUNTS = "MCP_CONNECTORS_ACCOUNTS"
ENV_AUDIT_LOG = "MCP_CONNECTORS_AUDIT_LOG"
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

    page_size: int = 500
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
        return cls(
            tools_dirs=tuple(tools_dirs),
            vault_path=vault_path,
            vault_passphrase=passphrase,
            environ=dict(environ),
            **overrides,  # pyright: ignore[reportArgumentType]
        )
