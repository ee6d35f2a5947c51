"""The bundled tools/stripe.yaml against a fake api.stripe.com (tests/_fake_stripe.py), through the real pipeline and
once through the real stdio command with the SDK's client, which checks every structuredContent against the tool's
outputSchema."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx2
import pytest
from jsonschema import Draft202012Validator
from mcp import Client, StdioServerParameters

from mcp_server._catalog import load_catalog
from mcp_server._errors import ToolError
from mcp_server._pipeline import Outcome, Pipeline, ToolSuccess
from mcp_server._registry import Registry
from mcp_server._server import to_call_tool_result
from mcp_server._vault import Vault
from tests._fake_stripe import CUSTOMERS, PRICES, FakeStripe, parse_stripe_form
from tests._upstream import Recorded, UpstreamThread
from tests.conftest import PASSPHRASE, server_command

BUNDLED_MANIFEST = Path(__file__).resolve().parents[1] / "tools" / "stripe.yaml"
KEY = FakeStripe.api_key
BASIC, PRO = list(PRICES)
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ALL_TOOLS = {
    f"stripe_{name}"
    for name in [
        "create_charge",
        "list_charges",
        "get_charge",
        "create_refund",
        "list_refunds",
        "get_refund",
        "create_payment_method",
        "list_payment_methods",
        "get_payment_method",
        "create_subscription",
        "list_subscriptions",
        "get_subscription",
        "cancel_subscription",
    ]
}


@pytest.fixture(scope="module")
def stripe_server() -> Iterator[FakeStripe]:
    thread = UpstreamThread(FakeStripe())
    started = thread.start()
    assert isinstance(started, FakeStripe)
    yield started
    thread.stop()


@pytest.fixture
def stripe(stripe_server: FakeStripe) -> FakeStripe:
    stripe_server.reset()
    return stripe_server


def stripe_tools(directory: Path, base_url: str) -> Path:
    """The bundled manifest pointed at the fake; its output schemas still come from the bundled schemas/stripe/."""
    text = BUNDLED_MANIFEST.read_text()
    assert text.count("base_url: https://api.stripe.com\n") == 1
    directory.mkdir()
    (directory / "stripe.yaml").write_text(
        text.replace("base_url: https://api.stripe.com\n", f"base_url: {base_url}\n")
    )
    return directory


def make_pipeline(tools: Path, vault_path: Path, key: str | None) -> Pipeline:
    catalog = load_catalog([tools])
    assert not catalog.faults, catalog.faults
    vault = Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False)
    if key is not None:
        vault.set("stripe_secret_key", key)
    return Pipeline(Registry.from_catalog(catalog), vault, environ={})


@pytest.fixture
async def pipeline(tmp_path: Path, stripe_server: FakeStripe) -> AsyncIterator[Pipeline]:
    async with make_pipeline(stripe_tools(tmp_path / "tools", stripe_server.url), tmp_path / "vault.json", KEY) as p:
        yield p


def clean(outcome: Outcome) -> None:
    """The secret key, in any form the redactor knows, appears nowhere a client could see."""
    seen = json.dumps(outcome.to_body()) if isinstance(outcome, ToolError) else outcome.text
    structured = to_call_tool_result(outcome).structured_content
    for text in (seen, json.dumps(structured)):
        assert KEY not in text and KEY[8:] not in text


def ok(pipeline: Pipeline, tool: str, outcome: Outcome) -> dict[str, Any]:
    """A success whose structuredContent validates against the outputSchema the tool publishes."""
    assert isinstance(outcome, ToolSuccess), outcome.to_body()
    clean(outcome)
    schema = pipeline.registry.get(tool).mcp_tool.output_schema
    assert schema is not None
    structured = to_call_tool_result(outcome).structured_content
    errors = [f"{e.json_path}: {e.message}" for e in Draft202012Validator(schema).iter_errors(structured)]
    assert errors == [], errors
    assert isinstance(outcome.value, dict)
    return outcome.value


def failed(outcome: Outcome, code: str) -> ToolError:
    assert isinstance(outcome, ToolError), outcome
    assert outcome.error_code == code, outcome.to_body()
    clean(outcome)
    return outcome


def form(request: Recorded) -> list[tuple[str, str]]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return parse_qsl(request.body.decode(), keep_blank_values=True)


def sent(stripe: FakeStripe, method: str, path: str, query: str = "") -> Recorded:
    """The one request the last call made, with the headers every Stripe request carries."""
    assert len(stripe.requests) == 1, [(r.method, r.raw_path) for r in stripe.requests]
    request = stripe.requests.pop()
    assert (request.method, request.raw_path, unquote(request.query)) == (method, path, query)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["stripe-version"] == "2024-06-20"
    if method == "POST":
        assert UUID4.match(request.headers["idempotency-key"]), request.headers
    else:
        assert "idempotency-key" not in request.headers
    return request


async def charge(pipeline: Pipeline, amount: int = 2000, **extra: Any) -> dict[str, Any]:
    outcome = await pipeline.invoke(
        "stripe_create_charge", {"amount": amount, "currency": "usd", "source": "tok_visa", **extra}
    )
    return ok(pipeline, "stripe_create_charge", outcome)


# ------------------------------------------------------------------ charges


async def test_create_charge_sends_stripes_form(pipeline: Pipeline, stripe: FakeStripe) -> None:
    arguments = {
        "amount": 2000,
        "currency": "usd",
        "source": "tok_visa",
        "description": "Order 6735 — ünïcode",
        "metadata": {"order_id": "6735", "channel": "web shop"},
        "capture": True,
    }
    value = ok(pipeline, "stripe_create_charge", await pipeline.invoke("stripe_create_charge", arguments))
    request = sent(stripe, "POST", "/v1/charges")
    assert form(request) == [
        ("amount", "2000"),
        ("currency", "usd"),
        ("source", "tok_visa"),
        ("description", "Order 6735 — ünïcode"),
        ("capture", "true"),
        ("metadata[order_id]", "6735"),
        ("metadata[channel]", "web shop"),
    ]  # in the order of the body schema's properties
    assert b"metadata%5Border_id%5D=6735" in request.body and b"web+shop" in request.body
    assert value["object"] == "charge" and value["id"].startswith("ch_") and value["status"] == "succeeded"
    assert value["amount"] == 2000 and value["paid"] is True and value["metadata"] == arguments["metadata"]
    assert value["payment_method_details"]["card"]["last4"] == "4242"


async def test_list_charges_pages_newest_first(pipeline: Pipeline, stripe: FakeStripe) -> None:
    made = [(await charge(pipeline, 1000 + i))["id"] for i in range(12)]
    newest_first = made[::-1]
    stripe.requests.clear()
    first = ok(pipeline, "stripe_list_charges", await pipeline.invoke("stripe_list_charges", {"limit": 5}))
    sent(stripe, "GET", "/v1/charges", "limit=5")
    assert [c["id"] for c in first["items"]] == newest_first[:5]
    assert first["has_more"] is True and first["next_page"] == {"starting_after": newest_first[4]}
    assert first["object"] == "list" and first["url"] == "/v1/charges"
    second = ok(
        pipeline,
        "stripe_list_charges",
        await pipeline.invoke("stripe_list_charges", {"limit": 5, **first["next_page"]}),
    )
    sent(stripe, "GET", "/v1/charges", f"limit=5&starting_after={newest_first[4]}")
    assert [c["id"] for c in second["items"]] == newest_first[5:10]
    everything = ok(
        pipeline, "stripe_list_charges", await pipeline.invoke("stripe_list_charges", {"limit": 5, "all_pages": True})
    )
    assert [c["id"] for c in everything["items"]] == newest_first
    assert everything["pages"] == 3 and everything["truncated"] is False and everything["next_page"] is None


async def test_list_charges_filters(pipeline: Pipeline, stripe: FakeStripe) -> None:
    await charge(pipeline)
    mine = await charge(pipeline, customer=CUSTOMERS[0])
    stripe.requests.clear()
    arguments = {"customer": CUSTOMERS[0], "created": {"gte": mine["created"]}}
    value = ok(pipeline, "stripe_list_charges", await pipeline.invoke("stripe_list_charges", arguments))
    sent(stripe, "GET", "/v1/charges", f"customer={CUSTOMERS[0]}&created[gte]={mine['created']}")
    assert [c["id"] for c in value["items"]] == [mine["id"]] and value["has_more"] is False


async def test_get_charge_and_resource_missing(pipeline: Pipeline, stripe: FakeStripe) -> None:
    made = await charge(pipeline)
    stripe.requests.clear()
    value = ok(pipeline, "stripe_get_charge", await pipeline.invoke("stripe_get_charge", {"charge": made["id"]}))
    sent(stripe, "GET", f"/v1/charges/{made['id']}")
    assert value == made
    error = failed(await pipeline.invoke("stripe_get_charge", {"charge": "ch_nope"}), "UPSTREAM_ERROR")
    assert error.message == "Stripe: resource_missing (invalid_request_error): No such charge: 'ch_nope'"
    assert error.details["status"] == 404 and error.details["code"] == "resource_missing"
    assert error.details["type"] == "invalid_request_error" and error.details["param"] == "id"
    assert error.details["doc_url"].startswith("https://stripe.com/docs/error-codes")


@pytest.mark.parametrize(
    ("token", "decline_code"),
    [("tok_chargeDeclined", "generic_decline"), ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds")],
)
async def test_card_declined(pipeline: Pipeline, stripe: FakeStripe, token: str, decline_code: str) -> None:
    outcome = await pipeline.invoke("stripe_create_charge", {"amount": 2000, "currency": "usd", "source": token})
    error = failed(outcome, "UPSTREAM_ERROR")
    assert error.message == "Stripe: card_declined (card_error): Your card was declined."
    details = error.details
    assert details["status"] == 402 and details["code"] == "card_declined" and details["type"] == "card_error"
    assert details["decline_code"] == decline_code and details["charge"] in stripe.charges
    assert details["body"]["error"]["message"] == "Your card was declined."
    assert len(stripe.requests) == 1  # a 402 is an answer, not a reason to retry
    assert stripe.charges[details["charge"]]["status"] == "failed"


async def test_stripes_own_validation_errors(pipeline: Pipeline, stripe: FakeStripe) -> None:
    too_small = await pipeline.invoke("stripe_create_charge", {"amount": 10, "currency": "usd", "source": "tok_visa"})
    error = failed(too_small, "UPSTREAM_ERROR")
    assert error.message == "Stripe: amount_too_small (invalid_request_error): Amount must be at least $0.50 usd"
    assert error.details["param"] == "amount" and error.details["status"] == 400
    neither = failed(
        await pipeline.invoke("stripe_create_charge", {"amount": 100, "currency": "usd"}), "UPSTREAM_ERROR"
    )
    assert neither.message == "Stripe: invalid_request_error: Must provide source or customer."
    assert neither.details == {**neither.details, "status": 400, "type": "invalid_request_error"}
    assert "code" not in neither.details


# ------------------------------------------------------------------ credentials, rate limits, idempotency


async def test_wrong_key_is_auth_failed_with_stripes_words(tmp_path: Path, stripe: FakeStripe) -> None:
    wrong = "sk_test_51WrongWrongWrongWrongWrongWrongWrongWrong9876"
    tools = stripe_tools(tmp_path / "tools", stripe.url)
    async with make_pipeline(tools, tmp_path / "vault.json", wrong) as pipeline:
        outcome = await pipeline.invoke("stripe_get_charge", {"charge": "ch_1"})
    assert isinstance(outcome, ToolError) and outcome.error_code == "AUTH_FAILED"
    assert outcome.message.startswith("Stripe: invalid_request_error: Invalid API Key provided: sk_test_")
    assert outcome.message.endswith("9876. The stored credential was rejected; check it and store it again.")
    assert wrong not in json.dumps(outcome.to_body()) and outcome.details["status"] == 401


async def test_missing_key_sends_nothing(tmp_path: Path, stripe: FakeStripe) -> None:
    tools = stripe_tools(tmp_path / "tools", stripe.url)
    async with make_pipeline(tools, tmp_path / "vault.json", None) as pipeline:
        error = failed(await pipeline.invoke("stripe_list_charges", {}), "AUTH_MISSING")
    assert "mcp-connectors vault set stripe_secret_key" in error.message
    assert stripe.requests == []


async def test_rate_limited_after_retries_with_one_key(pipeline: Pipeline, stripe: FakeStripe) -> None:
    stripe.rate_limited = True
    outcome = await pipeline.invoke("stripe_create_charge", {"amount": 2000, "currency": "usd", "source": "tok_visa"})
    error = failed(outcome, "RATE_LIMITED")
    assert error.message.startswith("Stripe: rate_limit (invalid_request_error): Too many requests hit the API")
    assert error.details["status"] == 429 and error.details["code"] == "rate_limit"
    keys = {request.headers["idempotency-key"] for request in stripe.requests}
    assert len(stripe.requests) == 3 and len(keys) == 1  # retried, always with the call's one key


async def test_a_lost_response_is_recovered_by_the_idempotent_retry(pipeline: Pipeline, stripe: FakeStripe) -> None:
    stripe.lose_responses = 1  # Stripe executes the charge, the answer is lost on the way (502)
    value = await charge(pipeline, 4200)
    assert len(stripe.charges) == 1 and stripe.executed == 1  # charged exactly once
    first, retry = stripe.requests
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]
    assert first.body == retry.body
    assert value["id"] in stripe.charges and value["amount"] == 4200


async def test_each_call_gets_its_own_idempotency_key(pipeline: Pipeline, stripe: FakeStripe) -> None:
    await charge(pipeline)
    await charge(pipeline)
    first, second = stripe.requests
    assert first.headers["idempotency-key"] != second.headers["idempotency-key"]
    assert len(stripe.charges) == 2


async def test_a_reflected_credential_is_scrubbed(pipeline: Pipeline, stripe: FakeStripe) -> None:
    value = await charge(pipeline, description="echo-auth")  # the fake stores the Authorization header
    assert value["description"] == "Bearer [REDACTED]"
    assert stripe.charges[value["id"]]["description"] == f"Bearer {KEY}"  # it really was echoed


# ------------------------------------------------------------------ refunds


async def test_refunds(pipeline: Pipeline, stripe: FakeStripe) -> None:
    made = await charge(pipeline, 5000)
    stripe.requests.clear()
    arguments = {"charge": made["id"], "amount": 1500, "reason": "requested_by_customer", "metadata": {"ticket": "T-9"}}
    partial = ok(pipeline, "stripe_create_refund", await pipeline.invoke("stripe_create_refund", arguments))
    request = sent(stripe, "POST", "/v1/refunds")
    assert form(request) == [
        ("charge", made["id"]),
        ("amount", "1500"),
        ("reason", "requested_by_customer"),
        ("metadata[ticket]", "T-9"),
    ]
    assert partial["amount"] == 1500 and partial["status"] == "succeeded" and partial["charge"] == made["id"]
    rest = ok(pipeline, "stripe_create_refund", await pipeline.invoke("stripe_create_refund", {"charge": made["id"]}))
    assert rest["amount"] == 3500 and stripe.charges[made["id"]]["refunded"] is True
    again = failed(await pipeline.invoke("stripe_create_refund", {"charge": made["id"]}), "UPSTREAM_ERROR")
    assert again.message == (
        f"Stripe: charge_already_refunded (invalid_request_error): Charge {made['id']} has already been refunded."
    )
    nothing = failed(await pipeline.invoke("stripe_create_refund", {}), "UPSTREAM_ERROR")
    assert nothing.details["code"] == "parameter_missing" and nothing.details["status"] == 400
    stripe.requests.clear()
    listed = ok(pipeline, "stripe_list_refunds", await pipeline.invoke("stripe_list_refunds", {"charge": made["id"]}))
    sent(stripe, "GET", "/v1/refunds", f"charge={made['id']}")
    assert [r["id"] for r in listed["items"]] == [rest["id"], partial["id"]]
    fetched = ok(pipeline, "stripe_get_refund", await pipeline.invoke("stripe_get_refund", {"refund": partial["id"]}))
    assert fetched == partial


# ------------------------------------------------------------------ payment methods


async def test_payment_methods(pipeline: Pipeline, stripe: FakeStripe) -> None:
    arguments = {
        "type": "card",
        "card": {"token": "tok_mastercard"},
        "billing_details": {"name": "Jenny Rosen", "address": {"country": "US", "postal_code": "94111"}},
        "metadata": {"source": "agent"},
    }
    value = ok(
        pipeline, "stripe_create_payment_method", await pipeline.invoke("stripe_create_payment_method", arguments)
    )
    request = sent(stripe, "POST", "/v1/payment_methods")
    assert form(request) == [
        ("type", "card"),
        ("card[token]", "tok_mastercard"),
        ("billing_details[name]", "Jenny Rosen"),
        ("billing_details[address][country]", "US"),
        ("billing_details[address][postal_code]", "94111"),
        ("metadata[source]", "agent"),
    ]
    assert value["card"]["brand"] == "mastercard" and value["card"]["last4"] == "4444"
    assert value["billing_details"]["name"] == "Jenny Rosen" and value["billing_details"]["address"]["country"] == "US"
    raw = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "314"}}
    numbered = ok(pipeline, "stripe_create_payment_method", await pipeline.invoke("stripe_create_payment_method", raw))
    assert numbered["card"]["last4"] == "4242" and numbered["card"]["exp_year"] == 2031
    assert "4242424242424242" not in json.dumps(numbered)
    expired = {"type": "card", "card": {**raw["card"], "exp_year": 2020}}
    error = failed(await pipeline.invoke("stripe_create_payment_method", expired), "UPSTREAM_ERROR")
    assert error.message == "Stripe: invalid_expiry_year (card_error): Your card's expiration year is invalid."
    assert error.details["status"] == 402 and error.details["param"] == "exp_year"
    no_card = failed(await pipeline.invoke("stripe_create_payment_method", {"type": "card"}), "UPSTREAM_ERROR")
    assert no_card.message == "Stripe: parameter_missing (invalid_request_error): Missing required param: card."
    assert no_card.details["param"] == "card"
    stripe.requests.clear()
    listed = ok(
        pipeline,
        "stripe_list_payment_methods",
        await pipeline.invoke("stripe_list_payment_methods", {"type": "card", "limit": 1}),
    )
    sent(stripe, "GET", "/v1/payment_methods", "type=card&limit=1")
    assert [m["id"] for m in listed["items"]] == [numbered["id"]] and listed["next_page"] == {
        "starting_after": numbered["id"]
    }
    fetched = await pipeline.invoke("stripe_get_payment_method", {"payment_method": value["id"]})
    assert ok(pipeline, "stripe_get_payment_method", fetched)["id"] == value["id"]


# ------------------------------------------------------------------ subscriptions


async def subscribe(pipeline: Pipeline, **extra: Any) -> dict[str, Any]:
    arguments = {"customer": CUSTOMERS[0], "items": [{"price": BASIC}], **extra}
    return ok(pipeline, "stripe_create_subscription", await pipeline.invoke("stripe_create_subscription", arguments))


async def test_create_subscription_with_items(pipeline: Pipeline, stripe: FakeStripe) -> None:
    value = await subscribe(
        pipeline,
        items=[{"price": BASIC, "quantity": 2}, {"price": PRO}],
        metadata={"plan": "team"},
        trial_period_days=14,
    )
    request = sent(stripe, "POST", "/v1/subscriptions")
    assert form(request) == [
        ("customer", CUSTOMERS[0]),
        ("items[0][price]", BASIC),
        ("items[0][quantity]", "2"),
        ("items[1][price]", PRO),
        ("trial_period_days", "14"),
        ("metadata[plan]", "team"),
    ]
    assert value["status"] == "trialing" and value["customer"] == CUSTOMERS[0]
    assert [(i["price"]["id"], i["quantity"]) for i in value["items"]["data"]] == [(BASIC, 2), (PRO, 1)]
    unknown = await pipeline.invoke(
        "stripe_create_subscription", {"customer": CUSTOMERS[0], "items": [{"price": "price_nope"}]}
    )
    error = failed(unknown, "UPSTREAM_ERROR")
    assert error.message == "Stripe: resource_missing (invalid_request_error): No such price: 'price_nope'"
    assert error.details["param"] == "items[0][price]"


async def test_cancel_now_is_a_delete(pipeline: Pipeline, stripe: FakeStripe) -> None:
    made = await subscribe(pipeline)
    stripe.requests.clear()
    arguments = {"subscription": made["id"], "invoice_now": True}
    value = ok(pipeline, "stripe_cancel_subscription", await pipeline.invoke("stripe_cancel_subscription", arguments))
    request = sent(stripe, "DELETE", f"/v1/subscriptions/{made['id']}", "invoice_now=true")
    assert request.body == b""
    assert value["status"] == "canceled" and value["ended_at"] is not None and value["cancel_at_period_end"] is False


async def test_cancel_at_period_end_is_an_update(pipeline: Pipeline, stripe: FakeStripe) -> None:
    made = await subscribe(pipeline)
    stripe.requests.clear()
    arguments = {"subscription": made["id"], "at_period_end": True}
    value = ok(pipeline, "stripe_cancel_subscription", await pipeline.invoke("stripe_cancel_subscription", arguments))
    request = sent(stripe, "POST", f"/v1/subscriptions/{made['id']}")
    assert form(request) == [("cancel_at_period_end", "true")]
    assert value["status"] == "active" and value["cancel_at_period_end"] is True
    assert value["cancel_at"] == made["current_period_end"]
    mixed = {"subscription": made["id"], "at_period_end": True, "prorate": True}
    error = failed(await pipeline.invoke("stripe_cancel_subscription", mixed), "INVALID_ARGUMENTS")
    assert error.details["path"] == "$.prorate" and "at_period_end=true" in error.message
    assert stripe.requests == []


async def test_list_subscriptions_leaves_canceled_out_unless_asked(pipeline: Pipeline, stripe: FakeStripe) -> None:
    kept = await subscribe(pipeline)
    gone = await subscribe(pipeline, items=[{"price": PRO}])
    await pipeline.invoke("stripe_cancel_subscription", {"subscription": gone["id"]})
    stripe.requests.clear()
    active = ok(
        pipeline,
        "stripe_list_subscriptions",
        await pipeline.invoke("stripe_list_subscriptions", {"customer": CUSTOMERS[0]}),
    )
    sent(stripe, "GET", "/v1/subscriptions", f"customer={CUSTOMERS[0]}")
    assert [s["id"] for s in active["items"]] == [kept["id"]]
    everything = await pipeline.invoke("stripe_list_subscriptions", {"status": "all", "price": PRO})
    assert [s["id"] for s in ok(pipeline, "stripe_list_subscriptions", everything)["items"]] == [gone["id"]]
    fetched = await pipeline.invoke("stripe_get_subscription", {"subscription": gone["id"]})
    assert ok(pipeline, "stripe_get_subscription", fetched)["status"] == "canceled"


# ------------------------------------------------------------------ arguments checked before anything is sent


@pytest.mark.parametrize(
    ("tool", "arguments", "path"),
    [
        ("stripe_create_charge", {"amount": 100, "currency": "USD", "source": "tok_visa"}, "$.currency"),
        ("stripe_create_charge", {"amount": 0, "currency": "usd", "source": "tok_visa"}, "$.amount"),
        ("stripe_create_charge", {"amount": 100, "currency": "usd", "metadata": {"n": 1}}, "$.metadata.n"),
        ("stripe_create_charge", {"amount": 100, "currency": "usd", "receipt_email": "nope"}, "$.receipt_email"),
        ("stripe_list_charges", {"limit": 101}, "$.limit"),
        ("stripe_list_charges", {"created": {"after": 1}}, "$.created"),
        ("stripe_create_refund", {"charge": "ch_1", "reason": "because"}, "$.reason"),
        ("stripe_create_subscription", {"customer": "cus_1", "items": []}, "$.items"),
        ("stripe_cancel_subscription", {"subscription": "sub_1", "at_period_end": "yes"}, "$.at_period_end"),
    ],
)
async def test_invalid_arguments_stay_local(
    pipeline: Pipeline, stripe: FakeStripe, tool: str, arguments: dict[str, Any], path: str
) -> None:
    error = failed(await pipeline.invoke(tool, arguments), "INVALID_ARGUMENTS")
    assert error.details["path"] == path
    assert stripe.requests == []


# ------------------------------------------------------------------ the fake itself behaves like Stripe


def test_the_fake_parses_nested_keys_as_stripe_does() -> None:
    body = "items[0][price]=p1&items[1][price]=p2&items[0][quantity]=3&metadata[a]=1&expand[]=x&expand[]=y&empty="
    assert parse_stripe_form(body) == {
        "items": [{"price": "p1", "quantity": "3"}, {"price": "p2"}],
        "metadata": {"a": "1"},
        "expand": ["x", "y"],
        "empty": "",
    }


async def test_the_fakes_idempotency_semantics(stripe: FakeStripe) -> None:
    headers = {
        "authorization": f"Bearer {KEY}",
        "idempotency-key": "k-1",
        "content-type": "application/x-www-form-urlencoded",
    }
    async with httpx2.AsyncClient(base_url=stripe.url) as client:
        first = await client.post("/v1/charges", content="amount=1000&currency=usd&source=tok_visa", headers=headers)
        replay = await client.post("/v1/charges", content="amount=1000&currency=usd&source=tok_visa", headers=headers)
        other = await client.post("/v1/charges", content="amount=2000&currency=usd&source=tok_visa", headers=headers)
        unknown = await client.post(
            "/v1/charges", content="amount=1000&currency=usd&colour=red", headers={**headers, "idempotency-key": "k-2"}
        )
        nobody = await client.get("/v1/charges")
    assert first.status_code == 200 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true" and len(stripe.charges) == 1
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    assert unknown.status_code == 400 and unknown.json()["error"] == {
        "message": "Received unknown parameter: colour",
        "type": "invalid_request_error",
        "code": "parameter_unknown",
        "param": "colour",
        "doc_url": "https://stripe.com/docs/error-codes#parameter-unknown",
    }
    assert nobody.status_code == 401 and "You did not provide an API key" in nobody.json()["error"]["message"]


# ------------------------------------------------------------------ the listing; calls through the stdio command


def test_every_stripe_tool_is_described_and_has_an_output_schema(tmp_path: Path) -> None:
    registry = Registry.from_catalog(load_catalog([BUNDLED_MANIFEST.parent]))
    tools = {tool.name: tool for tool in registry if tool.name.startswith("stripe_")}
    assert set(tools) == ALL_TOOLS
    for name, tool in tools.items():
        assert tool.title and len(tool.description) >= 40, name
        for prop, definition in tool.input_schema["properties"].items():
            assert isinstance(definition.get("description"), str) and definition["description"], f"{name}.{prop}"
        schema = tool.mcp_tool.output_schema
        assert schema is not None and schema["type"] == "object", name
        Draft202012Validator.check_schema(schema)
        read_only = name.startswith(("stripe_list_", "stripe_get_"))
        assert tool.annotations["readOnlyHint"] is read_only, name
    assert tools["stripe_cancel_subscription"].annotations["destructiveHint"] is True
    listed = tools["stripe_list_charges"].output_schema or {}
    assert listed["properties"]["items"]["items"]["properties"]["object"] == {"const": "charge"}


async def test_the_sdk_client_validates_our_structured_content(tmp_path: Path, stripe: FakeStripe) -> None:
    """The official client checks each result against the outputSchema it listed; it raises on any mismatch."""
    tools = stripe_tools(tmp_path / "tools", stripe.url)
    vault_path = tmp_path / "vault.json"
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("stripe_secret_key", KEY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_CONNECTORS_")}
    env.update(
        {
            "MCP_CONNECTORS_VAULT": str(vault_path),
            "MCP_CONNECTORS_VAULT_KEY": PASSPHRASE,
            "MCP_CONNECTORS_TOOLS": str(tools),
        }
    )
    command, args = server_command()
    async with Client(StdioServerParameters(command=command, args=args, env=env)) as client:
        listing = await client.list_tools()
        assert {tool.name for tool in listing.tools if tool.name.startswith("stripe_")} == ALL_TOOLS
        created = await client.call_tool(
            "stripe_create_charge", {"amount": 999, "currency": "eur", "source": "tok_visa", "metadata": {"k": "v"}}
        )
        assert not created.is_error and created.structured_content["amount"] == 999
        listed = await client.call_tool("stripe_list_charges", {"all_pages": True})
        assert not listed.is_error and listed.structured_content["items"][0]["id"] == created.structured_content["id"]
        subscription = await client.call_tool(
            "stripe_create_subscription", {"customer": CUSTOMERS[1], "items": [{"price": PRO}]}
        )
        cancelled = await client.call_tool(
            "stripe_cancel_subscription", {"subscription": subscription.structured_content["id"], "at_period_end": True}
        )
        assert cancelled.structured_content["cancel_at_period_end"] is True
        declined = await client.call_tool(
            "stripe_create_charge", {"amount": 999, "currency": "eur", "source": "tok_chargeDeclined"}
        )
        assert declined.is_error and declined.structured_content["error_code"] == "UPSTREAM_ERROR"
        assert declined.structured_content["error"] == "Stripe: card_declined (card_error): Your card was declined."
    for result in (created, listed, subscription, cancelled, declined):
        assert KEY not in json.dumps(result.model_dump(mode="json"))
