"""The bundled tools/erpnext.yaml against a fake Frappe site (tests/_fake_erpnext.py), through the real pipeline:
CRUD on any DocType, lists with Frappe's filters and an exact has_more, sync by (modified, name) with ties, and
Frappe's error bodies."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from jsonschema import Draft202012Validator

from mcp_server._catalog import load_catalog
from mcp_server._errors import ToolError
from mcp_server._pipeline import Outcome, Pipeline, ToolSuccess
from mcp_server._registry import Registry
from mcp_server._server import to_call_tool_result
from mcp_server._vault import Vault
from tests._fake_erpnext import API_USER, FakeERPNext
from tests._upstream import Recorded, UpstreamThread
from tests.conftest import PASSPHRASE

BUNDLED_MANIFEST = Path(__file__).resolve().parents[1] / "tools" / "erpnext.yaml"
TOKEN = f"{FakeERPNext.api_key}:{FakeERPNext.api_secret}"
ALL_TOOLS = {f"erpnext_{n}_entity" for n in ("create", "update", "delete", "get")} | {
    "erpnext_list_entities",
    "erpnext_sync_entities",
}


@pytest.fixture(scope="module")
def erpnext_server() -> Iterator[FakeERPNext]:
    thread = UpstreamThread(FakeERPNext())
    started = thread.start()
    assert isinstance(started, FakeERPNext)
    yield started
    thread.stop()


@pytest.fixture
def erp(erpnext_server: FakeERPNext) -> FakeERPNext:
    erpnext_server.reset()
    return erpnext_server


def make_pipeline(tmp_path: Path, environ: dict[str, str], token: str | None = TOKEN) -> Pipeline:
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    shutil.copy(BUNDLED_MANIFEST, tools / "erpnext.yaml")
    catalog = load_catalog([tools], environ=environ)  # base_url: {env: ERPNEXT_URL}
    assert not catalog.faults, catalog.faults
    vault = Vault(tmp_path / "vault.json", passphrase=PASSPHRASE, use_keyring=False)
    if token is not None:
        vault.set("erpnext_token", token)
    return Pipeline(Registry.from_catalog(catalog), vault, environ={})


@pytest.fixture
async def pipeline(tmp_path: Path, erpnext_server: FakeERPNext) -> AsyncIterator[Pipeline]:
    async with make_pipeline(tmp_path, {"ERPNEXT_URL": erpnext_server.url + "/"}) as running:
        yield running


def clean(outcome: Outcome) -> None:
    text = json.dumps(outcome.to_body()) if isinstance(outcome, ToolError) else outcome.text
    assert FakeERPNext.api_secret not in text and TOKEN not in text


def ok(pipeline: Pipeline, tool: str, outcome: Outcome, status: int = 200) -> Any:
    assert isinstance(outcome, ToolSuccess), outcome.to_body()
    assert outcome.status == status
    clean(outcome)
    schema = pipeline.registry.get(tool).mcp_tool.output_schema
    assert schema is not None
    structured = to_call_tool_result(outcome).structured_content
    assert [e.message for e in Draft202012Validator(schema).iter_errors(structured)] == []
    return outcome.value


def failed(outcome: Outcome, code: str) -> ToolError:
    assert isinstance(outcome, ToolError), outcome
    assert outcome.error_code == code, outcome.to_body()
    clean(outcome)
    return outcome


def sent(erp: FakeERPNext, method: str, path: str) -> Recorded:
    assert len(erp.requests) == 1, [(r.method, r.raw_path) for r in erp.requests]
    request = erp.requests.pop()
    assert (request.method, request.raw_path.split("?")[0]) == (method, path)
    assert request.headers["authorization"] == f"token {TOKEN}"  # Frappe's token auth: key:secret
    assert request.headers["accept"] == "application/json"
    return request


def query(erp: FakeERPNext) -> dict[str, Any]:
    """The last list request's parameters, JSON ones decoded as Frappe does."""
    params = dict(erp.calls[-1])
    for name in ("fields", "filters", "or_filters"):
        if name in params:
            params[name] = json.loads(params[name])
    return params


