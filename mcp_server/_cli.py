"""The `mcp-connectors` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from mcp_server._cli_audit import add_audit_parser, cmd_audit
from mcp_server._cli_auth import add_auth_parser, cmd_auth
from mcp_server._cli_clients import access_settings, add_clients_parser, add_serve_access_arguments, cmd_clients
from mcp_server._cli_ops import add_ops_arguments, check_ops_arguments, ops_overrides
from mcp_server._cli_vault import add_vault_parser, cmd_vault
from mcp_server._config import (
    DEFAULT_PAGE_SIZE,
    ENV_ACCOUNTS,
    ENV_TOOLS,
    ENV_VAULT,
    ENV_VAULT_KEY,
    AccessSettings,
    Settings,
    parse_accounts,
)
from mcp_server._errors import ToolError, UnknownTool, VaultError
from mcp_server._event_loop import use_uvloop
from mcp_server._gc import tune_for_serving
from mcp_server._logging import configure_logging, resolve_log_format
from mcp_server._vault_store import open_vault
from mcp_server._version import server_version
from mcp_server._warm_start import WarmStart

# The server's modules (the SDK, the pipeline, the HTTP stack) are imported by the commands that need them, so
# `vault`, `clients` and `audit` start in a fraction of the time.
if TYPE_CHECKING:
    from mcp_server._app import Application

DESCRIPTION = """\
Serve API connectors as MCP tools. Every operation of every connector manifest
(tools/*.yaml) becomes one tool; credentials come from an encrypted vault and
are injected into outgoing requests, never shown to the model.

Quick start:
  mcp-connectors vault set github_token     # paste a GitHub token, then Enter
  mcp-connectors tools                      # what would be served
  mcp-connectors call github_get_user --args '{"username": "octocat"}'
  mcp-connectors serve                      # stdio, for Claude Desktop
  mcp-connectors serve --transport http     # http://127.0.0.1:8765/mcp
"""

ENVIRONMENT_HELP = f"""\
environment:
  {ENV_TOOLS}   manifest directories, separated by ':' (default: the bundled tools/)
  {ENV_VAULT}   vault file (default: the user's data directory)
  {ENV_VAULT_KEY}   vault passphrase (default: OS keyring, else a 0600 key file beside the vault)
  MCP_CONNECTORS_VAULT_BACKEND   where secrets live: file (default, the vault file) or hashicorp
                                 (HashiCorp Vault KV v2; needs mcp-connectors[hashicorp])
  VAULT_ADDR, VAULT_TOKEN   HashiCorp Vault address and token (hashicorp backend; both required)
  VAULT_NAMESPACE   Vault Enterprise/HCP namespace (default: none)
  MCP_CONNECTORS_VAULT_MOUNT   KV v2 mount (default: secret)
  MCP_CONNECTORS_VAULT_PREFIX   folder under the mount, secret NAME at <mount>/data/<prefix>NAME
                                (default: mcp-connectors/)
  VAULT_CACERT   PEM CA bundle for Vault's TLS certificate (default: the system's)
  VAULT_SKIP_VERIFY   true disables TLS verification of Vault (testing only)
  MCP_CONNECTORS_STARTUP_CACHE   start-up snapshots of stdio serve, or off
                                 (default: $XDG_CACHE_HOME/mcp-connectors/startup)
  MCP_CONNECTORS_CLIENTS   HTTP clients file (default: clients.json beside the vault; `clients --help`)
  MCP_CONNECTORS_OAUTH_ISSUER, MCP_CONNECTORS_OAUTH_JWKS_URL   accept OAuth JWT access tokens (HTTP)
  MCP_CONNECTORS_OAUTH_AUDIENCE   this server's resource URL (default: http://HOST:PORT/mcp)
  MCP_CONNECTORS_OAUTH_TENANT_CLAIM   claim naming the vault account of a token's calls
  MCP_CONNECTORS_CLIENT_RATE_LIMIT   tool calls per HTTP client, CALLS/SECONDS or off (default 120/60)
  MCP_CONNECTORS_CLIENT_CONCURRENCY   tool calls per HTTP client at once, or off (default 8)
  MCP_CONNECTORS_CLIENT_STREAMS   open SSE sessions, listen and event streams per HTTP client, or off (default 16)
"""


def _add_common(parser: argparse.ArgumentParser, *, tools: bool = True) -> None:
    if tools:
        parser.add_argument(
            "--tools",
            metavar="DIR",
            action="append",
            type=Path,
            default=[],
            help=f"manifest directory (repeatable; default: ${ENV_TOOLS} or the bundled tools/)",
        )
    parser.add_argument(
        "--vault", metavar="FILE", type=Path, help=f"vault file (default: ${ENV_VAULT} or user data dir)"
    )


def _add_account(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="CONNECTOR=ACCOUNT",
        help="use the ACCOUNT credentials of CONNECTOR: {secret: NAME} reads NAME@ACCOUNT from the vault "
        f"(`*=ACCOUNT` for every connector; repeatable; default ${ENV_ACCOUNTS})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-connectors",
        description=DESCRIPTION,
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mcp-connectors {server_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)", description="Run the server.")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio", help="stdio (default) or http")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="extra host name accepted in the Host header, e.g. mcp.example.com (repeatable)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="extra browser origin accepted, e.g. https://app.example.com (repeatable)",
    )
    serve.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR|HOST",
        help="private network or host every connector may reach, e.g. 10.0.0.0/8 (repeatable; "
        "loopback, private and metadata addresses are refused otherwise, except a connector's own base URL host)",
    )
    serve.add_argument(
        "--include-tools",
        action="append",
        default=[],
        metavar="GLOB",
        help="serve only tools whose name matches, e.g. 'github_*issue*' (repeatable)",
    )
    serve.add_argument(
        "--exclude-tools", action="append", default=[], metavar="GLOB", help="do not serve matching tools (repeatable)"
    )
    serve.add_argument(
        "--discovery",
        action="store_true",
        help="expose three meta-tools (search_tools, describe_tool, call_tool) instead of every tool: "
        "for catalogs of hundreds or thousands of operations",
    )
    serve.add_argument(
        "--page-size",
        type=int,
        default=DEFAULT_PAGE_SIZE,
        help="tools per tools/list page (the built-in tools follow the last page)",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_ops_arguments(serve)  # --log-format, --log-arguments, --stateless, --drain-timeout, --no-watch, ...
    add_serve_access_arguments(serve)  # --clients, --oauth-*, --read-only, --allow-unauthenticated, client limits
    _add_account(serve)
    _add_common(serve)

    tools = commands.add_parser("tools", help="list the tools that would be served")
    tools.add_argument("--json", action="store_true", help="print the tool definitions exactly as tools/list serves")
    _add_common(tools)

    call = commands.add_parser(
        "call",
        help="invoke one tool and print its result",
        description="Invoke one tool once and print its result as JSON. Exit status 1 if the tool failed.",
    )
    call.add_argument("tool", help="tool name, e.g. github_get_user")
    _add_account(call)
    call.add_argument(
        "--args", default="{}", metavar="JSON", help='arguments as a JSON object, e.g. \'{"username": "x"}\''
    )
    _add_common(call)

    validate = commands.add_parser("validate", help="check manifests; exit 1 on any fault")
    _add_common(validate)

    importer = commands.add_parser(
        "import-openapi",
        help="turn an OpenAPI/Swagger document into a reviewable manifest",
        description="Convert an OpenAPI 3.0/3.1 or Swagger 2.0 document (file or URL) into a connector manifest "
        "with one operation per API operation, and print it (or write it with -o). To keep a manifest that "
        "follows the document instead, write `openapi: <file or URL>` in it.",
    )
    importer.add_argument("spec", help="path or http(s) URL of the document")
    importer.add_argument("--name", required=True, help="connector name: lower case, digits, _ (max 32)")
    importer.add_argument("-o", "--output", type=Path, help="write the manifest here (e.g. tools/NAME.yaml)")

    add_vault_parser(commands)
    add_auth_parser(commands)
    add_audit_parser(commands)
    add_clients_parser(commands)
    return parser


logger = logging.getLogger("mcp_server")


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Raises `_UsageError` for a malformed `--account` or `MCP_CONNECTORS_ACCOUNTS` (main() reports it)."""
    chosen = getattr(args, "account", None)
    try:
        if chosen:
            from_env = [entry for entry in os.environ.get(ENV_ACCOUNTS, "").split(",") if entry.strip()]
            overrides["accounts"] = {**parse_accounts(from_env), **parse_accounts(chosen)}
        return Settings.resolve(
            environ=os.environ, tools_dirs=getattr(args, "tools", []), vault_path=args.vault, **overrides
        )
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _access_settings(args: argparse.Namespace) -> AccessSettings:
    try:
        return access_settings(args)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


class _UsageError(Exception):
    """Settings that cannot be used as given; reported as one line with exit status 2."""


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _cmd_serve(args: argparse.Namespace, warm_start: WarmStart | None = None) -> int:
    problem = check_ops_arguments(args)
    if problem:
        raise _UsageError(problem)
    configure_logging(args.log_level, resolve_log_format(args.log_format, transport=args.transport))
    try:
        uvloop = use_uvloop(os.environ)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        allowed_hosts=tuple(args.allow_host),
        allowed_origins=tuple(args.allow_origin),
        allow_networks=tuple(args.allow_network),
        include_tools=tuple(args.include_tools),
        exclude_tools=tuple(args.exclude_tools),
        discovery=args.discovery,
        page_size=args.page_size,
        **ops_overrides(args),
        access=_access_settings(args),
    )
    if warm_start is not None:
        warm_start.before_load(settings.tools_dirs)
    from mcp_server._app import build_application

    app = build_application(settings)
    if warm_start is not None:
        warm_start.after_load(connector.document for connector in app.catalog.connectors)
    app.pipeline.log_arguments = args.log_arguments
    _check_vault(app)
    if app.pipeline.audit is not None:
        try:
            app.pipeline.audit.open()
        except OSError as exc:
            return _fail(
                f"cannot open the audit log {app.pipeline.audit.path}: {exc.strerror or exc}; choose another "
                "place with MCP_CONNECTORS_AUDIT_LOG=PATH (or switch it off with MCP_CONNECTORS_AUDIT_LOG=off)"
            )
    if args.transport == "stdio":
        from mcp_server._stdio import serve_stdio

        tune_for_serving()
        anyio.run(serve_stdio, app, warm_start, backend_options={"use_uvloop": uvloop})
        return 0
    if warm_start is not None:
        warm_start.handover()  # nothing was answered: a snapshot is only written by a stdio start
    from mcp_server._inbound import exposure_problem

    if (problem := exposure_problem(settings)) is not None:
        return _fail(problem, 2)
    from mcp_server._cli_ops import serve_http

    tune_for_serving()
    return serve_http(app, settings, uvloop=uvloop)  # drains on SIGTERM (--drain-timeout)


def _check_vault(app: Application) -> None:
    """A vault that cannot be read is reported at start; calls needing it then fail with AUTH_MISSING."""
    try:
        open_vault(app.settings).check()
    except VaultError as exc:
        logger.error("%s", exc.message)


def _cmd_tools(args: argparse.Namespace) -> int:
    from mcp_server._app import build_application
    from mcp_server._rest import TOOL_FORMATS

    app = build_application(_settings(args))
    tools = list(app.pipeline.registry)
    if args.json:
        listed = [TOOL_FORMATS["mcp"](tool) for tool in tools]
        # Exactly what a local client's tools/list shows: the built-ins (batch_invoke, ..._list_events) close it.
        from mcp_server._access import Access, principal_of
        from mcp_server._builtin_tools import LocalTools

        access = Access(app.pipeline, read_only=app.settings.access.read_only)
        local = LocalTools.for_settings(app.pipeline, access, app.settings, catalog=lambda: app.catalog)
        listed += [
            tool.mcp_tool.model_dump(by_alias=True, mode="json", exclude_none=True)
            for tool in local.listed(principal_of(None))
        ]
        print(json.dumps(listed, indent=2, ensure_ascii=False))
        return 0
    width = max((len(tool.name) for tool in tools), default=0)
    for tool in tools:
        hint = "read-only" if tool.annotations.get("readOnlyHint") else tool.operation.method
        print(f"{tool.name:<{width}}  {hint:<9}  {tool.title}")
    print(f"\n{len(tools)} tools from {len(app.catalog.connectors)} connectors", file=sys.stderr)
    return 1 if app.catalog.faults else 0


def _cmd_call(args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.args)
    except ValueError as exc:
        return _fail(f"--args is not valid JSON: {exc}", 2)
    if not isinstance(arguments, dict):
        return _fail("--args must be a JSON object", 2)
    from mcp_server._app import build_application

    app = build_application(_settings(args))

    async def run() -> int:
        async with app.pipeline:
            try:
                outcome = await app.pipeline.invoke(args.tool, arguments)  # pyright: ignore[reportUnknownArgumentType]
            except UnknownTool as exc:
                return _fail(f"{exc.message}; `mcp-connectors tools` lists them", 2)
        if isinstance(outcome, ToolError):
            print(json.dumps(outcome.to_body(), indent=2, ensure_ascii=False))
            return 1
        print(json.dumps(outcome.value, indent=2, ensure_ascii=False) if outcome.is_json else outcome.text)
        return 0

    return anyio.run(run)


def _cmd_validate(args: argparse.Namespace) -> int:
    from mcp_server._catalog import load_catalog

    settings = _settings(args)
    catalog = load_catalog(settings.tools_dirs)
    for connector in catalog.connectors:
        print(f"ok     {connector.source}: {connector.name} ({len(connector.operations)} operations)")
    for fault in catalog.faults:
        print(f"FAULT  {fault}")
    print(f"{len(catalog.connectors)} valid, {len(catalog.faults)} refused", file=sys.stderr)
    return 1 if catalog.faults else 0


def _cmd_import_openapi(args: argparse.Namespace) -> int:
    from mcp_server._openapi_import import import_openapi

    try:
        text, faults = import_openapi(args.spec, name=args.name, base_dir=Path.cwd())
    except ValueError as exc:
        return _fail(str(exc))
    for pointer, reason in faults:
        print(f"skipped  {pointer}: {reason}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(
            f"wrote {args.output}; check it with: mcp-connectors validate --tools {args.output.parent}", file=sys.stderr
        )
    if len(text) > LARGE_MANIFEST_CHARS:
        print(
            f"note: this manifest is {len(text) // 1_000_000} MB, too large to review by hand; a manifest with "
            f"`openapi: {args.spec}` serves the same tools and follows the document instead of copying it",
            file=sys.stderr,
        )
    return 0


LARGE_MANIFEST_CHARS = 50_000_000
"""Past this, `import-openapi` suggests `openapi:` (Microsoft Graph's description writes a 993 MB manifest)."""


COMMANDS = {
    "serve": _cmd_serve,
    "tools": _cmd_tools,
    "call": _cmd_call,
    "validate": _cmd_validate,
    "import-openapi": _cmd_import_openapi,
    "vault": cmd_vault,
    "auth": cmd_auth,
    "audit": cmd_audit,
    "clients": cmd_clients,
}


def main(argv: Sequence[str] | None = None, *, warm_start: WarmStart | None = None) -> int:
    """`warm_start`: begun by `_entry` before this module was imported (`serve` over stdio)."""
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        configure_logging("WARNING")
    try:
        if args.command == "serve":
            return _cmd_serve(args, warm_start)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except _UsageError as exc:
        return _fail(str(exc), 2)
    except VaultError as exc:  # an unknown vault backend, before any command could report it itself
        return _fail(exc.message)
