"""The three servers under test, spawned the same way, and what we read from their processes.

- `sdk`: bench/peers/sdk_server.py on the official SDK's low-level `Server` (this venv's Python);
- `fastmcp`: bench/peers/fastmcp_server.py on FastMCP (FastMCP's own venv);
- `ours`: `python -m mcp_server serve` with a generated manifest, the token in a fresh vault
  (scrypt passphrase in `MCP_CONNECTORS_VAULT_KEY`), the audit log on, default log level (INFO).
Each is the spawned process itself (no shell, no wrapper), so its /proc counters are the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.clients import HttpClient, SseClient, StdioClient

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
FASTMCP_PYTHON = ROOT / ".cache" / "fastmcp-venv" / "bin" / "python"
SERVERS = ("sdk", "fastmcp", "ours")
LABELS = {"sdk": "SDK low-level", "fastmcp": "FastMCP", "ours": "mcp-connectors"}
TRANSPORTS = ("stdio", "http-2026", "http-2025", "sse")
TRANSPORT_LABELS = {
    "stdio": "stdio",
    "http-2026": "Streamable HTTP 2026-07-28",
    "http-2025": "Streamable HTTP 2025-11-25",
    "sse": "HTTP+SSE",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TOOL = "bench_get_item"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads, live or exited), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident set, MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line[:5]] = int(line.split()[1]) / 1024
    return {"rss_mb": values["VmRSS"], "hwm_mb": values["VmHWM"]}


@dataclass
class Workspace:
    """Temp dir with the upstream token, our manifest, vault and audit log."""

    root: Path
    upstream_url: str
    token: str
    python: str = sys.executable
    ours_env: dict[str, str] = field(default_factory=dict)

    def setup(self) -> None:
        self.tools_dir = self.root / "tools"
        self.tools_dir.mkdir(parents=True, exist_ok=True)
        manifest = {
            "name": "bench",
            "title": "Bench upstream",
            "description": "The fake upstream of the benchmark.",
            "base_url": self.upstream_url,
            "auth": {"type": "bearer", "token": {"secret": "bench_token"}},
            "operations": [
                {
                    "name": "get_item",
                    "title": "Get an item",
                    "description": "Fetch one item by id.",
                    "method": "GET",
                    "path": "/items/{item_id}",
                    "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                }
            ],
        }
        (self.tools_dir / "bench.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        self.ours_env = {
            **os.environ,
            "MCP_CONNECTORS_VAULT": str(self.root / "vault.json"),
            "MCP_CONNECTORS_VAULT_KEY": "bench passphrase, not a secret",
            "MCP_CONNECTORS_AUDIT_LOG": str(self.root / "audit.jsonl"),
            "MCP_CONNECTORS_TOOLS": "",
            # Start-up snapshots (mcp_server/_warm_start.py) in the workspace, not the user's cache; the
            # catalog phase and the start-up phase's "no snapshot" rows switch them off.
            "MCP_CONNECTORS_STARTUP_CACHE": str(self.root / "startup"),
        }
        subprocess.run(
            [self.python, "-m", "mcp_server", "vault", "set", "bench_token"],
            input=self.token,
            text=True,
            env=self.ours_env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )

    def argv(
        self,
        server: str,
        transport: str,
        port: int,
        tools_file: Path | None = None,
        tools_dir: Path | None = None,
        extra: list[str] | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        wire = "stdio" if transport == "stdio" else ("sse" if transport == "sse" else "http")
        if server == "ours":
            argv = [self.python, "-m", "mcp_server", "serve", "--tools", str(tools_dir or self.tools_dir)]
            if wire != "stdio":
                argv += ["--transport", "http", "--port", str(port)]
            return argv + (extra or []), self.ours_env
        python = self.python if server == "sdk" else str(FASTMCP_PYTHON)
        script = PEERS / ("sdk_server.py" if server == "sdk" else "fastmcp_server.py")
        argv = [python, str(script), self.upstream_url, "--transport", wire, "--port", str(port)]
        if tools_file is not None:
            argv += ["--tools", str(tools_file)]
        return argv, {**os.environ, "BENCH_TOKEN": self.token}


class Running:
    """A spawned server plus a connected light client."""

    def __init__(
        self,
        server: str,
        transport: str,
        process: asyncio.subprocess.Process,
        client: Any,
        spawned_at: float,
        stderr_path: Path,
    ) -> None:
        self.server = server
        self.transport = transport
        self.process = process
        self.client = client
        self.spawned_at = spawned_at
        self.stderr_path = stderr_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, float]:
        return memory_mb(self.pid)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):  # a client that cannot close cleanly must not keep the server up
            await asyncio.wait_for(self.client.close(), 5)
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def _wait_for_port(port: int, process: asyncio.subprocess.Process, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.01)
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


async def start(
    workspace: Workspace,
    server: str,
    transport: str,
    *,
    tools_file: Path | None = None,
    tools_dir: Path | None = None,
    extra: list[str] | None = None,
    wrap: list[str] | None = None,
    environ: dict[str, str] | None = None,
    timeout: float = 180,
) -> Running:
    """Spawn, connect and handshake (no tools/list yet: the caller times spawn → first complete list).

    `environ` is added to the server's environment.
    """
    port = free_port()
    argv, env = workspace.argv(server, transport, port, tools_file, tools_dir, extra)
    argv = (wrap or []) + argv
    env = {**env, **(environ or {})}
    stderr_path = workspace.root / f"{server}-{transport}-{port}.stderr"
    stderr = stderr_path.open("wb")
    spawned_at = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if transport == "stdio" else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if transport == "stdio" else asyncio.subprocess.DEVNULL,
        stderr=stderr,
        env=env,
        cwd=ROOT,
        limit=256 * 1024 * 1024,
    )
    stderr.close()
    try:
        if transport == "stdio":
            client: Any = StdioClient(process)
        else:
            await _wait_for_port(port, process, timeout)
            if transport == "sse":
                client = SseClient(f"http://127.0.0.1:{port}/sse")
            else:
                client = HttpClient(f"http://127.0.0.1:{port}/mcp", modern=transport == "http-2026")
        await asyncio.wait_for(client.start(), timeout)
    except BaseException:
        process.kill()
        await process.wait()
        tail = stderr_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{server} over {transport} did not start: {tail}") from None
    return Running(server, transport, process, client, spawned_at, stderr_path)