async def customer(pipeline: Pipeline, name: str, **fields: Any) -> dict[str, Any]:
    outcome = await pipeline.invoke(
        "erpnext_create_entity", {"doctype": "Customer", "body": {"customer_name": name, **fields}}
    )
    return ok(pipeline, "erpnext_create_entity", outcome)["data"]


# ------------------------------------------------------------------ where the site is


async def test_an_unset_site_url_is_auth_missing_and_sends_nothing(tmp_path: Path, erp: FakeERPNext) -> None:
    async with make_pipeline(tmp_path, {}) as pipeline:
        assert "erpnext_list_entities" in {tool.name for tool in pipeline.registry}  # listed all the same
        error = failed(await pipeline.invoke("erpnext_list_entities", {"doctype": "Customer"}), "AUTH_MISSING")
    assert "ERPNEXT_URL" in error.message and error.details["missing"] == "ERPNEXT_URL"
    assert error.details["fix"].startswith("export ERPNEXT_URL=")
    assert erp.requests == []


# ------------------------------------------------------------------ CRUD


async def test_create_get_update_delete(pipeline: Pipeline, erp: FakeERPNext) -> None:
    fields = {"customer_name": "Acme Ltd", "customer_type": "Company", "customer_group": "Commercial"}
    created = await pipeline.invoke("erpnext_create_entity", {"doctype": "Customer", "body": fields})
    doc = ok(pipeline, "erpnext_create_entity", created)["data"]
    request = sent(erp, "POST", "/api/resource/Customer")
    assert request.headers["content-type"] == "application/json" and request.json == fields
    assert doc["name"] == "CUST-2024-00001" and doc["doctype"] == "Customer" and doc["owner"] == API_USER
    assert doc["customer_name"] == "Acme Ltd" and doc["territory"] == "All Territories"  # ERPNext's defaults

    got = await pipeline.invoke("erpnext_get_entity", {"doctype": "Customer", "name": doc["name"]})
    assert ok(pipeline, "erpnext_get_entity", got)["data"] == doc
    sent(erp, "GET", "/api/resource/Customer/CUST-2024-00001")

    change = {"doctype": "Customer", "name": doc["name"], "body": {"customer_group": "Government"}}
    updated = ok(pipeline, "erpnext_update_entity", await pipeline.invoke("erpnext_update_entity", change))["data"]
    request = sent(erp, "PUT", "/api/resource/Customer/CUST-2024-00001")
    assert request.json == {"customer_group": "Government"}
    assert updated["customer_group"] == "Government" and updated["modified"] > doc["modified"]

    deleted = await pipeline.invoke("erpnext_delete_entity", {"doctype": "Customer", "name": doc["name"]})
    assert ok(pipeline, "erpnext_delete_entity", deleted, status=202) == {"message": "ok"}
    sent(erp, "DELETE", "/api/resource/Customer/CUST-2024-00001")
    assert erp.docs["Customer"] == {}


async def test_doctypes_with_spaces_and_child_tables(pipeline: Pipeline, erp: FakeERPNext) -> None:
    acme = await customer(pipeline, "Acme Ltd")
    for code in ("WIDGET-1", "GADGET/2"):
        item = {"item_code": code, "item_group": "Products", "stock_uom": "Nos", "standard_rate": 25.0}
        await pipeline.invoke("erpnext_create_entity", {"doctype": "Item", "body": item})
    erp.requests.clear()
    order = {
        "customer": acme["name"],
        "delivery_date": "2024-06-01",
        "items": [{"item_code": "WIDGET-1", "qty": 2, "rate": 25.0}, {"item_code": "GADGET/2", "qty": 1, "rate": 10}],
    }
    created = await pipeline.invoke("erpnext_create_entity", {"doctype": "Sales Order", "body": order})
    doc = ok(pipeline, "erpnext_create_entity", created)["data"]
    sent(erp, "POST", "/api/resource/Sales%20Order")
    assert doc["name"] == "SAL-ORD-2024-00001" and doc["grand_total"] == 60.0
    assert [(row["item_code"], row["idx"], row["parenttype"]) for row in doc["items"]] == [
        ("WIDGET-1", 1, "Sales Order"),
        ("GADGET/2", 2, "Sales Order"),
    ]
    # A name with a slash stays one path segment.
    got = await pipeline.invoke("erpnext_get_entity", {"doctype": "Item", "name": "GADGET/2"})
    assert ok(pipeline, "erpnext_get_entity", got)["data"]["item_code"] == "GADGET/2"
    sent(erp, "GET", "/api/resource/Item/GADGET%2F2")


