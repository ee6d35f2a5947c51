"""Scopes, per-scope views, per-client limits, the clients file and JWT verification, in-process.

The same behaviour through real server processes is in test_inbound.py and test_inbound_oauth.py.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import anyio
import jwt as pyjwt
import pytest

from mcp_server._access import ClientLimiter, OverClientLimit, Principal
from mcp_server._catalog import load_catalog
from mcp_server._clients import ClientsFile, hash_token
from mcp_server._config import AccessSettings, RateSpec
from mcp_server._oauth_resource import AuthRefused, JwksCache, OAuthResource, token_scopes
from mcp_server._registry import Registry
from mcp_server._scopes import EVERYTHING, Scopes, ToolView, ToolViews, is_scope
from tests._fake_idp import FakeIdP, SigningKey

ECHO_READ = {"echo_get_item", "echo_fail", "echo_text", "echo_empty", "echo_slow", "echo_big", "echo_throttled"}


@pytest.fixture
def registry(tools_dir: Path) -> Registry:
    return Registry.from_catalog(load_catalog([tools_dir]))


def names(view: ToolView) -> set[str]:
    return {tool.name for tool in view.registry}


# ---------------------------------------------------------------------------------------------- scopes


def test_scope_grammar() -> None:
    for good in (
        "tools:*",
        "tools:*:read",
        "tools:*:*",
        "tools:github:*",
        "tools:github:read",
        "tools:x_y-1",
        "operator",
    ):
        assert is_scope(good), good
    for bad in ("tools", "tool:*", "tools:", "tools:*:write", "tools:GitHub:*", "tools:a b", "openid", "tools:a:b:c"):
        assert not is_scope(bad), bad


def test_views_follow_scopes(registry: Registry) -> None:
    every = {tool.name for tool in registry}
    echo = {name for name in every if name.startswith("echo_")}

    def view(*scopes: str) -> set[str]:
        return names(ToolView(registry, Scopes.parse(scopes)))

    assert view("tools:*") == every
    assert view("tools:*:read") == {t.name for t in registry if t.annotations["readOnlyHint"]}
    assert view("tools:echo:*") == echo
    assert view("tools:echo:read") == ECHO_READ
    assert view("tools:echo_create_item") == {"echo_create_item"}
    assert view("tools:echo:read", "tools:echo_create_item") == ECHO_READ | {"echo_create_item"}
    assert view("openid", "profile", "tools:echo") == set()  # not ours, or a tool named "echo": nothing
    assert not Scopes.parse(["openid", "operator"]).any_tool
    assert Scopes.parse(["tools:nothing_here"]).any_tool


def test_unknown_and_forbidden_reveal_nothing(registry: Registry) -> None:
    everything = ToolView(registry, Scopes.parse(["tools:*"]))
    assert everything.verdict("echo_get_item") == "allowed"
    assert everything.verdict("no_such_tool") == "unknown"  # it can list everything: unknown tells it nothing new
    reader = ToolView(registry, Scopes.parse(["tools:*:read"]))
    assert reader.verdict("echo_get_item") == "allowed"
    # An existing write tool and a name that exists nowhere get the same answer.
    assert reader.verdict("echo_create_item") == reader.verdict("no_such_tool") == "forbidden"


def test_read_only_mode_serves_only_read_only_tools(registry: Registry) -> None:
    view = ToolView(registry, Scopes.parse(["tools:*"]), read_only_mode=True)
    assert names(view) == {t.name for t in registry if t.annotations["readOnlyHint"]}
    assert view.verdict("echo_create_item") == "unknown"  # not served at all, to anyone
    scoped = ToolView(registry, Scopes.parse(["tools:echo:*"]), read_only_mode=True)
    assert names(scoped) == ECHO_READ


def test_views_are_cached_per_scope_set_and_dropped_on_reload(registry: Registry, tools_dir: Path) -> None:
    views = ToolViews()
    first = views.get(registry, Scopes.parse(["tools:echo:read", "tools:*:read"]))
    assert views.get(registry, Scopes.parse(["tools:*:read", "tools:echo:read"])) is first  # same set, same view
    reloaded = Registry.from_catalog(load_catalog([tools_dir]))
    assert views.get(reloaded, Scopes.parse(["tools:*:read", "tools:echo:read"])) is not first


# ---------------------------------------------------------------------------------------------- limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(rate: RateSpec | None = None, concurrent: int | None = None, *, off: bool = False) -> Principal:
    return Principal(
        "alice", Scopes.parse(["tools:*"]), rate_limit=rate, rate_limit_off=off, max_concurrent=concurrent,
        authenticated=True,
    )  # fmt: skip


def test_token_bucket_headers_and_refill() -> None:
    clock = Clock()
    limiter = ClientLimiter(default_rate=RateSpec(3, 60), default_concurrency=None, clock=clock)
    alice = client()
    states = []
    for _ in range(3):
        with limiter.admit(alice) as state:
            states.append(state)
    assert [(s.limit, s.remaining) for s in states if s] == [(3, 2), (3, 1), (3, 0)]
    assert states[-1] is not None and states[-1].reset == 60  # 3 tokens at one per 20 s
    with pytest.raises(OverClientLimit) as refused, limiter.admit(alice):
        pass
    assert refused.value.details == {"retry_after": 20, "limit": "client", "reason": "rate"}
    assert refused.value.error_code == "RATE_LIMITED"
    clock.now += 20
    with limiter.admit(alice) as state:
        assert state is not None and state.remaining == 0
    # A client of its own rate: its record wins over the default; `off` means unlimited.
    with limiter.admit(client(RateSpec(1, 1))) as state:
        assert state is not None and state.limit == 1
    for _ in range(50):
        with limiter.admit(client(off=True)) as state:
            assert state is None


def test_concurrency_bound_refuses_at_once_and_frees_on_exit() -> None:
    limiter = ClientLimiter(default_rate=None, default_concurrency=2)
    alice = client()
    with limiter.admit(alice), limiter.admit(alice):
        with pytest.raises(OverClientLimit) as refused, limiter.admit(alice):
            pass
        assert refused.value.details["reason"] == "concurrency"
    with limiter.admit(alice):
        pass
    with limiter.admit(client(concurrent=0)), limiter.admit(client(concurrent=0)), limiter.admit(client(concurrent=0)):
        pass  # 0: unbounded for this client


def test_concurrency_refusal_takes_no_token() -> None:
    clock = Clock()
    limiter = ClientLimiter(default_rate=RateSpec(2, 60), default_concurrency=1, clock=clock)
    alice = client()
    with limiter.admit(alice) as state:
        assert state is not None and state.remaining == 1
        for _ in range(5):
            with pytest.raises(OverClientLimit), limiter.admit(alice):
                pass
    with limiter.admit(alice) as state:
        assert state is not None and state.remaining == 0


def test_unauthenticated_principal_is_not_limited() -> None:
    limiter = ClientLimiter(default_rate=RateSpec(1, 60), default_concurrency=1)
    local = Principal("local", EVERYTHING)
    for _ in range(5):
        with limiter.admit(local) as state:
            assert state is None


def test_rate_spec_and_access_settings() -> None:
    assert RateSpec.parse("120/60") == RateSpec(120, 60.0)
    assert RateSpec.parse("10") == RateSpec(10, 60.0)
    assert RateSpec.parse("5/1s") == RateSpec(5, 1.0)
    assert RateSpec.parse("off") is None
    for bad in ("0/60", "x", "10/0", "-1/5", "1/"):
        with pytest.raises(ValueError, match="invalid rate limit"):
            RateSpec.parse(bad)
    settings = AccessSettings.from_environ(
        {"MCP_CONNECTORS_CLIENT_RATE_LIMIT": "30/10", "MCP_CONNECTORS_CLIENT_CONCURRENCY": "off"},
        client_concurrency="3",
    )
    assert settings.client_rate_limit == RateSpec(30, 10.0)
    assert settings.client_concurrency == 3  # a flag over the environment
    with pytest.raises(ValueError, match="both --oauth-issuer and --oauth-jwks-url"):
        AccessSettings.from_environ({"MCP_CONNECTORS_OAUTH_ISSUER": "https://idp.example"})


# ---------------------------------------------------------------------------------------------- clients file


def test_clients_file_stores_only_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "data" / "clients.json"
    clients = ClientsFile(path)
    token = clients.add("alice", scopes=["tools:github:*"], accounts={"*": "alice"}, expires_in_days=30)
    assert token.startswith("mcpc_") and len(token) == 5 + 43
    text = path.read_text()
    assert token not in text
    assert hash_token(token) in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    record = clients.lookup(token)
    assert record is not None and record.name == "alice" and record.tenant == "alice"
    assert clients.lookup(token + "x") is None
    with pytest.raises(ValueError, match="already exists"):
        clients.add("alice", scopes=["tools:*"])
    with pytest.raises(ValueError, match="not a scope"):
        clients.add("bob", scopes=["tools"])
    with pytest.raises(ValueError, match="client name"):
        clients.add("bob smith", scopes=["tools:*"])


def test_clients_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    server_view = ClientsFile(path)  # what a running server holds
    writer = ClientsFile(path)  # what the CLI does meanwhile
    token = writer.add("alice", scopes=["tools:*"])
    assert server_view.lookup(token) is not None
    assert writer.revoke("alice")
    assert server_view.lookup(token) is None
    assert not writer.revoke("alice")


def test_a_broken_clients_file_refuses_every_token(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    clients = ClientsFile(path)
    token = clients.add("alice", scopes=["tools:*"])
    doc = json.loads(path.read_text())
    doc["clients"]["alice"]["scopes"] = "tools:*"  # hand-edited wrongly
    path.write_text(json.dumps(doc))
    assert ClientsFile(path).lookup(token) is None


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"

    async def add_many() -> None:
        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(
                    anyio.to_thread.run_sync, lambda i=i: ClientsFile(path).add(f"c{i}", scopes=["tools:*"])
                )

    anyio.run(add_many)
    assert sorted(ClientsFile(path).records()) == sorted(f"c{i}" for i in range(20))


# ---------------------------------------------------------------------------------------------- OAuth


class FakeJwks:
    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.fail = False

    def __call__(self) -> Any:
        self.calls += 1
        if self.fail:
            raise OSError("connection refused")
        return {"keys": [k.public_jwk() for k in self.keys]}


RESOURCE = "https://mcp.example.com/mcp"
ISSUER = "https://idp.example.com"


def idp() -> FakeIdP:
    fake = FakeIdP()
    fake.port = 1  # only its signing is used here
    return fake


async def test_jwks_cache_refreshes_on_unknown_kid_at_most_once_per_cooldown() -> None:
    clock = Clock()
    old, new = SigningKey.ec("k1"), SigningKey.ec("k2")
    fetch = FakeJwks(old)
    cache = JwksCache("https://idp/jwks", cooldown=10, clock=clock, fetch=fetch)
    assert await cache.get("k1") is not None
    assert await cache.get("k1") is not None
    assert fetch.calls == 1
    fetch.keys = [new]
    assert await cache.get("k2") is None  # within the cooldown: no new fetch for a kid we do not know
    assert fetch.calls == 1
    clock.now += 10
    assert await cache.get("k2") is not None  # rotation picked up
    assert fetch.calls == 2
    assert await cache.get("k1") is None
    clock.now += 3600
    fetch.fail = True
    assert await cache.get("k2") is not None  # stale, the IdP down: keep using the keys we have


async def test_jwks_cache_coalesces_concurrent_refreshes() -> None:
    fetch = FakeJwks(SigningKey.ec("k1"))
    cache = JwksCache("https://idp/jwks", cooldown=0, fetch=fetch)
    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(cache.get, "k1")
    assert fetch.calls == 1


async def test_jwt_verification_in_process() -> None:
    key = SigningKey.ec("k1")
    fake = idp()
    resource = OAuthResource(
        issuer=ISSUER, jwks=JwksCache("x", fetch=FakeJwks(key)), resource=RESOURCE, tenant_claim="org"
    )
    token = fake.sign(key, audience=[RESOURCE, "other"], issuer=ISSUER, scope=None, scp=["tools:echo:read"], org="acme")
    principal = await resource.verify(token)
    assert principal.id == "oauth:user-123"
    assert principal.accounts == {"*": "acme"}
    assert principal.scopes == Scopes.parse(["tools:echo:read"])
    assert principal.issuer == ISSUER and principal.subject == "user-123"

    async def refused(token: str) -> str:
        with pytest.raises(AuthRefused) as exc:
            await resource.verify(token)
        assert exc.value.status == 401 and exc.value.error == "invalid_token"
        return exc.value.description

    assert "org" in await refused(fake.sign(key, audience=RESOURCE, issuer=ISSUER))  # no tenant claim
    assert "org" in await refused(fake.sign(key, audience=RESOURCE, issuer=ISSUER, org="a b"))
    assert "expired" in await refused(fake.sign(key, audience=RESOURCE, issuer=ISSUER, lifetime=-60, org="a"))
    assert "not issued for" in await refused(fake.sign(key, audience="https://other/mcp", issuer=ISSUER, org="a"))
    assert "issuer" in await refused(fake.sign(key, audience=RESOURCE, issuer="https://evil", org="a"))
    other = SigningKey.ec("k1")  # same kid, another private key: a forged signature
    assert "signature" in await refused(fake.sign(other, audience=RESOURCE, issuer=ISSUER, org="a"))
    hs = pyjwt.encode({"iss": ISSUER, "aud": RESOURCE, "exp": 2**31}, "s" * 32, algorithm="HS256")
    assert "algorithm" in await refused(hs)
    unsigned = pyjwt.encode({"iss": ISSUER, "aud": RESOURCE, "exp": 2**31}, "", algorithm="none")
    assert "algorithm" in await refused(unsigned)
    assert "not a valid JWT" in await refused("a.b.c")


def test_token_scopes_reads_scope_and_scp() -> None:
    assert token_scopes({"scope": "tools:* openid"}) == ["tools:*", "openid"]
    assert token_scopes({"scp": ["tools:a:read"], "scope": "tools:b:read"}) == ["tools:b:read", "tools:a:read"]
    assert token_scopes({"scp": "tools:x tools:y"}) == ["tools:x", "tools:y"]
    assert token_scopes({"scope": 5}) == []


@pytest.mark.parametrize("entry", [[], "alice", 7, None])
def test_a_clients_file_entry_that_is_not_an_object_fails_closed(tmp_path: Path, entry: object) -> None:
    path = tmp_path / "clients.json"
    clients = ClientsFile(path)
    token = clients.add("bob", scopes=["tools:*"])
    document = json.loads(path.read_text())
    document["clients"]["alice"] = entry
    path.write_text(json.dumps(document))
    assert ClientsFile(path).lookup(token) is None, "a damaged file refuses every token, it does not crash"
