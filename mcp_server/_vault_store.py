"""The secret store the settings name (`open_vault`), without the server's heavier modules: the vault and auth
commands of the CLI open it too, and should start quickly."""

from __future__ import annotations

from mcp_server._config import ENV_VAULT_BACKEND, VAULT_BACKENDS, Settings
from mcp_server._errors import VaultError
from mcp_server._secrets import SecretStore
from mcp_server._vault import Vault
from mcp_server._vault_hashicorp import HashiCorpVault

__all__ = ["open_vault"]


def open_vault(settings: Settings) -> SecretStore:
    """The store `settings.vault_backend` names; does no I/O, so problems surface on first use.

    Raises `VaultError` only for an unknown backend name.
    """
    if settings.vault_backend == "file":
        return Vault(settings.vault_path, passphrase=settings.vault_passphrase)
    if settings.vault_backend == "hashicorp":
        return HashiCorpVault(settings.hashicorp)  # imports hvac on first use, so the extra stays optional
    raise VaultError(
        f"{ENV_VAULT_BACKEND}={settings.vault_backend!r} is not a vault backend: use one of "
        f"{', '.join(VAULT_BACKENDS)}."
    )
