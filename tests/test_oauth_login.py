"""The interactive login: loopback callback server, state and PKCE checks, and `mcp-connectors auth ...`.

The "browser" is httpx2: it GETs the printed authorization URL from the fake authorization server and follows
its redirect to our callback, as a browser would after the user clicked "Allow".
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_server._cli_auth import add_auth_parser, cmd_auth
from mcp_server._errors import AuthFailed
from mcp_server._model import OAuth2AuthorizationCode
from mcp_server._oauth import TokenSet
from mcp_server._oauth_login import LoginFailed, login
from mcp_server._secrets import ValueRef
from mcp_server._vault import Vault
from tests._fake_oauth import CLIENT_ID, CLIENT_SECRET, FakeAuthServer
from tests._upstream import free_port

PASSPHRASE = "oauth login test passphrase"
RECORD = "demo_tokens"
URL_RE = re.compile(r"http://127\.0\.0\.1:\d+/authorize\?\S+")


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    store = Vault(tmp_path / "vault" / "vault.json", passphrase=PASSPHRASE, use_keyring=False)
    store.set("demo_client_secret", CLIENT_SECRET)
    return store


def code_auth(server: FakeAuthServer, **overrides: Any) -> OAuth2AuthorizationCode:
    fields: dict[str, Any] = {
        "authorization_url": server.authorize_url,
        "token_url": server.token_url,
        "client_id": ValueRef("literal", CLIENT_ID),
        "client_secret": ValueRef("secret", "demo_client_secret"),
        "token_secret": RECORD,
        "scopes": ("read", "write"),
    }
    return OAuth2AuthorizationCode(**(fields | overrides))


def resolve(ref: ValueRef) -> str:
    return CLIENT_SECRET if ref.kind == "secret" else ref.value


class Login:
    """`login()` running in a task; `url` is set once it has announced the authorization URL."""

    def __init__(self) -> None:
        self.announced: list[str] = []
        self.url_ready = anyio.Event()
        self.url = ""
        self.tokens: TokenSet | None = None
        self.error: BaseException | None = None
        self.finished = anyio.Event()
        self.second_announcement = anyio.Event()

    def announce(self, text: str) -> None:
        self.announced.append(text)
        if len(self.announced) == 2:
            self.second_announcement.set()
        match = URL_RE.search(text)
        if match:
            self.url = match.group(0)
            self.url_ready.set()

    async def run(self, auth: OAuth2AuthorizationCode, store: Vault, **kw: Any) -> None:
        try:
            self.tokens = await login(
                auth,
                connector="demo",
                record=RECORD,
                store=store,
                resolve=resolve,
                announce=self.announce,
                **{"open_browser": False, "timeout": 20, **kw},
            )
        except Exception as exc:
            self.error = exc
        finally:
            self.url_ready.set()
            self.finished.set()

    @property
    def callback_base(self) -> str:
        redirect = httpx2.URL(self.url).params["redirect_uri"]
        assert redirect.startswith("http://127.0.0.1:") and redirect.endswith("/callback")
        return redirect


async def browse(client: httpx2.AsyncClient, url: str) -> httpx2.Response:
    authorize = await client.get(url)
    assert authorize.status_code == 302, authorize.text
    return await client.get(authorize.headers["location"])


async def login_in_browser(auth: OAuth2AuthorizationCode, store: Vault) -> tuple[Login, httpx2.Response]:
    """Start the login, then play the browser: authorize, follow the redirect to the callback."""
    run = Login()
    page: httpx2.Response | None = None
    async with anyio.create_task_group() as group, httpx2.AsyncClient() as browser:
        group.start_soon(run.run, auth, store)
        with anyio.fail_after(10):
            await run.url_ready.wait()
        page = await browse(browser, run.url)
        with anyio.fail_after(10):
            await run.finished.wait()
    assert page is not None
    return run, page


async def test_login_exchanges_the_code_and_stores_the_tokens(oauth: FakeAuthServer, vault: Vault) -> None:
    run, page = await login_in_browser(code_auth(oauth), vault)
    assert run.error is None
    assert page.status_code == 200
    assert "You can close this tab" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"

    tokens = run.tokens
    assert tokens is not None
    assert tokens.access_token == oauth.issued_access_tokens[0]
    assert tokens.refresh_token in oauth.live_refresh_tokens
    assert tokens.scope == "read write"
    stored = vault.get(RECORD)
    assert stored is not None and TokenSet.from_json(stored.reveal()) == tokens
    assert tokens.access_token not in " ".join(run.announced)

    (params,) = oauth.authorize_params
    assert params["code_challenge_method"] == "S256"
    assert params["scope"] == "read write"
    assert len(params["state"]) >= 32
    (form,) = oauth.token_forms()
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == params["redirect_uri"]
    assert 43 <= len(form["code_verifier"]) <= 128
    assert form["client_secret"] == CLIENT_SECRET


async def test_forged_or_stray_requests_do_not_end_the_login(oauth: FakeAuthServer, vault: Vault) -> None:
    run = Login()
    async with anyio.create_task_group() as group, httpx2.AsyncClient() as browser:
        group.start_soon(run.run, code_auth(oauth), vault)
        with anyio.fail_after(10):
            await run.url_ready.wait()
        callback = run.callback_base
        # A page planting its own code (CSRF), or an error, without the login's state: refused, login goes on.
        forged = await browser.get(callback, params={"code": "attacker-code", "state": "guessed"})
        assert forged.status_code == 400 and "does not belong to the login in progress" in forged.text
        missing = await browser.get(callback, params={"code": "attacker-code"})
        assert missing.status_code == 400
        denied = await browser.get(callback, params={"error": "access_denied", "state": "guessed"})
        assert denied.status_code == 400
        assert (await browser.get(callback.replace("/callback", "/favicon.ico"))).status_code == 404
        assert (await browser.post(callback, content=b"x")).status_code == 405
        port = int(callback.split(":")[2].split("/")[0])
        async with await anyio.connect_tcp("127.0.0.1", port) as raw:
            await raw.send(b"NONSENSE\r\n\r\n")
            assert (await raw.receive()).startswith(b"HTTP/1.1 400")
        assert not run.finished.is_set()
        assert oauth.token_requests == 0

        page = await browse(browser, run.url)
        await run.finished.wait()
        assert page.status_code == 200
        # One login, one answer: the server is gone once it has its tokens.
        with pytest.raises(httpx2.ConnectError):
            await browser.get(callback, params={"state": "x"})
    assert run.error is None and run.tokens is not None
    assert oauth.token_requests == 1


async def test_access_denied_fails_clearly(oauth: FakeAuthServer, vault: Vault) -> None:
    oauth.deny = True
    run, page = await login_in_browser(code_auth(oauth), vault)
    assert isinstance(run.error, LoginFailed)
    assert str(run.error) == (
        "demo: authorization was denied (access_denied: The user said no); run the login again and allow access"
    )
    assert page.status_code == 400 and "authorization was denied" in page.text
    assert vault.get(RECORD) is None
    assert oauth.token_requests == 0


async def test_failed_code_exchange_fails_the_login(oauth: FakeAuthServer, vault: Vault) -> None:
    oauth.failure = "invalid_client"
    run, page = await login_in_browser(code_auth(oauth), vault)
    assert isinstance(run.error, AuthFailed)
    assert "invalid_client" in run.error.message
    assert page.status_code == 502 and "invalid_client" in page.text
    assert CLIENT_SECRET not in page.text
    assert vault.get(RECORD) is None


async def test_login_times_out_clearly(oauth: FakeAuthServer, vault: Vault) -> None:
    run = Login()
    started = time.monotonic()
    await run.run(code_auth(oauth), vault, timeout=0.3)
    assert time.monotonic() - started < 5
    assert isinstance(run.error, LoginFailed)
    assert str(run.error) == (
        "demo: no authorization arrived within 0.3 s; run the login again and finish it in the browser"
    )
    async with httpx2.AsyncClient() as browser:
        with pytest.raises(httpx2.ConnectError):
            await browser.get(run.callback_base)


async def test_fixed_port_and_browser(oauth: FakeAuthServer, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def fake_open(url: str) -> bool:
        opened.append(url)
        return False

    monkeypatch.setattr("webbrowser.open", fake_open)
    port = free_port()
    run = Login()
    async with anyio.create_task_group() as group, httpx2.AsyncClient() as browser:
        group.start_soon(lambda: run.run(code_auth(oauth, redirect_port=port), vault, open_browser=True))
        with anyio.fail_after(10):
            await run.url_ready.wait()
        assert run.callback_base == f"http://127.0.0.1:{port}/callback"
        with anyio.fail_after(10):
            await run.second_announcement.wait()
        await browse(browser, run.url)
        await run.finished.wait()
    assert opened == [run.url]
    assert "No browser could be opened" in run.announced[1]
    assert run.tokens is not None


async def test_busy_port_fails_clearly(oauth: FakeAuthServer, vault: Vault) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = Login()
        await run.run(code_auth(oauth, redirect_port=port), vault)
    assert isinstance(run.error, LoginFailed)
    assert f"cannot listen on 127.0.0.1:{port}" in str(run.error)


# -- the command line ------------------------------------------------------------------------------------------


def demo_manifest(server: FakeAuthServer, auth_type: str = "oauth2_authorization_code") -> str:
    if auth_type != "oauth2_authorization_code":
        return "name: demo\nbase_url: http://127.0.0.1:9\nauth: {type: bearer, token: {secret: x}}\n" + (
            "operations: [{name: whoami, method: GET, path: /me}]\n"
        )
    return f"""
