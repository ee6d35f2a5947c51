"""Shared fixtures: a recording fake upstream, connector manifests pointing at it, a vault, server processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from mcp_server._startup_snapshot import ENV_STARTUP_CACHE
from mcp_server._vault import Vault
from tests._fake_oauth import FakeAuthServer
from tests._upstream import FakeUpstream, UpstreamThread, free_port

SECRET = "tok-9f8e7d6c5b4a-SECRET-value"
API_KEY = "key-0a1b2c3d4e5f-APIKEY"
PASSWORD = "pw-hunter2-correct-horse"
ENV_SECRET = "env-5e6f7a8b-ENVVALUE"
PASSPHRASE = "test passphrase for the vault"
ALL_SECRETS = (SECRET, API_KEY, PASSWORD, ENV_SECRET)


def echo_manifest(base_url: str) -> str:
    return f"""
name: echo
title: Echo API
description: A fake upstream that echoes requests.
base_url: {base_url}
auth: {{type: bearer, token: {{secret: echo_token}}}}
headers: {{X-Static: static-value}}
timeout: 5
operations:
  - name: get_item
    title: Get an item
    description: Fetch one item by id.
    method: GET
    path: /echo/items/{{item_id}}
    parameters:
      - {{name: item_id, in: path, required: true, schema: {{type: string}}}}
      - {{name: verbose, in: query, schema: {{type: boolean}}}}
      - {{name: tags, in: query, schema: {{type: array, items: {{type: string}}}}}}
      - {{name: X-Trace, in: header, schema: {{type: string}}}}
      - {{name: session, in: cookie, schema: {{type: string}}}}
      - {{name: limit, in: query, schema: {{type: integer, minimum: 1, maximum: 100}}}}
  - name: create_item
    method: POST
    path: /echo/items
    body:
      schema: {{type: object, required: [title], properties: {{title: {{type: string}}, count: {{type: integer}}}}}}
  - name: create_charge
    method: POST
    path: /echo/charges
    body:
      content_type: application/x-www-form-urlencoded
      schema:
        type: object
        required: [amount]
        properties:
          amount: {{type: integer}}
          metadata: {{type: object, additionalProperties: {{type: string}}}}
          capture: {{type: boolean}}
  - name: delete_item
    method: DELETE
    path: /echo/items/{{item_id}}
    parameters:
      - {{name: item_id, in: path, required: true, schema: {{type: string}}}}
  - name: fail
    method: GET
    path: /status/{{code}}
    parameters:
      - {{name: code, in: path, required: true, schema: {{type: integer}}}}
  - name: text
    method: GET
    path: /text/page
  - name: empty
    method: GET
    path: /empty
  - name: slow
    method: GET
    path: /slow
    timeout: 0.5
  - name: big
    method: GET
    path: /big
  - name: throttled
    method: GET
    path: /retry-after
"""


def auth_manifests(base_url: str) -> dict[str, str]:
    op = "operations: [{name: whoami, method: GET, path: /echo/whoami}]"
    return {
        "keyhdr": f"name: keyhdr\nbase_url: {base_url}\n"
        "auth: {type: api_key, in: header, name: X-API-Key, value: {secret: api_key}}\n" + op,
        "keyquery": f"name: keyquery\nbase_url: {base_url}\n"
        "auth: {type: api_key, in: query, name: api_key, value: {secret: api_key}}\n" + op,
        "keycookie": f"name: keycookie\nbase_url: {base_url}\n"
        "auth: {type: api_key, in: cookie, name: sid, value: {secret: api_key}}\n" + op,
        "basicauth": f"name: basicauth\nbase_url: {base_url}\n"
        "auth: {type: basic, username: alice, password: {secret: password}}\n" + op,
        "hdrs": f"name: hdrs\nbase_url: {base_url}\n"
        "auth: {type: headers, headers: {X-Tenant: acme, X-Auth: {secret: api_key}}}\n" + op,
        "envauth": f"name: envauth\nbase_url: {base_url}\n"
        "auth: {type: bearer, token: {env: ECHO_ENV_TOKEN}}\n" + op,
        "noauth": f"name: noauth\nbase_url: {base_url}\n" + op,
        "missing": f"name: missing\nbase_url: {base_url}\n"
        "auth: {type: bearer, token: {secret: never_stored}}\n" + op,
        "down": "name: down\nbase_url: http://127.0.0.1:9\n" + op,
    }


@pytest.fixture(scope="session", autouse=True)
def startup_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Servers started by the tests keep their start-up snapshots here, not in the user's cache directory."""
    path = tmp_path_factory.mktemp("startup-cache")
    previous = os.environ.get(ENV_STARTUP_CACHE)
    os.environ[ENV_STARTUP_CACHE] = str(path)
    yield path
    if previous is None:
        os.environ.pop(ENV_STARTUP_CACHE, None)
    else:
        os.environ[ENV_STARTUP_CACHE] = previous


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    thread = UpstreamThread()
    yield thread.start()
    thread.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> FakeUpstream:
    upstream_server.requests.clear()
    return upstream_server


@pytest.fixture
def tools_dir(tmp_path: Path, upstream_server: FakeUpstream) -> Path:
    directory = tmp_path / "tools"
    directory.mkdir()
    (directory / "echo.yaml").write_text(echo_manifest(upstream_server.url))
    for name, text in auth_manifests(upstream_server.url).items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    path = tmp_path / "vault" / "vault.json"
    vault = Vault(path, passphrase=PASSPHRASE, use_keyring=False)
    vault.set("echo_token", SECRET)
    vault.set("api_key", API_KEY)
    vault.set("password", PASSWORD)
    return path


@pytest.fixture
def server_env(vault_path: Path, tools_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MCP_CONNECTORS_VAULT": str(vault_path),
            "MCP_CONNECTORS_VAULT_KEY": PASSPHRASE,
            "MCP_CONNECTORS_TOOLS": str(tools_dir),
            "ECHO_ENV_TOKEN": ENV_SECRET,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m mcp_server ARGS` as a user runs it, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "mcp_server", *args],
        env=env,
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def server_command() -> tuple[str, list[str]]:
    """The installed `mcp-connectors serve` script, as desktop clients launch it; `python -m` as a fallback."""
    script = shutil.which("mcp-connectors", path=str(Path(sys.executable).parent))
    if script is not None:
        return script, ["serve"]
    return sys.executable, ["-m", "mcp_server", "serve"]


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_http_server(env: dict[str, str], log_path: Path, *extra: str) -> ServerProcess:
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "serve", "--transport", "http", "--port", str(port), *extra],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx2.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    return ServerProcess(url, process, log_path)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def http_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_http_server(server_env, tmp_path / "server.log")
    yield server
    stop_process(server.process)


@pytest.fixture(scope="module")
def oauth_server() -> Iterator[FakeAuthServer]:
    thread = UpstreamThread(FakeAuthServer())
    server = thread.start()
    assert isinstance(server, FakeAuthServer)
    yield server
    thread.stop()


@pytest.fixture
def oauth(oauth_server: FakeAuthServer) -> FakeAuthServer:
    """The fake OAuth authorization server (tests/_fake_oauth.py), reset for each test."""
    oauth_server.reset()
    return oauth_server