# ------------------------------------------------------------------ Frappe's errors


async def test_frappe_errors_read_clearly(pipeline: Pipeline, erp: FakeERPNext) -> None:
    missing = failed(
        await pipeline.invoke("erpnext_get_entity", {"doctype": "Customer", "name": "CUST-9"}), "UPSTREAM_ERROR"
    )
    assert missing.message == "ERPNext: DoesNotExistError: Customer CUST-9 not found"
    assert missing.details["status"] == 404 and missing.details["type"] == "DoesNotExistError"

    mandatory = failed(
        await pipeline.invoke("erpnext_create_entity", {"doctype": "Customer", "body": {"customer_type": "Company"}}),
        "UPSTREAM_ERROR",
    )
    assert mandatory.message == "ERPNext: MandatoryError: Error: Value missing for Customer: Customer Name"
    assert mandatory.details["status"] == 417

    link = failed(
        await pipeline.invoke(
            "erpnext_create_entity", {"doctype": "Customer", "body": {"customer_name": "X", "customer_group": "Nope"}}
        ),
        "UPSTREAM_ERROR",
    )
    assert link.message == "ERPNext: LinkValidationError: Could not find Customer Group: Nope"

    item = {"item_code": "W-1", "item_group": "Products", "stock_uom": "Nos"}
    await pipeline.invoke("erpnext_create_entity", {"doctype": "Item", "body": item})
    duplicate = failed(
        await pipeline.invoke("erpnext_create_entity", {"doctype": "Item", "body": item}), "UPSTREAM_ERROR"
    )
    assert duplicate.message == "ERPNext: DuplicateEntryError: Item W-1 already exists"
    assert duplicate.details["status"] == 409

    forbidden = failed(await pipeline.invoke("erpnext_list_entities", {"doctype": "Salary Slip"}), "UPSTREAM_ERROR")
    assert forbidden.details["status"] == 403 and forbidden.details["type"] == "PermissionError"
    assert "does not have doctype access" in forbidden.message

    unknown = failed(
        await pipeline.invoke("erpnext_list_entities", {"doctype": "Customer", "fields": ["colour"]}), "UPSTREAM_ERROR"
    )
    assert unknown.message == "ERPNext: DataError: Field not permitted in query: colour"

    no_doctype = failed(await pipeline.invoke("erpnext_list_entities", {"doctype": "Spaceship"}), "UPSTREAM_ERROR")
    assert no_doctype.message == "ERPNext: DoesNotExistError: DocType Spaceship not found"


async def test_update_refuses_a_stale_copy(pipeline: Pipeline, erp: FakeERPNext) -> None:
    doc = await customer(pipeline, "Acme Ltd")
    erp.touch("Customer", doc["name"], email_id="someone@else.example")  # changed in ERPNext meanwhile
    stale = {"doctype": "Customer", "name": doc["name"], "body": {"modified": doc["modified"], "disabled": 1}}
    error = failed(await pipeline.invoke("erpnext_update_entity", stale), "UPSTREAM_ERROR")
    assert error.message.startswith("ERPNext: TimestampMismatchError: Error: Document has been modified after you")
    assert erp.docs["Customer"][doc["name"]]["disabled"] == 0


