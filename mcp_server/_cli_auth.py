"""`mcp-connectors auth login|logout|status`: the interactive OAuth login of `oauth2_authorization_code`
connectors, and the token set it leaves in the vault.

The token set lives in the vault record the manifest names (`token_secret`), or `TOKEN_SECRET@ACCOUNT` with
`--account`, so one connector can hold several identities. Nothing here ever prints a token.
"""

# This module is the `auth` part of `_cli` and uses its private helpers (`_add_common`, `_settings`, `_fail`).
# pyright: reportPrivateUsage=false

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio

from mcp_server._config import parse_accounts
from mcp_server._errors import AuthMissing, ConnectorsError
from mcp_server._secrets import SecretStore, ValueRef

# The catalog, the models and the OAuth client are imported where they are used: `_cli` imports this module
# for every command, and the light ones (`vault`, `clients`, `audit`) should not pay for them.
if TYPE_CHECKING:
    from mcp_server._model import OAuth2AuthorizationCode
    from mcp_server._oauth import TokenSet
from mcp_server._vault_store import open_vault

__all__ = ["add_auth_parser", "cmd_auth"]

_DESCRIPTION = """\
Log in to connectors whose manifest uses `auth: {type: oauth2_authorization_code}`. `login` prints an
authorization URL (and opens it in a browser), waits for the redirect to http://127.0.0.1:PORT/callback and
stores the tokens in the vault; the server then refreshes them as they expire.
"""


