"""Webhooks end to end: real server processes, deliveries signed by hand, events read back over REST, MCP and SSE."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import ResourceUpdatedNotification, TextResourceContents

from mcp_server._clients import ClientsFile
from mcp_server._vault import Vault
from tests._scenario import text_of
from tests._upstream import FakeUpstream
from tests.conftest import PASSPHRASE, ServerProcess, start_http_server, stop_process

STRIPE_SECRET = "whsec_stripe-7c6b5a4d3e2f-WEBHOOKSECRET"
GITHUB_SECRET = "gh-hook-secret-1a2b3c4d5e6f-WEBHOOK"
SLACK_SECRET = "slack-signing-9z8y7x6w5v-WEBHOOK"
WEBHOOK_SECRETS = (STRIPE_SECRET, GITHUB_SECRET, SLACK_SECRET)


def hook_manifests(base_url: str) -> dict[str, str]:
    op = "operations: [{name: ping, method: GET, path: /echo/ping}]\n"
    head = f"base_url: {base_url}\n{op}"
    return {
        "stripe": f"name: stripe\ntitle: Stripe\n{head}webhooks: {{type: stripe, secret: {{secret: stripe_whsec}}}}\n",
        "pruned": f"name: pruned\n{head}"
        "webhooks: {type: stripe, secret: {secret: stripe_whsec}, max_events: 3, remembered_ids: 100}\n",
        "github": f"name: github\ntitle: GitHub\n{head}webhooks: {{type: github, secret: {{secret: github_whsec}}}}\n",
        "slack": f"name: slack\n{head}"
        "webhooks: {type: hmac, secret: {env: SLACK_SIGNING_SECRET}, header: X-Slack-Signature, prefix: 'v0=',"
        " timestamp_header: X-Slack-Request-Timestamp, signed_payload: 'v0:{timestamp}:{body}',"
        " event_id: /event_id, event_type: /event/type, event_time: /event_time, max_body_bytes: 2048}\n",
        "unset": f"name: unset\n{head}webhooks: {{type: github, secret: {{secret: never_set_whsec}}}}\n",
    }


@pytest.fixture
def hook_env(
    server_env: dict[str, str], tools_dir: Path, vault_path: Path, upstream_server: FakeUpstream
) -> dict[str, str]:
    for name, text in hook_manifests(upstream_server.url).items():
        (tools_dir / f"{name}.yaml").write_text(text)
    vault = Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False)
    vault.set("stripe_whsec", STRIPE_SECRET)
    vault.set("github_whsec", GITHUB_SECRET)
    return {**server_env, "SLACK_SIGNING_SECRET": SLACK_SECRET}


@pytest.fixture
def hook_server(hook_env: dict[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_http_server(hook_env, tmp_path / "server.log")
    yield server
    stop_process(server.process)


# -- signing by hand, the way each provider does it -------------------------------------------------------------


def stripe_event(event_id: str, kind: str = "invoice.paid", created: int = 1_760_000_000, **extra: Any) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": kind, "created": created, **extra}).encode()


def stripe_headers(body: bytes, *, at: float | None = None, secret: str = STRIPE_SECRET) -> dict[str, str]:
    t = int(time.time() if at is None else at)
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json; charset=utf-8"}


def github_headers(body: bytes, delivery: str, event: str = "push", secret: str = GITHUB_SECRET) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


def slack_headers(body: bytes, *, at: float | None = None) -> dict[str, str]:
    t = str(int(time.time() if at is None else at))
    signature = hmac.new(SLACK_SECRET.encode(), f"v0:{t}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={signature}", "X-Slack-Request-Timestamp": t, "Content-Type": "application/json"}


def deliver(server: ServerProcess, connector: str, body: bytes, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(f"{server.url}/webhooks/{connector}", content=body, headers=headers, timeout=10)


def list_events(server: ServerProcess, connector: str, **parameters: Any) -> dict[str, Any]:
    response = httpx2.post(
        f"{server.url}/v1/invoke", json={"tool": f"{connector}_list_events", "parameters": parameters}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["result"]


def event_ids(server: ServerProcess, connector: str, **parameters: Any) -> list[str]:
    return [event["id"] for event in list_events(server, connector, limit=100, **parameters)["events"]]


def assert_refused(response: httpx2.Response, status: int, reason: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    if reason is not None:
        assert body["details"]["reason"] == reason
    for secret in WEBHOOK_SECRETS:
        assert secret not in response.text


def assert_no_webhook_secret(*texts: str) -> None:
    for text in texts:
        for secret in WEBHOOK_SECRETS:
            assert secret not in text, "a webhook secret leaked"


# -- receiving ------------------------------------------------------------------------------------------------


def test_stripe_deliveries_are_verified_stored_and_deduplicated(hook_server: ServerProcess) -> None:
    body = stripe_event("evt_1", amount=4200)
    accepted = deliver(hook_server, "stripe", body, stripe_headers(body))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"received": True, "duplicate": False, "event_id": "evt_1", "seq": accepted.json()["seq"]}
    again = deliver(hook_server, "stripe", body, stripe_headers(body))  # Stripe's retry: a fresh t, the same id
    assert again.status_code == 200 and again.json()["duplicate"] is True

    # Several v1 signatures (Stripe rolling a secret): one of them matching is enough.
    second = stripe_event("evt_2", "charge.succeeded")
    header = stripe_headers(second)
    t, v1 = header["Stripe-Signature"].split(",")
    header["Stripe-Signature"] = f"{t},v1={'0' * 64},{v1},v0=deadbeef"
    assert deliver(hook_server, "stripe", second, header).status_code == 200

    [latest, first] = list_events(hook_server, "stripe")["events"]
    assert (latest["id"], latest["type"]) == ("evt_2", "charge.succeeded")
    assert first["payload"] == json.loads(body) and first["time"] == "2025-10-09T08:53:20Z"
    assert first["seq"] == accepted.json()["seq"] and latest["seq"] > first["seq"]


def test_stripe_signature_and_tolerance_failures_store_nothing(hook_server: ServerProcess) -> None:
    now = time.time()
    body = stripe_event("evt_edge_ok")
    assert deliver(hook_server, "stripe", body, stripe_headers(body, at=now - 290)).status_code == 200
    assert deliver(hook_server, "stripe", body, stripe_headers(body, at=now + 290)).json()["duplicate"] is True

    def refused(event_id: str, headers: dict[str, str] | None = None, **signing: Any) -> httpx2.Response:
        payload = stripe_event(event_id)
        return deliver(hook_server, "stripe", payload, headers or stripe_headers(payload, **signing))

    assert_refused(refused("evt_old", at=now - 330), 401, "timestamp_outside_tolerance")
    assert_refused(refused("evt_future", at=now + 330), 401, "timestamp_outside_tolerance")
    assert_refused(refused("evt_badkey", secret="whsec_someone_else"), 401, "signature_mismatch")
    assert_refused(refused("evt_nosig", {"Content-Type": "application/json"}), 401, "signature_missing")
    assert_refused(refused("evt_junk", {"Stripe-Signature": "t=abc,v1=zz"}), 400, "signature_malformed")
    tampered = stripe_headers(stripe_event("evt_original"))
    assert_refused(refused("evt_tampered", tampered), 401, "signature_mismatch")
    assert event_ids(hook_server, "stripe") == ["evt_edge_ok"]


def test_github_and_generic_hmac_deliveries(hook_server: ServerProcess) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": "abc123"}).encode()
    delivery = str(uuid.uuid4())
    stored = deliver(hook_server, "github", body, github_headers(body, delivery))
    assert stored.status_code == 200 and stored.json()["event_id"] == delivery
    assert deliver(hook_server, "github", body, github_headers(body, delivery)).json()["duplicate"] is True
    ping = deliver(hook_server, "github", b'{"zen": "Keep it logically awesome."}', {})
    assert_refused(ping, 401, "signature_missing")
    wrong = github_headers(body, str(uuid.uuid4()), secret="not-the-secret")
    assert_refused(deliver(hook_server, "github", body, wrong), 401, "signature_mismatch")
    no_id = github_headers(body, "")
    del no_id["X-GitHub-Delivery"]
    assert_refused(deliver(hook_server, "github", body, no_id), 400, "event_id_missing")
    [event] = list_events(hook_server, "github")["events"]
    assert (event["id"], event["type"], event["payload"]["after"]) == (delivery, "push", "abc123")

    slack = json.dumps({"event_id": "Ev01", "event": {"type": "app_mention"}, "event_time": 1_760_000_000}).encode()
    assert deliver(hook_server, "slack", slack, slack_headers(slack)).status_code == 200
    assert_refused(
        deliver(hook_server, "slack", slack, slack_headers(slack, at=time.time() - 600)),
        401,
        "timestamp_outside_tolerance",
    )
    [mention] = list_events(hook_server, "slack")["events"]
    assert (mention["id"], mention["type"], mention["time"]) == ("Ev01", "app_mention", "2025-10-09T08:53:20Z")


def test_bad_deliveries_are_refused_with_json_and_nothing_is_lost(hook_server: ServerProcess) -> None:
    kept = stripe_event("evt_kept")
    assert deliver(hook_server, "stripe", kept, stripe_headers(kept)).status_code == 200

    assert_refused(deliver(hook_server, "nosuch", kept, stripe_headers(kept)), 404)
    no_hooks = deliver(hook_server, "echo", kept, stripe_headers(kept))
    assert_refused(no_hooks, 404)
    assert "no webhooks" in no_hooks.json()["message"]
    not_json = b"this is not json"
    assert_refused(deliver(hook_server, "stripe", not_json, stripe_headers(not_json)), 400, "not_json")
    array = b'[{"id": "evt_in_array"}]'
    assert_refused(deliver(hook_server, "stripe", array, stripe_headers(array)), 400, "not_json")
    form = b"payload=%7B%22id%22%3A%22evt_form%22%7D"
    form_headers = {**stripe_headers(form), "Content-Type": "application/x-www-form-urlencoded"}
    assert_refused(deliver(hook_server, "stripe", form, form_headers), 415, "not_json")
    no_id = json.dumps({"type": "invoice.paid"}).encode()
    assert_refused(deliver(hook_server, "stripe", no_id, stripe_headers(no_id)), 400, "event_id_missing")
    # Over the connector's own limit (2 KiB for slack), and over the HTTP layer's 1 MiB for everyone.
    big = json.dumps({"event_id": "Ev_big", "pad": "x" * 3000}).encode()
    assert_refused(deliver(hook_server, "slack", big, slack_headers(big)), 413, "body_too_large")
    huge = stripe_event("evt_huge", pad="x" * (1024 * 1024 + 10))
    assert_refused(deliver(hook_server, "stripe", huge, stripe_headers(huge)), 413)
    # A connector whose secret is not in the vault: the sender is told to come back later.
    unsigned = b'{"zen": "x"}'
    assert_refused(deliver(hook_server, "unset", unsigned, github_headers(unsigned, "d-1")), 503)
    assert "mcp-connectors vault set never_set_whsec" in hook_server.log()

    assert event_ids(hook_server, "stripe") == ["evt_kept"]
    assert event_ids(hook_server, "slack") == []
    assert_no_webhook_secret(hook_server.log())


def test_a_replay_after_a_restart_is_a_duplicate(hook_env: dict[str, str], tmp_path: Path) -> None:
    body = json.dumps({"action": "opened"}).encode()
    headers = github_headers(body, "delivery-before-restart", "issues")
    server = start_http_server(hook_env, tmp_path / "first.log")
    try:
        first = deliver(server, "github", body, headers)
        assert first.status_code == 200 and first.json()["duplicate"] is False
    finally:
        stop_process(server.process)
    server = start_http_server(hook_env, tmp_path / "second.log")
    try:
        replayed = deliver(server, "github", body, headers)  # byte for byte the same request
        assert replayed.status_code == 200
        assert replayed.json() == {**first.json(), "duplicate": True}
        assert event_ids(server, "github") == ["delivery-before-restart"]
    finally:
        stop_process(server.process)
    assert (Path(hook_env["MCP_CONNECTORS_VAULT"]).parent / "events.sqlite3").exists()


def test_the_store_is_bounded_per_connector(hook_server: ServerProcess) -> None:
    for n in range(6):
        body = stripe_event(f"evt_p{n}")
        assert deliver(hook_server, "pruned", body, stripe_headers(body)).json()["duplicate"] is False
    assert event_ids(hook_server, "pruned") == ["evt_p5", "evt_p4", "evt_p3"]
    # A pruned event's id is still remembered: its replay is a duplicate, not a new event.
    oldest = stripe_event("evt_p0")
    assert deliver(hook_server, "pruned", oldest, stripe_headers(oldest)).json()["duplicate"] is True
    assert event_ids(hook_server, "pruned") == ["evt_p5", "evt_p4", "evt_p3"]
    # Another connector's events are not pruned by this one's bound.
    body = stripe_event("evt_other")
    deliver(hook_server, "stripe", body, stripe_headers(body))
    assert event_ids(hook_server, "stripe") == ["evt_other"]


async def test_concurrent_deliveries(hook_server: ServerProcess) -> None:
    deliveries = [f"d-{n:02d}" for n in range(40)]
    answers: list[httpx2.Response] = []

    async def send(http: httpx2.AsyncClient, delivery: str) -> None:
        body = json.dumps({"n": delivery}).encode()
        answers.append(
            await http.post(f"{hook_server.url}/webhooks/github", content=body, headers=github_headers(body, delivery))
        )

    async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as group:
        for delivery in deliveries + deliveries[:10]:  # ten of them twice, at the same time
            group.start_soon(send, http, delivery)
    assert [a.status_code for a in answers] == [200] * 50
    assert sum(1 for a in answers if not a.json()["duplicate"]) == 40
    assert len({a.json()["seq"] for a in answers if not a.json()["duplicate"]}) == 40
    assert sorted(event_ids(hook_server, "github")) == deliveries


# -- reading: the tool, resources and notifications, the SSE stream -----------------------------------------------


async def test_list_events_filters_over_mcp(hook_server: ServerProcess) -> None:
    for n, (kind, created) in enumerate(
        [("invoice.paid", 1000), ("invoice.voided", 2000), ("charge.succeeded", 3000), ("invoice.paid", 4000)]
    ):
        body = stripe_event(f"evt_f{n}", kind, created)
        assert deliver(hook_server, "stripe", body, stripe_headers(body)).status_code == 200

    async with Client(f"{hook_server.url}/mcp") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"stripe_list_events", "github_list_events", "batch_invoke"} <= tools.keys()
        assert "echo_list_events" not in tools
        listing = tools["stripe_list_events"]
        assert listing.annotations is not None and listing.annotations.read_only_hint is True

        async def ids(**arguments: Any) -> list[str]:
            result = await client.call_tool("stripe_list_events", arguments)
            assert not result.is_error, text_of(result)
            assert result.structured_content is not None
            return [event["id"] for event in result.structured_content["events"]]

        assert await ids() == ["evt_f3", "evt_f2", "evt_f1", "evt_f0"]
        assert await ids(type="invoice.*") == ["evt_f3", "evt_f1", "evt_f0"]
        assert await ids(type="*.paid") == ["evt_f3", "evt_f0"]
        assert await ids(since="1970-01-01T00:30:00Z", until=3000) == ["evt_f2", "evt_f1"]
        assert await ids(since="1970-01-01T00:30:00") == ["evt_f3", "evt_f2", "evt_f1"]  # no zone: UTC
        page = await client.call_tool("stripe_list_events", {"limit": 2})
        assert page.structured_content is not None
        assert [e["id"] for e in page.structured_content["events"]] == ["evt_f3", "evt_f2"]
        assert await ids(limit=2, before=page.structured_content["next_before"]) == ["evt_f1", "evt_f0"]

        bad = await client.call_tool("stripe_list_events", {"since": "last tuesday"})
        assert bad.is_error and bad.structured_content is not None
        assert bad.structured_content["error_code"] == "INVALID_ARGUMENTS"
        assert bad.structured_content["details"]["path"] == "$.since"
        extra = await client.call_tool("stripe_list_events", {"limit": 500})
        assert extra.is_error and extra.structured_content is not None
        assert extra.structured_content["error_code"] == "INVALID_ARGUMENTS"

    rest = httpx2.get(f"{hook_server.url}/v1/tools").json()["tools"]
    assert {"stripe_list_events", "batch_invoke"} <= {tool["name"] for tool in rest}
    invalid = httpx2.post(
        f"{hook_server.url}/v1/invoke", json={"tool": "stripe_list_events", "parameters": {"limit": 0}}
    )
    assert invalid.status_code == 422 and invalid.json()["error_code"] == "INVALID_ARGUMENTS"


class ResourceUpdates:
    def __init__(self) -> None:
        self.uris: list[str] = []
        self._event = anyio.Event()

    async def handler(self, message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.uris.append(message.params.uri)
            self._event.set()

    async def wait(self, seconds: float = 10) -> None:
        with anyio.fail_after(seconds):
            await self._event.wait()
        self._event = anyio.Event()


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_resources_and_updated_notifications(hook_server: ServerProcess) -> None:
    seen = ResourceUpdates()
    async with (
        Client(f"{hook_server.url}/mcp", mode="legacy", message_handler=seen.handler) as legacy,
        Client(f"{hook_server.url}/mcp") as modern,
        modern.listen(resource_subscriptions=["events://stripe"]) as subscription,
    ):
        capabilities = legacy.server_capabilities
        assert capabilities is not None and capabilities.resources is not None
        assert capabilities.resources.subscribe is True
        listed = {str(resource.uri) for resource in (await legacy.list_resources()).resources}
        assert listed == {"events://stripe", "events://pruned", "events://github", "events://slack", "events://unset"}
        await legacy.subscribe_resource("events://stripe")  # pyright: ignore[reportDeprecated]

        body = stripe_event("evt_notified", "customer.created")
        assert deliver(hook_server, "stripe", body, stripe_headers(body)).status_code == 200

        await seen.wait()
        assert seen.uris == ["events://stripe"]
        with anyio.fail_after(10):
            async for event in subscription:
                assert event == ResourceUpdated(uri="events://stripe")
                break
        for client in (legacy, modern):
            read = await client.read_resource("events://stripe")
            [contents] = read.contents
            assert isinstance(contents, TextResourceContents) and contents.mime_type == "application/json"
            document = json.loads(contents.text)
            assert [e["id"] for e in document["events"]] == ["evt_notified"]

        # Another connector's event is not announced to a stripe subscriber; a duplicate is announced to nobody.
        other = json.dumps({"x": 1}).encode()
        deliver(hook_server, "github", other, github_headers(other, "quiet-1"))
        deliver(hook_server, "stripe", body, stripe_headers(body))
        await anyio.sleep(0.5)
        assert seen.uris == ["events://stripe"]
        for client in (legacy, modern):
            with pytest.raises(MCPError) as unknown:
                await client.read_resource("events://echo")
            assert unknown.value.error.code == -32602
            assert unknown.value.error.data == {"uri": "events://echo"}
            templates = (await client.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["events://{connector}"]


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_event_resources_follow_the_client_scopes(
    hook_env: dict[str, str], vault_path: Path, tmp_path: Path
) -> None:
    """A client scoped to GitHub lists, reads, subscribes to and listens for GitHub's events only."""
    token = ClientsFile(vault_path.with_name("clients.json")).add("github_reader", scopes=["tools:github:read"])
    server = start_http_server(hook_env, tmp_path / "server.log")
    try:
        seen = ResourceUpdates()
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
            Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as modern,
            Client(
                streamable_http_client(f"{server.url}/mcp", http_client=http),
                mode="legacy",
                message_handler=seen.handler,
            ) as legacy,
            modern.listen(resource_subscriptions=["events://stripe", "events://github", "events://nope"]) as listening,
        ):
            # The acknowledgment names only what this client may read: the rest is never announced to it.
            assert listening.honored.resource_subscriptions == ["events://github"]
            for client in (modern, legacy):
                assert {str(r.uri) for r in (await client.list_resources()).resources} == {"events://github"}
                with pytest.raises(MCPError) as refused:
                    await client.read_resource("events://stripe")
                assert refused.value.error.code == -32602
            with pytest.raises(MCPError):
                await legacy.subscribe_resource("events://stripe")  # pyright: ignore[reportDeprecated]
            await legacy.subscribe_resource("events://github")  # pyright: ignore[reportDeprecated]

            body = stripe_event("evt_hidden")
            assert deliver(server, "stripe", body, stripe_headers(body)).status_code == 200
            github = json.dumps({"action": "opened"}).encode()
            assert deliver(server, "github", github, github_headers(github, "scoped-1")).status_code == 200
            with anyio.fail_after(10):
                async for event in listening:
                    assert event == ResourceUpdated(uri="events://github")
                    break
            await seen.wait()
            await anyio.sleep(0.3)
            assert seen.uris == ["events://github"]

        # The REST stream: a connector this client may not read and one that does not exist look the same.
        authorized = {"Authorization": f"Bearer {token}"}
        for name in ("stripe", "no_such_connector"):
            refused = httpx2.get(f"{server.url}/v1/events/{name}", headers=authorized, timeout=10)
            assert refused.status_code == 403, refused.text
            assert refused.json()["message"] == f"This client may not read the events of {name!r}"
        with httpx2.stream("GET", f"{server.url}/v1/events/github", headers=authorized, timeout=10) as allowed:
            assert allowed.status_code == 200
            assert allowed.headers["content-type"].startswith("text/event-stream")
    finally:
        stop_process(server.process)


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """A minimal text/event-stream parser: one dict per event (comments under "comment")."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            event.setdefault("comment", line[1:].strip())
        else:
            field, _, value = line.partition(":")
            event[field] = event.get(field, "") + value.removeprefix(" ")


def next_data_event(events: Iterator[dict[str, str]]) -> dict[str, str]:
    return next(event for event in events if "data" in event)


def test_sse_stream_delivers_new_events_and_resumes(hook_server: ServerProcess) -> None:
    def post(delivery: str) -> None:
        body = json.dumps({"delivery": delivery}).encode()
        assert deliver(hook_server, "github", body, github_headers(body, delivery)).status_code == 200

    post("before-the-stream")  # already stored: a stream without Last-Event-ID starts after it
    url = f"{hook_server.url}/v1/events/github"
    with httpx2.Client(timeout=httpx2.Timeout(10, read=20)) as http:
        with http.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response.iter_lines())
            assert next(events)["comment"] == "ready"
            post("live-1")
            first = next_data_event(events)
        resume_from = first["id"]
        assert json.loads(first["data"])["id"] == "live-1"

        post("while-away-1")
        post("while-away-2")
        with http.stream("GET", url, headers={"Last-Event-ID": resume_from}) as response:
            events = sse_events(response.iter_lines())
            missed = [json.loads(next_data_event(events)["data"])["id"] for _ in range(2)]
            assert missed == ["while-away-1", "while-away-2"]
            post("live-2")
            assert json.loads(next_data_event(events)["data"])["id"] == "live-2"

        assert http.get(f"{hook_server.url}/v1/events/echo").status_code == 404
        bad = http.get(url, headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    assert_no_webhook_secret(hook_server.log())


def test_an_open_stream_does_not_hold_shutdown(hook_env: dict[str, str], tmp_path: Path) -> None:
    server = start_http_server(hook_env, tmp_path / "server.log")
    try:
        with httpx2.Client(timeout=httpx2.Timeout(10, read=30)) as http:
            with http.stream("GET", f"{server.url}/v1/events/stripe") as response:
                events = sse_events(response.iter_lines())
                assert next(events)["comment"] == "ready"
                started = time.monotonic()
                server.process.terminate()
                assert [event for event in events if "data" in event] == []  # the stream ends, no error
            assert server.process.wait(timeout=20) == 0
            assert time.monotonic() - started < 8  # well before the drain timeout would have cut it
    finally:
        stop_process(server.process)