async def test_delete_refused_while_linked(pipeline: Pipeline, erp: FakeERPNext) -> None:
    acme = await customer(pipeline, "Acme Ltd")
    order = {"customer": acme["name"], "delivery_date": "2024-06-01", "items": []}
    await pipeline.invoke("erpnext_create_entity", {"doctype": "Sales Order", "body": order})
    error = failed(
        await pipeline.invoke("erpnext_delete_entity", {"doctype": "Customer", "name": acme["name"]}), "UPSTREAM_ERROR"
    )
    assert error.details["type"] == "LinkExistsError" and error.details["status"] == 417
    assert "is linked with Sales Order" in error.message and acme["name"] in erp.docs["Customer"]


async def test_a_wrong_token_is_auth_failed(tmp_path: Path, erp: FakeERPNext) -> None:
    wrong = f"{FakeERPNext.api_key}:not-the-secret-0000"
    async with make_pipeline(tmp_path, {"ERPNEXT_URL": erp.url}, token=wrong) as pipeline:
        error = failed(await pipeline.invoke("erpnext_list_entities", {"doctype": "Customer"}), "AUTH_FAILED")
    assert error.message.startswith("ERPNext: AuthenticationError: frappe.exceptions.AuthenticationError")
    assert "not-the-secret-0000" not in json.dumps(error.to_body())


async def test_a_missing_token_sends_nothing(tmp_path: Path, erp: FakeERPNext) -> None:
    async with make_pipeline(tmp_path, {"ERPNEXT_URL": erp.url}, token=None) as pipeline:
        error = failed(await pipeline.invoke("erpnext_get_entity", {"doctype": "Item", "name": "X"}), "AUTH_MISSING")
    assert "mcp-connectors vault set erpnext_token" in error.message and erp.requests == []


# ------------------------------------------------------------------ lists: Frappe's parameters, exact has_more


async def test_list_sends_frappes_parameters(pipeline: Pipeline, erp: FakeERPNext) -> None:
    for name, group in (("Acme", "Commercial"), ("Borough Council", "Government"), ("Crown Office", "Government")):
        await customer(pipeline, name, customer_group=group)
    erp.requests.clear()
    arguments = {
        "doctype": "Customer",
        "fields": ["name", "customer_name", "customer_group"],
        "filters": [["customer_group", "=", "Government"], ["customer_name", "like", "%o%"]],
        "or_filters": [["disabled", "=", 0], ["customer_type", "=", "Individual"]],
        "order_by": "customer_name desc",
        "limit_page_length": 5,
    }
    value = ok(pipeline, "erpnext_list_entities", await pipeline.invoke("erpnext_list_entities", arguments))
    request = sent(erp, "GET", "/api/resource/Customer")
    assert unquote(request.query).startswith('fields=["name","customer_name","customer_group"]&filters=')
    assert query(erp) == {
        "fields": ["name", "customer_name", "customer_group"],
        "filters": [["customer_group", "=", "Government"], ["customer_name", "like", "%o%"]],
        "or_filters": [["disabled", "=", 0], ["customer_type", "=", "Individual"]],
        "order_by": "customer_name desc",
        "limit_start": "0",
        "limit_page_length": "6",  # one more than asked: its presence says for sure whether more follow
    }
    assert value["items"] == [
        {"name": "CUST-2024-00003", "customer_name": "Crown Office", "customer_group": "Government"},
        {"name": "CUST-2024-00002", "customer_name": "Borough Council", "customer_group": "Government"},
    ]
    assert value["has_more"] is False and value["next_page"] is None


