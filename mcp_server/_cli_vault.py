"""`mcp-connectors vault set|list|delete|rotate-key|export|import`: the secrets in the vault.

No value, key or passphrase is ever printed or taken from the command line: values come from stdin or a
hidden prompt, passphrases from an environment variable or a hidden prompt.
"""

# This module is the `vault` part of `_cli` and uses its private helpers (`_add_common`, `_settings`, `_fail`).
# pyright: reportPrivateUsage=false

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from mcp_server._errors import VaultError
from mcp_server._secrets import SecretStore
from mcp_server._vault import PASSPHRASE_ENV, Rotation, Vault, validate_secret_name
from mcp_server._vault_bundle import BUNDLE_KEY_ENV, export_bundle, import_bundle
from mcp_server._vault_store import open_vault

__all__ = ["NEW_PASSPHRASE_ENV", "add_vault_parser", "cmd_vault"]

NEW_PASSPHRASE_ENV: Final = "MCP_CONNECTORS_NEW_VAULT_KEY"  # noqa: S105 - the variable's name, not its value

_ROTATE_DESCRIPTION = f"""\
Give the vault a new master key. Every secret's data key is re-wrapped under the new key; the values
themselves are not re-encrypted. A key file or keyring vault gets a new random key in the same place.
A passphrase vault needs a new passphrase: from ${NEW_PASSPHRASE_ENV} (or the variable named by
--passphrase-from-env), else a hidden prompt asked twice. --new-passphrase moves a key file or keyring
vault to a passphrase the same way.

Safe to interrupt: the vault opens with all its secrets at every point, and running rotate-key again
completes an interrupted rotation.
"""

_EXPORT_DESCRIPTION = f"""\
Write every secret of the vault to FILE, sealed under a passphrase (scrypt + AES-256-GCM), to move
them to another machine with `vault import`. The passphrase comes from ${BUNDLE_KEY_ENV}, else a
hidden prompt asked twice. FILE is written with mode 0600 and is never overwritten without --force.
"""

_IMPORT_DESCRIPTION = f"""\
Add the secrets of a bundle written by `vault export` to this vault, in one atomic write. The passphrase
comes from ${BUNDLE_KEY_ENV}, else a hidden prompt. A damaged bundle or a wrong passphrase imports
nothing. A secret the vault already holds is kept unless --overwrite.
"""


class _Usage(Exception):
    """A command that cannot run as given: one line on stderr, exit status 2."""


# ---------------------------------------------------------------------------------------------- parser


