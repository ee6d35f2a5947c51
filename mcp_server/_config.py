"""Settings, resolved once at start-up from flags, then the environment, then built-in defaults.

Nothing here is read at import time: the CLI (or a test) builds a `Settings` and passes it in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from mcp_server._resources import bundled_dir

ENV_TOOLS = "MCP_CONNECTORS_TOOLS"
ENV_VAULT = "MCP_CONNECTORS_VAULT"
ENV_VAULT_KEY = "MCP_CONNECTORS_VAULT_KEY"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_vault_path() -> Path:
    return platformdirs.user_data_path("mcp-connectors") / "vault.json"


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
        return cls(
            tools_dirs=tuple(tools_dirs),
            vault_path=vault_path,
            vault_passphrase=passphrase,
            environ=dict(environ),
            **overrides,  # pyright: ignore[reportArgumentType]
        )