async def test_list_pages_with_an_exact_has_more(pipeline: Pipeline, erp: FakeERPNext) -> None:
    for index in range(6):
        await customer(pipeline, f"Customer {index}")
    arguments = {"doctype": "Customer", "order_by": "name asc", "limit_page_length": 3}
    first = ok(pipeline, "erpnext_list_entities", await pipeline.invoke("erpnext_list_entities", arguments))
    assert [d["name"] for d in first["items"]] == [f"CUST-2024-0000{i}" for i in (1, 2, 3)]  # only `name` by default
    assert first["has_more"] is True and first["next_page"] == {"limit_start": 3}
    # Exactly three left: a full page, and still has_more is false, because the look-ahead record is not there.
    last = ok(
        pipeline,
        "erpnext_list_entities",
        await pipeline.invoke("erpnext_list_entities", {**arguments, **first["next_page"]}),
    )
    assert [d["name"] for d in last["items"]] == [f"CUST-2024-0000{i}" for i in (4, 5, 6)]
    assert last["has_more"] is False and last["next_page"] is None
    everything = ok(
        pipeline,
        "erpnext_list_entities",
        await pipeline.invoke(
            "erpnext_list_entities", {"doctype": "Customer", "fields": ["*"], "limit_page_length": 4, "all_pages": True}
        ),
    )
    assert len(everything["items"]) == 6 and everything["pages"] == 2 and everything["truncated"] is False
    assert [c["limit_start"] for c in erp.calls[-2:]] == ["0", "4"]
    assert set(everything["items"][0]) >= {"name", "modified", "customer_name", "docstatus"}


# ------------------------------------------------------------------ sync by (modified, name), ties included


def sync_order(erp: FakeERPNext) -> list[str]:
    docs = erp.docs["Customer"].values()
    return [d["name"] for d in sorted(docs, key=lambda d: (d["modified"], d["name"]))]


async def sync_all(pipeline: Pipeline, since: str, page: int) -> tuple[list[str], int]:
    arguments: dict[str, Any] = {"doctype": "Customer", "since": since, "limit_page_length": page}
    seen: list[str] = []
    for calls in range(1, 50):
        value = ok(pipeline, "erpnext_sync_entities", await pipeline.invoke("erpnext_sync_entities", arguments))
        assert len(value["items"]) <= page
        seen += [doc["name"] for doc in value["items"]]
        if not value["has_more"]:
            return seen, calls
        arguments = {"doctype": "Customer", "limit_page_length": page, **value["next_page"]}
    raise AssertionError("sync never ended")


async def test_sync_pages_through_ties_without_skips_or_repeats(pipeline: Pipeline, erp: FakeERPNext) -> None:
    for index in range(3):
        await customer(pipeline, f"Early {index}")
    erp.freeze("2024-05-01 09:00:10.000000")  # a bulk update: four records share one modified time
    for index in range(4):
        await customer(pipeline, f"Bulk {index}")
    erp.freeze(None)
    erp.now = erp.now.replace(second=20)
    for index in range(2):
        await customer(pipeline, f"Late {index}")
    erp.requests.clear()
    erp.calls.clear()
    # Page size 2 puts page boundaries inside the tie: an offset or a `modified >` cursor would skip or repeat here.
    seen, calls = await sync_all(pipeline, "2024-05-01", 2)
    assert seen == sync_order(erp) and len(seen) == len(set(seen)) == 9
    assert calls == 5
    first = erp.calls[0]
    assert json.loads(first["fields"]) == ["*"] and first["order_by"] == "modified asc, name asc"
    assert json.loads(first["filters"]) == [["modified", ">=", "2024-05-01"]]
    assert json.loads(first["or_filters"]) == [["modified", ">", "2024-05-01"], ["name", ">", ""]]
    assert first["limit_page_length"] == "3"
    tie = "2024-05-01 09:00:10.000000"
    for call, after in ((erp.calls[2], "CUST-2024-00004"), (erp.calls[3], "CUST-2024-00006")):  # inside the tie
        assert json.loads(call["filters"]) == [["modified", ">=", tie]]
        assert json.loads(call["or_filters"]) == [["modified", ">", tie], ["name", ">", after]]
    assert all("since" not in call and "cursor" not in call for call in erp.calls)


