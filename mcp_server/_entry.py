"""The `mcp-connectors` command (and `python -m mcp_server`): `_warm_start` begins before anything heavy is imported."""

from __future__ import annotations

import os
import sys

from mcp_server._warm_start import WarmStart


def main() -> int:
    argv = sys.argv[1:]
    warm_start = WarmStart.begin(argv, os.environ)  # answers the handshake while the imports below run
    try:
        from mcp_server._cli import main as cli_main

        return cli_main(argv, warm_start=warm_start)
    finally:
        if warm_start is not None:
            warm_start.close()  # stdout's blocking mode restored however the server ended
