"""`serve` flags for running in production (logs, drain, reload, stateless) and the HTTP server process."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, Any

from mcp_server._config import DEFAULT_DRAIN_TIMEOUT, DEFAULT_WATCH_INTERVAL, Settings
from mcp_server._logging import LOG_FORMATS

if TYPE_CHECKING:
    from mcp_server._app import Application


def _seconds(minimum: float, maximum: float) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text} is outside {minimum:g}..{maximum:g} seconds")
        return value

    return parse


def add_ops_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="auto",
        help="log lines on stderr: json (one object per line, with the request id), text, or auto "
        "(default: json for --transport http when stderr is not a terminal, else text)",
    )
    serve.add_argument(
        "--log-arguments",
        action="store_true",
        help="also log each tool call's argument values (needs --log-level DEBUG; off by default, since "
        "arguments can carry personal data)",
    )
    serve.add_argument(
        "--stateless",
        action="store_true",
        help="Streamable HTTP without sessions, for several replicas behind a load balancer; turns the "
        "legacy SSE transport off (it needs session affinity)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=_seconds(0, 3600),
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="SECONDS",
        help=f"on SIGTERM, how long tool calls in flight may take to finish before they are cancelled "
        f"(default {DEFAULT_DRAIN_TIMEOUT:g})",
    )
    serve.add_argument(
        "--no-watch",
        dest="watch",
        action="store_false",
        help="do not reload the tools directories when their files change (SIGHUP still reloads)",
    )
    serve.add_argument(
        "--watch-interval",
        type=_seconds(0.1, 3600),
        default=DEFAULT_WATCH_INTERVAL,
        metavar="SECONDS",
        help=f"how often the tools directories are checked for changes (default {DEFAULT_WATCH_INTERVAL:g})",
    )


def check_ops_arguments(args: argparse.Namespace) -> str | None:
    """A usage problem with the combination of flags, or None."""
    if args.log_arguments and args.log_level != "DEBUG":
        return "--log-arguments needs --log-level DEBUG"
    return None


def ops_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The `Settings` fields these flags set."""
    return {
        "stateless": args.stateless,
        "drain_timeout": args.drain_timeout,
        "watch_tools": args.watch,
        "watch_interval": args.watch_interval,
    }


def _ignore_signal(signum: int, frame: object) -> None:
    return None


def serve_http(app: Application, settings: Settings, *, uvloop: bool = False) -> int:
    """Run uvicorn until SIGTERM/SIGINT, then drain (`_ops.Drain`) and exit 0."""
    import uvicorn

    from mcp_server._http import build_http_app
    from mcp_server._ops import Drain, DrainingServer

    drain = Drain(app.pipeline.metrics, settings.drain_timeout)
    config = uvicorn.Config(
        build_http_app(app.pipeline, app.catalog, settings, drain=drain),
        host=settings.host,
        port=settings.port,
        log_config=None,
        loop="uvloop" if uvloop else "asyncio",
        http="auto",  # httptools when installed (it is a dependency), h11 otherwise
        access_log=False,  # `_observe.RequestContextMiddleware` logs every request, with its request id
        timeout_graceful_shutdown=max(int(settings.drain_timeout + 0.999), 1),
    )
    # uvicorn re-raises the signal it shut down for once it is done; after a graceful drain that is no
    # reason to die by the signal, so the process exits 0.
    previous = signal.signal(signal.SIGTERM, _ignore_signal)
    try:
        DrainingServer(config, drain).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.stderr.flush()
    return 0
