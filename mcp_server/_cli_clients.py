"""`mcp-connectors clients add|list|revoke`, and the `serve` flags of inbound authentication.

A token is printed once, by `clients add`, and exists nowhere else: the file keeps its SHA-256 only.
`clients list` shows names, scopes, tenants, expiry and limits, never a token or a hash.
"""

# This module is the `clients` part of `_cli` and uses its private helpers (`_add_common`, `_settings`, `_fail`).
# pyright: reportPrivateUsage=false

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_server._config import (
    DEFAULT_CLIENT_CONCURRENCY,
    DEFAULT_CLIENT_RATE_LIMIT,
    DEFAULT_CLIENT_STREAMS,
    ENV_CLIENT_CONCURRENCY,
    ENV_CLIENT_RATE_LIMIT,
    ENV_CLIENT_STREAMS,
    ENV_CLIENTS,
    ENV_OAUTH_AUDIENCE,
    ENV_OAUTH_ISSUER,
    ENV_OAUTH_JWKS_URL,
    ENV_OAUTH_TENANT_CLAIM,
    AccessSettings,
    parse_accounts,
)

# The clients file module (and the scope grammar it checks against the registry) is imported by the `clients`
# commands themselves: `_cli` imports this module for every command.
if TYPE_CHECKING:
    from mcp_server._clients import ClientRecord, ClientsFile

__all__ = ["access_settings", "add_clients_parser", "add_serve_access_arguments", "cmd_clients"]

DEFAULT_SCOPES = ("tools:*:read",)

_ADD_DESCRIPTION = """\
Create an HTTP client and print its bearer token, once. Only the token's SHA-256 is stored.

Scopes (repeatable; default tools:*:read):
  tools:*                every tool             tools:*:read            every read-only tool
  tools:CONNECTOR:*      a connector's tools    tools:CONNECTOR:read    its read-only tools
  tools:TOOL             one tool               operator                /metrics and /v1/status

The tenant is the vault account of the client's calls: {secret: NAME} reads NAME@TENANT. Without
--tenant or --account the client uses the server's own accounts (serve --account).
"""


def add_clients_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mcp_server import _cli as cli  # here, not at the top: `_cli` imports this module

    clients = commands.add_parser(
        "clients",
        help="manage the tokens of HTTP clients",
        description="Manage the clients allowed to call the HTTP transports (the clients file, by default "
        f"clients.json beside the vault; ${ENV_CLIENTS}). Changes apply to a running server at its next request.",
    )
    actions = clients.add_subparsers(dest="clients_command", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="create a client and print its token once",
        description=_ADD_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("name", help="client name: 1 to 64 letters, digits, _ . - (shown in the audit log)")
    add.add_argument("--scope", action="append", default=[], metavar="SCOPE", help="a scope to grant (repeatable)")
    add.add_argument("--tenant", metavar="ACCOUNT", help="vault account of every call (*=ACCOUNT)")
    add.add_argument(
        "--account",
        dest="client_accounts",
        action="append",
        default=[],
        metavar="CONNECTOR=ACCOUNT",
        help="vault account for one connector (repeatable; over --tenant)",
    )
    add.add_argument("--expires", type=float, metavar="DAYS", help="the token stops working after DAYS days")
    add.add_argument(
        "--rate-limit",
        metavar="CALLS/SECONDS",
        help=f"this client's tool-call rate, e.g. 30/60, or off (default: the server's, {DEFAULT_CLIENT_RATE_LIMIT})",
    )
    add.add_argument(
        "--max-concurrent",
        type=int,
        metavar="N",
        help=f"tool calls running at once; 0 = unbounded (default: the server's, {DEFAULT_CLIENT_CONCURRENCY})",
    )
    cli._add_common(add, tools=False)
    _add_clients_file(add)
    listing = actions.add_parser("list", help="list clients (never a token or hash)")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    cli._add_common(listing, tools=False)
    _add_clients_file(listing)
    revoke = actions.add_parser("revoke", help="delete a client; its token stops working at once")
    revoke.add_argument("name")
    cli._add_common(revoke, tools=False)
    _add_clients_file(revoke)


def _add_clients_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clients", metavar="FILE", help=f"clients file (default: ${ENV_CLIENTS} or clients.json beside the vault)"
    )