def add_vault_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mcp_server import _cli as cli  # here, not at the top: `_cli` imports this module

    vault = commands.add_parser("vault", help="manage stored secrets", description="Manage the encrypted vault.")
    actions = vault.add_subparsers(dest="vault_command", required=True, metavar="ACTION")
    vault_set = actions.add_parser(
        "set",
        help="store a secret (value from stdin, or a hidden prompt)",
        description="Store a secret. The value is read from stdin when it is piped (one trailing newline is "
        "stripped), otherwise from a hidden prompt. It is never taken from the command line.",
    )
    vault_set.add_argument("name", help="secret name, as manifests reference it: {secret: NAME}")
    cli._add_common(vault_set, tools=False)
    vault_list = actions.add_parser("list", help="list secret names (never values)")
    cli._add_common(vault_list, tools=False)
    vault_delete = actions.add_parser("delete", help="delete a secret")
    vault_delete.add_argument("name")
    cli._add_common(vault_delete, tools=False)

    rotate = actions.add_parser(
        "rotate-key",
        help="replace the master key (re-wraps every secret's data key)",
        description=_ROTATE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rotate.add_argument(
        "--new-passphrase",
        action="store_true",
        help=f"protect the vault with a new passphrase (${NEW_PASSPHRASE_ENV} or a prompt) from now on",
    )
    rotate.add_argument(
        "--passphrase-from-env",
        metavar="VAR",
        help=f"read the new passphrase from the environment variable VAR instead of ${NEW_PASSPHRASE_ENV} "
        "(implies --new-passphrase)",
    )
    cli._add_common(rotate, tools=False)

    export = actions.add_parser(
        "export",
        help="seal every secret into a passphrase-protected file",
        description=_EXPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("file", type=Path, help="bundle file to write")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    cli._add_common(export, tools=False)

    importer = actions.add_parser(
        "import",
        help="add the secrets of an exported bundle",
        description=_IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    importer.add_argument("file", type=Path, help="bundle file written by `vault export`")
    importer.add_argument("--overwrite", action="store_true", help="replace secrets the vault already holds")
    importer.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="import only this secret (repeatable)"
    )
    cli._add_common(importer, tools=False)


# ---------------------------------------------------------------------------------------------- commands


def cmd_vault(args: argparse.Namespace) -> int:
    from mcp_server import _cli as cli

    vault = open_vault(cli._settings(args))
    try:
        return _ACTIONS[args.vault_command](args, vault)
    except _Usage as exc:
        return cli._fail(str(exc), 2)
    except VaultError as exc:
        return cli._fail(exc.message)


def _cmd_set(args: argparse.Namespace, vault: SecretStore) -> int:
    try:
        validate_secret_name(args.name)
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    value = _read_secret_value(args.name)
    if not value:
        raise VaultError("empty value; nothing stored")
    vault.set(args.name, value)
    _say(f"stored {args.name} in {_where(vault)}")
    return 0


def _cmd_list(args: argparse.Namespace, vault: SecretStore) -> int:
    vault.check()  # names need no key, but a user listing with the wrong key should hear about it
    for name in vault.names():
        print(name)
    return 0


def _cmd_delete(args: argparse.Namespace, vault: SecretStore) -> int:
    if not vault.delete(args.name):
        raise VaultError(f"no secret named {args.name!r} in {_where(vault)}")
    _say(f"deleted {args.name}")
    return 0


def _cmd_rotate_key(args: argparse.Namespace, vault: SecretStore) -> int:
    if not isinstance(vault, Vault):
        raise VaultError(f"rotate-key replaces the key of a vault file; {vault.describe()} manages its own keys.")
    source = vault.key_source()
    if source is None:
        raise VaultError(f"There is no vault file at {vault.path}, so there is no key to rotate.")
    switching = bool(args.new_passphrase or args.passphrase_from_env)
    new_passphrase = None
    if source == "scrypt" or switching:
        new_passphrase = _passphrase(
            args.passphrase_from_env or NEW_PASSPHRASE_ENV, "New vault passphrase", confirm=True
        )
    _report_rotation(vault, vault.rotate_key(new_passphrase=new_passphrase))
    return 0


def _report_rotation(vault: Vault, rotation: Rotation) -> None:
    if rotation.resumed:
        records = _count(rotation.records, "record")
        _say(f"completed an interrupted rotation of {vault.path}: {records} under the new key")
    else:
        _say(f"rotated the master key of {_count(rotation.records, 'record')} in {vault.path}")
    if rotation.source == "keyfile":
        _say(f"the key is in {vault.key_file}; back it up in place of the old one, which opens nothing any more")
    elif rotation.source == "scrypt":
        _say(
            f"the vault now opens only with the new passphrase: set {PASSPHRASE_ENV} to it wherever this vault "
            "is used (shells, MCP client configurations, services)"
        )


def _cmd_export(args: argparse.Namespace, vault: SecretStore) -> int:
    target: Path = args.file
    if target.exists() and not args.force:
        raise VaultError(f"{target} already exists; pass --force to replace it. Nothing was written.")
    vault.check()  # a wrong vault key is reported before asking for a bundle passphrase
    if not vault.names():
        raise VaultError(f"{_where(vault)} holds no secrets; nothing to export.")
    passphrase = _passphrase(BUNDLE_KEY_ENV, "Passphrase for the bundle", confirm=True)
    names = export_bundle(vault, target, passphrase, force=args.force)
    _say(f"exported {_count(len(names), 'secret')} from {_where(vault)} to {target}")
    _say(f"import them elsewhere with: mcp-connectors vault import {target.name} (the same passphrase)")
    return 0


def _cmd_import(args: argparse.Namespace, vault: SecretStore) -> int:
    for name in args.only:
        try:
            validate_secret_name(name)
        except ValueError as exc:
            raise _Usage(f"--only: {exc}") from None
    if not args.file.is_file():
        raise VaultError(f"Cannot read bundle {args.file}: no such file. Nothing was imported.")
    vault.check()  # a wrong vault key is reported before asking for the bundle passphrase
    passphrase = _passphrase(BUNDLE_KEY_ENV, "Passphrase of the bundle", confirm=False)
    result = import_bundle(vault, args.file, passphrase, overwrite=args.overwrite, only=args.only)
    _say(f"imported {_count(len(result.imported), 'secret')} into {_where(vault)}: {_listed(result.imported)}")
    if result.skipped:
        _say(
            f"kept {_count(len(result.skipped), 'secret')} the vault already held (pass --overwrite to replace "
            f"them): {_listed(result.skipped)}"
        )
    return 0


_ACTIONS: Final[dict[str, Callable[[argparse.Namespace, SecretStore], int]]] = {
    "set": _cmd_set,
    "list": _cmd_list,
    "delete": _cmd_delete,
    "rotate-key": _cmd_rotate_key,
    "export": _cmd_export,
    "import": _cmd_import,
}


# ---------------------------------------------------------------------------------------------- input


def _read_secret_value(name: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"Value for {name} (input hidden): ")
    value = sys.stdin.read()
    if value.endswith("\r\n"):
        return value[:-2]
    return value.removesuffix("\n")


def _passphrase(variable: str, prompt: str, *, confirm: bool) -> str:
    """A passphrase from `variable`, else a hidden prompt (asked twice with `confirm`); never from argv."""
    from_env = os.environ.get(variable)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise _Usage(f"set {variable} to the passphrase, or run this in a terminal to be asked for it")
    first = getpass.getpass(f"{prompt} (input hidden): ")
    if not first:
        raise _Usage("the passphrase is empty; nothing was changed")
    if confirm and getpass.getpass(f"{prompt} again: ") != first:
        raise VaultError("the two passphrases differ; nothing was changed")
    return first


# ---------------------------------------------------------------------------------------------- output


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _where(vault: SecretStore) -> str:
    # The vault file's path alone, as `vault set` has always said; other stores describe themselves.
    return str(vault.path) if isinstance(vault, Vault) else vault.describe()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _listed(names: list[str]) -> str:
    return ", ".join(names) if names else "none"