def add_auth_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mcp_server import _cli as cli  # here, not at the top: `_cli` imports this module

    auth = commands.add_parser(
        "auth",
        help="log in to OAuth (authorization code) connectors",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")

    login_parser = actions.add_parser(
        "login",
        help="authorize in a browser and store the tokens",
        description="Authorize in a browser (authorization code with PKCE) and store the tokens in the vault.",
    )
    login_parser.add_argument("connector", help="connector name, e.g. google_calendar")
    _add_account(login_parser)
    login_parser.add_argument(
        "--no-browser", action="store_true", help="only print the URL (for a browser on another screen)"
    )
    login_parser.add_argument(
        "--timeout", type=float, default=300.0, metavar="S", help="seconds to finish in the browser (default 300)"
    )
    cli._add_common(login_parser)

    logout = actions.add_parser(
        "logout",
        help="delete the stored tokens",
        description="Delete the stored tokens from the vault. They are not revoked at the provider; revoke the "
        "app's access there too if they may have leaked.",
    )
    logout.add_argument("connector")
    _add_account(logout)
    cli._add_common(logout)

    status = actions.add_parser(
        "status",
        help="show whether tokens are stored and when they expire",
        description="Show whether a token set is stored and when its access token expires (never the tokens). "
        "Exit status 1 when there is none.",
    )
    status.add_argument("connector")
    _add_account(status)
    cli._add_common(status)


def _add_account(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--account",
        metavar="NAME",
        # Not `account`: `_cli._settings` reads that attribute as serve's CONNECTOR=ACCOUNT choices.
        dest="auth_account",
        help="a separate identity: the tokens go to vault record TOKEN_SECRET@NAME",
    )


def cmd_auth(args: argparse.Namespace) -> int:
    from mcp_server import _cli as cli  # here, not at the top: `_cli` imports this module
    from mcp_server._catalog import load_catalog
    from mcp_server._credentials import token_record
    from mcp_server._model import OAuth2AuthorizationCode
    from mcp_server._oauth import login_command

    settings = cli._settings(args)
    catalog = load_catalog(settings.tools_dirs)
    name: str = args.connector
    connector = next((c for c in catalog.connectors if c.name == name), None)
    if connector is None:
        hint = f"; {len(catalog.faults)} manifests were refused (mcp-connectors validate)" if catalog.faults else ""
        return cli._fail(f"no connector named {name!r}{hint}", 2)
    auth = connector.auth
    if not isinstance(auth, OAuth2AuthorizationCode):
        return cli._fail(
            f"{name} does not use `auth: {{type: oauth2_authorization_code}}`; auth login/logout/status are only "
            "for connectors with an interactive OAuth login",
            2,
        )
    account: str | None = args.auth_account
    if account is not None:
        try:
            parse_accounts([f"*={account}"])  # the server's rule for account names, so it can find the record
        except ValueError:
            return cli._fail(f"--account {account!r}: use 1 to 64 letters, digits, _ . -", 2)
    record = token_record(auth, account)
    fix = login_command(name, account)
    try:
        vault = open_vault(settings)
        if args.auth_command == "login":
            return _login(args, auth, name, record, vault, settings.environ)
        if args.auth_command == "logout":
            if vault.delete(record):
                print(f"logged out of {name}: deleted vault record {record}", file=sys.stderr)
            else:
                print(f"{name}: not logged in (no vault record {record})", file=sys.stderr)
            return 0
        return _status(name, record, vault, fix)
    except ConnectorsError as exc:
        return cli._fail(exc.message)


def _login(
    args: argparse.Namespace,
    auth: OAuth2AuthorizationCode,
    name: str,
    record: str,
    vault: SecretStore,
    environ: Mapping[str, str],
) -> int:
    from mcp_server._oauth_login import login

    def announce(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    async def run() -> TokenSet:
        return await login(
            auth,
            connector=name,
            record=record,
            store=vault,
            resolve=_resolver(vault, environ, name),
            open_browser=not args.no_browser,
            announce=announce,
            timeout=args.timeout,
        )

    tokens = anyio.run(run)
    print(f"logged in to {name}: tokens stored in vault record {record}", file=sys.stderr)
    print(f"  access token: {_expiry(tokens)}", file=sys.stderr)
    if tokens.refresh_token is None:
        print("  no refresh token was issued: log in again when the access token expires", file=sys.stderr)
    return 0


def _status(name: str, record: str, vault: SecretStore, fix: str) -> int:
    from mcp_server._oauth import TokenSet

    secret = vault.get(record)
    if secret is None:
        print(f"{name}: not logged in (no token set in vault record {record}); run: {fix}")
        return 1
    try:
        tokens = TokenSet.from_json(secret.reveal())
    except ValueError as exc:
        print(f"{name}: vault record {record} does not hold OAuth tokens ({exc}); run: {fix}")
        return 1
    print(f"{name}: logged in (vault record {record})")
    print(f"  access token: {_expiry(tokens)}")
    if tokens.refresh_token is not None:
        print("  refresh token: stored (expired access tokens are renewed automatically)")
    else:
        print(f"  refresh token: none (when the access token expires, run: {fix})")
    if tokens.scope:
        print(f"  scope: {tokens.scope}")
    return 0


def _expiry(tokens: TokenSet, now: float | None = None) -> str:
    if tokens.expires_at is None:
        return "no expiry given by the provider"
    now = time.time() if now is None else now
    when = datetime.fromtimestamp(tokens.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    left = tokens.expires_at - now
    if left >= 0:
        return f"expires {when} (in {_duration(left)})"
    return f"expired {when} ({_duration(-left)} ago)"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _resolver(store: SecretStore, environ: Mapping[str, str], connector: str) -> Callable[[ValueRef], str]:
    """Client id and secret for the login, from the same places the server reads them."""

    def resolve(ref: ValueRef) -> str:
        if ref.kind == "literal":
            return ref.value
        if ref.kind == "secret":
            secret = store.get(ref.value)
            value = secret.reveal() if secret is not None else None
            fix = f"mcp-connectors vault set {ref.value}"
        else:
            value = environ.get(ref.value)
            fix = f"export {ref.value}=..."
        if not value:
            raise AuthMissing(f"{connector}: {ref.describe()} is not set; run: {fix}", missing=ref.value, fix=fix)
        return value

    return resolve