async def test_sync_sees_changes_made_while_it_runs(pipeline: Pipeline, erp: FakeERPNext) -> None:
    names = [(await customer(pipeline, f"C{index}"))["name"] for index in range(5)]
    arguments = {"doctype": "Customer", "since": "2024-01-01", "limit_page_length": 2}
    first = ok(pipeline, "erpnext_sync_entities", await pipeline.invoke("erpnext_sync_entities", arguments))
    assert [d["name"] for d in first["items"]] == names[:2]
    erp.touch("Customer", names[0], email_id="a@example.com")  # already seen: changed again, so seen again
    erp.touch("Customer", names[3], email_id="d@example.com")  # not seen yet: moves later, still seen once
    rest = ok(
        pipeline,
        "erpnext_sync_entities",
        await pipeline.invoke(
            "erpnext_sync_entities",
            {"doctype": "Customer", "all_pages": True, "limit_page_length": 2, **first["next_page"]},
        ),
    )
    assert [d["name"] for d in rest["items"]] == [names[2], names[4], names[0], names[3]]
    assert rest["items"][-1]["email_id"] == "d@example.com" and rest["has_more"] is False


async def test_sync_all_pages_and_its_cursor(pipeline: Pipeline, erp: FakeERPNext) -> None:
    for index in range(5):
        await customer(pipeline, f"C{index}")
    everything = ok(
        pipeline,
        "erpnext_sync_entities",
        await pipeline.invoke(
            "erpnext_sync_entities", {"doctype": "Customer", "since": "2024-05-01 09:00:00", "all_pages": True}
        ),
    )
    assert [d["name"] for d in everything["items"]] == sync_order(erp)
    assert everything["pages"] == 1 and everything["next_page"] is None  # 100 per page by default
    later = erp.docs["Customer"]["CUST-2024-00003"]["modified"]
    since = ok(
        pipeline,
        "erpnext_sync_entities",
        await pipeline.invoke("erpnext_sync_entities", {"doctype": "Customer", "since": later}),
    )
    assert [d["name"] for d in since["items"]] == ["CUST-2024-00003", "CUST-2024-00004", "CUST-2024-00005"]


@pytest.mark.parametrize(
    ("arguments", "path"),
    [
        ({"doctype": "Customer"}, "$"),
        ({"doctype": "Customer", "cursor": "not-a-cursor"}, "$.cursor"),
        ({"doctype": "Customer", "since": "May 1st"}, "$.since"),
        ({"doctype": "Customer", "since": "2024-05-01", "filters": []}, "$"),  # the keyset owns the filters
        ({"doctype": "Customer;drop", "since": "2024-05-01"}, "$.doctype"),
    ],
)
async def test_sync_arguments_checked_locally(
    pipeline: Pipeline, erp: FakeERPNext, arguments: dict[str, Any], path: str
) -> None:
    error = failed(await pipeline.invoke("erpnext_sync_entities", arguments), "INVALID_ARGUMENTS")
    assert error.details["path"] == path
    assert erp.requests == []


# ------------------------------------------------------------------ the listing


def test_every_erpnext_tool_is_described_and_has_an_output_schema() -> None:
    registry = Registry.from_catalog(load_catalog([BUNDLED_MANIFEST.parent], environ={}))
    tools = {tool.name: tool for tool in registry if tool.name.startswith("erpnext_")}
    assert set(tools) == ALL_TOOLS
    for name, tool in tools.items():
        assert tool.title and len(tool.description) >= 40, name
        for prop, definition in tool.input_schema["properties"].items():
            assert isinstance(definition.get("description"), str) and definition["description"], f"{name}.{prop}"
        assert tool.mcp_tool.output_schema is not None, name
        Draft202012Validator.check_schema(dict(tool.mcp_tool.output_schema))
    sync = tools["erpnext_sync_entities"].input_schema
    assert list(sync["properties"]) == ["doctype", "limit_page_length", "since", "cursor", "all_pages"]
    assert tools["erpnext_delete_entity"].annotations["destructiveHint"] is True
