"""`mcp-connectors audit tail | hash`: read the credential audit log."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from mcp_server._audit import AuditLog, follow, format_entry, read_tail
from mcp_server._errors import VaultError

__all__ = ["add_audit_parser", "cmd_audit"]


def add_audit_parser(commands: Any) -> None:
    from mcp_server._cli import _add_common  # pyright: ignore[reportPrivateUsage]

    audit = commands.add_parser(
        "audit",
        help="read the credential audit log",
        description="Every tool call that used a credential is one JSON line in the audit log (no values: each "
        "credential is named and identified by an HMAC of its value).",
    )
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    tail = actions.add_parser("tail", help="print the latest entries")
    tail.add_argument("-n", "--lines", type=int, default=20, help="how many entries (default 20)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing entries as they are written")
    tail.add_argument("--json", action="store_true", help="print the raw JSON lines")
    _add_common(tail, tools=False)
    digest = actions.add_parser(
        "hash",
        help="the HMAC the log shows for a secret's current value",
        description="Print the `hmac` the audit log records for the current value of vault secret NAME, to find "
        "the calls that used that exact value (for example after a leak). The value itself is never printed.",
    )
    digest.add_argument("name", help="vault secret name (NAME or NAME@ACCOUNT)")
    _add_common(digest, tools=False)


def cmd_audit(args: argparse.Namespace) -> int:
    from mcp_server._cli import _fail, _settings  # pyright: ignore[reportPrivateUsage]
    from mcp_server._vault_store import open_vault

    settings = _settings(args)
    if settings.audit_log is None:
        return _fail("the audit log is switched off (MCP_CONNECTORS_AUDIT_LOG=off)")
    log = AuditLog(settings.audit_log)
    if args.audit_command == "hash":
        try:
            secret = open_vault(settings).get(args.name)
        except (VaultError, ValueError) as exc:
            return _fail(str(exc))
        if secret is None:
            return _fail(f"no secret named {args.name!r}")
        try:
            print(log.fingerprint(secret.reveal()))
        except OSError as exc:
            return _fail(f"cannot read the audit key {log.key_file}: {exc}")
        return 0
    if not log.path.exists():
        return _fail(f"no audit log yet at {log.path} (it is written once a tool uses a credential)")
    show: Callable[[str], str] = str if args.json else format_entry
    for line in read_tail(log.path, args.lines):
        print(show(line))
    if args.follow:
        try:
            for line in follow(log.path):
                print(show(line), flush=True)
        except KeyboardInterrupt:
            return 0
    sys.stdout.flush()
    return 0
