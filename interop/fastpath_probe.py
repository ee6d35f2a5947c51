"""`python -m mcp_server`, unchanged, with a record of the `tools/call` requests the HTTP fast paths answered.

    python interop/fastpath_probe.py PROBE_FILE serve --transport http ...   (the rest: mcp_server's CLI)

The 2026-07-28 checks (`ts_client_modern.mjs`, `raw_compare.mjs`) compare what clients see from a server
with the fast path on (`mcp_server/_http_fastpath.py`) and off (`MCP_CONNECTORS_HTTP_FAST_PATH=off`). That
comparison proves something only if the "on" server really answered those calls on the fast path, which
nothing on the wire says (the point of the fast path is that it looks the same). So this launcher wraps
`ModernToolCalls._answer` — called only once a request has passed every check and is answered on the fast
path — to append one JSON line per call to PROBE_FILE: `{"event": "answered", "x_request_id": …, "id": …,
"tool": …}`, after `{"event": "hooked"}` at start. It wraps `SessionToolCalls._answer`
(`mcp_server/_http_session_fastpath.py`, handshake-era sessions) the same way, with `"event":
"answered-session"`, so the 2025-11-25 steps can tell that their calls took that path, and
`SseToolCalls._run` (`mcp_server/_sse_fastpath.py`, legacy HTTP+SSE) with `"event": "answered-sse"`. The
wrappers only observe: they call the original with the same arguments and return what it returns. Nothing
else is changed.

If a wrapped method is gone (the module was reworked), the line is `{"event": "unhooked", ...}` and the
server still runs; the clients then report the fast-path attribution check as failed, not the comparison.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _record(path: str, entry: dict[str, Any]) -> None:
    # One short O_APPEND write per line: whole lines, whatever the interleaving.
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _hook(path: str) -> None:
    try:
        from mcp_server._http_fastpath import ModernToolCalls
        from mcp_server._http_session_fastpath import SessionToolCalls
        from mcp_server._sse_fastpath import SseToolCalls

        targets = [(ModernToolCalls, "answered"), (SessionToolCalls, "answered-session")]
        originals = [cls._answer for cls, _ in targets]
        sse_run = SseToolCalls._run
    except (ImportError, AttributeError) as exc:
        _record(path, {"event": "unhooked", "reason": repr(exc)})
        return

    for (cls, event), original in zip(targets, originals, strict=True):

        async def _answer(self: Any, call: Any, *, _original: Any = original, _event: str = event) -> Any:
            _record(
                path,
                {
                    "event": _event,
                    "x_request_id": call.request.headers.get("x-request-id"),
                    "id": call.request_id,
                    "tool": getattr(call.params, "name", None),
                },
            )
            return await _original(self, call)

        cls._answer = _answer  # type: ignore[method-assign]

    async def _run(self: Any, session: Any, this: Any, request: Any, request_id: Any, *rest: Any) -> Any:
        params = rest[-1]
        entry = {"event": "answered-sse", "x_request_id": request.headers.get("x-request-id"), "id": request_id}
        _record(path, {**entry, "tool": getattr(params, "name", None)})
        return await sse_run(self, session, this, request, request_id, *rest)

    SseToolCalls._run = _run  # type: ignore[method-assign]
    _record(path, {"event": "hooked", "pid": os.getpid()})


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: fastpath_probe.py PROBE_FILE serve [serve options]", file=sys.stderr)
        return 2
    probe_file = sys.argv[1]
    _hook(probe_file)
    from mcp_server._cli import main as cli_main

    return cli_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