def add_serve_access_arguments(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("HTTP authentication and limits (see `mcp-connectors clients --help`)")
    _add_clients_file(group)  # pyright: ignore[reportArgumentType]
    group.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback address with no authentication configured (anyone reaching the port may "
        "call every tool)",
    )
    group.add_argument("--read-only", action="store_true", help="serve only read-only tools (readOnlyHint)")
    group.add_argument(
        "--oauth-issuer", metavar="URL", help=f"accept JWT access tokens from this issuer (${ENV_OAUTH_ISSUER})"
    )
    group.add_argument("--oauth-jwks-url", metavar="URL", help=f"the issuer's JWKS (${ENV_OAUTH_JWKS_URL})")
    group.add_argument(
        "--oauth-audience",
        metavar="URL",
        help=f"this server's resource URL, required in aud (${ENV_OAUTH_AUDIENCE}; default http://HOST:PORT/mcp)",
    )
    group.add_argument(
        "--oauth-tenant-claim",
        metavar="CLAIM",
        help=f"a claim naming the vault account of the token's calls (${ENV_OAUTH_TENANT_CLAIM})",
    )
    group.add_argument(
        "--oauth-jwks-cooldown",
        type=float,
        metavar="SECONDS",
        help="least time between JWKS refreshes for unknown key ids (default 10)",
    )
    group.add_argument(
        "--client-rate-limit",
        metavar="CALLS/SECONDS",
        help=f"default tool-call rate per client, or off (${ENV_CLIENT_RATE_LIMIT}; "
        f"default {DEFAULT_CLIENT_RATE_LIMIT})",
    )
    group.add_argument(
        "--client-concurrency",
        metavar="N",
        help=f"default tool calls per client at once, or off (${ENV_CLIENT_CONCURRENCY}; "
        f"default {DEFAULT_CLIENT_CONCURRENCY})",
    )
    group.add_argument(
        "--client-streams",
        metavar="N",
        help=f"open SSE sessions, listen and event streams per client, or off (${ENV_CLIENT_STREAMS}; "
        f"default {DEFAULT_CLIENT_STREAMS})",
    )


def access_settings(args: argparse.Namespace) -> AccessSettings:
    """`serve`'s flags over the environment; ValueError for a malformed value."""
    flags: dict[str, Any] = {
        "clients_path": args.clients,
        "allow_unauthenticated": args.allow_unauthenticated,
        "read_only": args.read_only,
        "oauth_issuer": args.oauth_issuer,
        "oauth_jwks_url": args.oauth_jwks_url,
        "oauth_audience": args.oauth_audience,
        "oauth_tenant_claim": args.oauth_tenant_claim,
        "client_rate_limit": args.client_rate_limit,
        "client_concurrency": args.client_concurrency,
        "client_streams": args.client_streams,
    }
    settings = AccessSettings.from_environ(os.environ, **flags)
    if args.oauth_jwks_cooldown is not None:
        if not args.oauth_jwks_cooldown >= 0:
            raise ValueError("--oauth-jwks-cooldown must be zero or more seconds")
        settings = replace(settings, oauth_jwks_cooldown=args.oauth_jwks_cooldown)
    return settings


# ---------------------------------------------------------------------------------------------- commands


def _clients_file(args: argparse.Namespace) -> ClientsFile:
    from mcp_server._cli import _settings
    from mcp_server._clients import ClientsFile

    settings = _settings(args)
    if args.clients:
        return ClientsFile(Path(args.clients).expanduser())
    return ClientsFile(settings.access.clients_file(settings.vault_path))


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _describe(record: ClientRecord, now: float) -> dict[str, Any]:
    return {
        "name": record.name,
        "scopes": list(record.scopes),
        "tenant": record.tenant,
        "accounts": {k: v for k, v in record.accounts.items() if k != "*"},
        "created_at": _when(record.created_at),
        "expires_at": _when(record.expires_at),
        "expired": record.expired(now),
        "rate_limit": "off" if record.rate_limit_off else (str(record.rate_limit) if record.rate_limit else "default"),
        "max_concurrent": "default" if record.max_concurrent is None else (record.max_concurrent or "unbounded"),
    }


def cmd_clients(args: argparse.Namespace) -> int:
    from mcp_server._cli import _fail
    from mcp_server._clients import ClientsFileError

    try:
        clients = _clients_file(args)
        if args.clients_command == "add":
            return _add(args, clients)
        if args.clients_command == "revoke":
            if not clients.revoke(args.name):
                return _fail(f"no client named {args.name!r}")
            print(f"revoked {args.name!r}; its token is refused from the next request on", file=sys.stderr)
            return 0
        records = clients.records()
    except ClientsFileError as exc:
        return _fail(str(exc))
    except ValueError as exc:
        return _fail(str(exc), 2)
    now = time.time()
    described = [_describe(r, now) for _, r in sorted(records.items())]
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    if not described:
        print(f"no clients in {clients.path}", file=sys.stderr)
        return 0
    for entry in described:
        state = "EXPIRED" if entry["expired"] else f"expires {entry['expires_at']}"
        tenant = entry["tenant"] or "(server accounts)"
        print(
            f"{entry['name']}  scopes={','.join(entry['scopes'])}  tenant={tenant}  {state}  "
            f"rate={entry['rate_limit']}  concurrent={entry['max_concurrent']}"
        )
    return 0


def _add(args: argparse.Namespace, clients: ClientsFile) -> int:
    tenant = [f"*={args.tenant}"] if args.tenant is not None else []
    accounts = parse_accounts([*tenant, *args.client_accounts])
    if args.max_concurrent is not None and args.max_concurrent < 0:
        raise ValueError("--max-concurrent must be 0 (unbounded) or more")
    scopes = args.scope or list(DEFAULT_SCOPES)
    token = clients.add(
        args.name,
        scopes=scopes,
        accounts=accounts,
        expires_in_days=args.expires,
        rate_limit=args.rate_limit,
        max_concurrent=args.max_concurrent,
    )
    print(token)
    sys.stdout.flush()
    print(
        f"client {args.name!r} added to {clients.path} with scopes {' '.join(scopes)}. The token above is shown "
        "only now; send it as `Authorization: Bearer <token>`.",
        file=sys.stderr,
    )
    return 0