name: demo
base_url: http://127.0.0.1:9
auth:
  type: oauth2_authorization_code
  authorization_url: {server.authorize_url}
  token_url: {server.token_url}
  client_id: "{CLIENT_ID}"
  client_secret: {{secret: demo_client_secret}}
  scopes: [read]
  token_secret: {RECORD}
operations: [{{name: whoami, method: GET, path: /me}}]
"""


@pytest.fixture
def cli_env(tmp_path: Path, oauth: FakeAuthServer, vault: Vault) -> dict[str, str]:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "demo.yaml").write_text(demo_manifest(oauth))
    (tools / "plain.yaml").write_text(demo_manifest(oauth, "bearer").replace("name: demo", "name: plain"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_CONNECTORS_", "VAULT_"))}
    env.update(
        {
            "MCP_CONNECTORS_TOOLS": str(tools),
            "MCP_CONNECTORS_VAULT": str(vault.path),
            "MCP_CONNECTORS_VAULT_KEY": PASSPHRASE,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def auth_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mcp_server", "auth", *args]


def run_auth(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(auth_command(*args), env=env, capture_output=True, text=True, timeout=60)


def stderr_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stream = process.stderr

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for(lines: queue.Queue[str], pattern: re.Pattern[str], seen: list[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if match := pattern.search(line):
            return match.group(0)
    raise AssertionError("no authorization URL printed:\n" + "".join(seen))


def test_cli_login_end_to_end(cli_env: dict[str, str], oauth: FakeAuthServer, vault: Vault) -> None:
    before = run_auth(cli_env, "status", "demo")
    assert before.returncode == 1
    assert before.stdout.startswith("demo: not logged in") and "mcp-connectors auth login demo" in before.stdout

    process = subprocess.Popen(
        auth_command("login", "demo", "--no-browser", "--timeout", "60"),
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        lines = stderr_lines(process)
        url = wait_for(lines, URL_RE, seen)
        with httpx2.Client() as browser:
            # A stray request first: the login keeps waiting.
            redirect_uri = httpx2.URL(url).params["redirect_uri"]
            assert browser.get(redirect_uri, params={"code": "x", "state": "nope"}).status_code == 400
            authorize = browser.get(url)
            assert authorize.status_code == 302
            page = browser.get(authorize.headers["location"])
        assert page.status_code == 200 and "You can close this tab" in page.text
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while not lines.empty():
        seen.append(lines.get())
    output = "".join(seen)
    assert "logged in to demo: tokens stored in vault record demo_tokens" in output
    assert oauth.issued_access_tokens[0] not in output

    secret = vault.get(RECORD)
    assert secret is not None
    tokens = TokenSet.from_json(secret.reveal())
    assert tokens.access_token == oauth.issued_access_tokens[0]

    status = run_auth(cli_env, "status", "demo")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("demo: logged in (vault record demo_tokens)")
    assert re.search(r"access token: expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 60 min\)", status.stdout)
    assert "refresh token: stored" in status.stdout
    assert "scope: read" in status.stdout
    for value in (tokens.access_token, tokens.refresh_token or "", CLIENT_SECRET):
        assert value not in status.stdout + status.stderr


def test_cli_login_access_denied(cli_env: dict[str, str], oauth: FakeAuthServer, vault: Vault) -> None:
    oauth.deny = True
    process = subprocess.Popen(
        auth_command("login", "demo", "--no-browser", "--account", "work"),
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        lines = stderr_lines(process)
        url = wait_for(lines, URL_RE, seen)
        with httpx2.Client(follow_redirects=True) as browser:
            assert browser.get(url).status_code == 400
        assert process.wait(timeout=30) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    time.sleep(0.1)
    while not lines.empty():
        seen.append(lines.get())
    assert "error: demo: authorization was denied (access_denied: The user said no)" in "".join(seen)
    assert vault.names() == ["demo_client_secret"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`mcp-connectors auth ...` in process (status and logout need no event loop)."""
    parser = argparse.ArgumentParser(prog="mcp-connectors")
    add_auth_parser(parser.add_subparsers(dest="command", required=True))
    code = cmd_auth(parser.parse_args(["auth", *argv]))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli_process_env(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment as the CLI subprocesses get it."""
    for name in list(os.environ):
        if name.startswith(("MCP_CONNECTORS_", "VAULT_")):
            monkeypatch.delenv(name)
    for name, value in cli_env.items():
        if name.startswith("MCP_CONNECTORS_"):
            monkeypatch.setenv(name, value)


def test_cli_status_and_logout(cli_process_env: None, vault: Vault, capsys: pytest.CaptureFixture[str]) -> None:
    expires = time.time() - 7200
    vault.set(f"{RECORD}@work", TokenSet("at-secret-value", "Bearer", expires, None, None).to_json())
    code, out, _ = cli(capsys, "status", "demo", "--account", "work")
    assert code == 0
    assert out.startswith("demo: logged in (vault record demo_tokens@work)")
    assert "access token: expired " in out and "(2.0 h ago)" in out
    assert (
        "refresh token: none (when the access token expires, run: mcp-connectors auth login demo --account work)" in out
    )
    assert "at-secret-value" not in out

    vault.set(RECORD, "not a token set")
    code, out, _ = cli(capsys, "status", "demo")
    assert code == 1
    assert out == (
        "demo: vault record demo_tokens does not hold OAuth tokens (not JSON); run: mcp-connectors auth login demo\n"
    )

    code, _, err = cli(capsys, "logout", "demo", "--account", "work")
    assert (code, err) == (0, "logged out of demo: deleted vault record demo_tokens@work\n")
    code, _, err = cli(capsys, "logout", "demo", "--account", "work")
    assert (code, err) == (0, "demo: not logged in (no vault record demo_tokens@work)\n")
    assert vault.names() == ["demo_client_secret", RECORD]


def test_cli_refuses_other_connectors(cli_process_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "login", "plain")
    assert code == 2
    assert err.startswith("error: plain does not use `auth: {type: oauth2_authorization_code}`")
    code, _, err = cli(capsys, "status", "nosuch")
    assert (code, err) == (2, "error: no connector named 'nosuch'\n")
    code, _, err = cli(capsys, "status", "demo", "--account", "bad name")
    assert (code, err) == (2, "error: --account 'bad name': use 1 to 64 letters, digits, _ . -\n")


def test_cli_login_without_the_client_secret(
    cli_process_env: None, vault: Vault, capsys: pytest.CaptureFixture[str]
) -> None:
    vault.delete("demo_client_secret")
    code, _, err = cli(capsys, "login", "demo", "--no-browser")
    assert code == 1
    assert err == (
        "error: demo: vault secret 'demo_client_secret' is not set; run: mcp-connectors vault set demo_client_secret\n"
    )
