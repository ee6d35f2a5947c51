"""A fake ERPNext site speaking Frappe's REST API (/api/resource, v14/v15) the way the real one does.

- Auth: `Authorization: token <api_key>:<api_secret>` (or `Basic base64(key:secret)`, which Frappe also takes);
  anything else is 401 AuthenticationError.
- `GET /api/resource/{doctype}`: `fields`, `filters`, `or_filters` are JSON in the query string (Frappe json-loads
  them); filters are lists of `[field, op, value]` or `[doctype, field, op, value]` (or a dict `{field: value}` /
  `{field: [op, value]}`), operators = != > < >= <= like, not like, in, not in, between, is (set / not set);
  `or_filters` are OR'ed and AND'ed to `filters`, as `frappe.get_list` builds its WHERE clause. `order_by` is
  "field asc|desc, ..." (default `modified desc`); `limit_start` / `limit_page_length` (default 20; 0 means all)
  page the result. Only `name` is returned unless `fields` asks; `*` is every field of the DocType but child tables.
  An unknown field is 417 DataError "Field not permitted in query".
- `GET/PUT/DELETE /api/resource/{doctype}/{name}`, `POST /api/resource/{doctype}` (JSON body): `{"data": doc}`;
  delete answers 202 `{"message": "ok"}`.
- Errors as Frappe sends them: `{"exc_type", "exception", "_server_messages"}`, where `_server_messages` is a JSON
  list of JSON objects, each as text. DoesNotExistError 404, PermissionError 403 (a DocType the API user may not
  read), MandatoryError / LinkValidationError / TimestampMismatchError / LinkExistsError / DataError 417,
  DuplicateEntryError 409, AuthenticationError 401.
- `modified` carries microseconds, like Frappe's datetime(6) columns; `freeze(ts)` stamps every following change
  with one time, to make the ties a bulk update leaves behind.
"""

from __future__ import annotations

import base64
import copy
import datetime
import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests._upstream import FakeUpstream, Recorded

STANDARD = ("name", "owner", "creation", "modified", "modified_by", "docstatus", "idx")
API_USER = "integrations@example.com"


@dataclass(frozen=True)
class DocType:
    fields: tuple[str, ...]
    mandatory: tuple[tuple[str, str], ...] = ()
    """(fieldname, label) of the fields a document must have."""
    links: tuple[tuple[str, str], ...] = ()
    """(fieldname, DocType it links to): the value must name an existing document."""
    tables: tuple[str, ...] = ()
    series: str | None = None
    """Naming series (e.g. CUST-.YYYY.-); None names documents by `name_field`."""
    name_field: str | None = None
    defaults: tuple[tuple[str, Any], ...] = ()


DOCTYPES: dict[str, DocType] = {
    "Customer": DocType(
        fields=("customer_name", "customer_type", "customer_group", "territory", "disabled", "email_id"),
        mandatory=(("customer_name", "Customer Name"),),
        links=(("customer_group", "Customer Group"), ("territory", "Territory")),
        series="CUST-2024-",
        defaults=(
            ("customer_type", "Company"),
            ("disabled", 0),
            ("customer_group", "Commercial"),
            ("territory", "All Territories"),
        ),
    ),
    "Item": DocType(
        fields=("item_code", "item_name", "item_group", "stock_uom", "standard_rate", "disabled"),
        mandatory=(("item_code", "Item Code"), ("item_group", "Item Group"), ("stock_uom", "Default Unit of Measure")),
        links=(("item_group", "Item Group"),),
        name_field="item_code",
        defaults=(("disabled", 0), ("standard_rate", 0.0)),
    ),
    "Sales Order": DocType(
        fields=("customer", "transaction_date", "delivery_date", "status", "grand_total"),
        mandatory=(("customer", "Customer"), ("delivery_date", "Delivery Date")),
        links=(("customer", "Customer"),),
        tables=("items",),
        series="SAL-ORD-2024-",
        defaults=(("status", "Draft"), ("transaction_date", "2024-05-01")),
    ),
    "Customer Group": DocType(fields=("customer_group_name",), name_field="customer_group_name"),
    "Territory": DocType(fields=("territory_name",), name_field="territory_name"),
    "Item Group": DocType(fields=("item_group_name",), name_field="item_group_name"),
    "Salary Slip": DocType(fields=("employee",)),  # exists, but the API user has no role that may read it
}
FORBIDDEN = {"Salary Slip"}


class FrappeError(Exception):
    """Frappe's error answer: `exc_type`, `exception` (the last traceback line) and `_server_messages`."""

    def __init__(self, status: int, exc_type: str, message: str | None, exception: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        if exception is None:
            exception = f"frappe.exceptions.{exc_type}: {message}" if message else f"frappe.exceptions.{exc_type}"
        self.body: dict[str, Any] = {
            "exc_type": exc_type,
            "exception": exception,
            "exc": json.dumps([f"Traceback (most recent call last):\n  ...\nfrappe.exceptions.{exc_type}: {message}"]),
        }
        if message is not None:
            entry = {
                "message": message,
                "title": "Message",
                "indicator": "red",
                "raise_exception": 1,
                "__frappe_exc_id": "f2c9",
            }
            self.body["_server_messages"] = json.dumps([json.dumps(entry)])


def not_found(doctype: str, name: str) -> FrappeError:
    return FrappeError(404, "DoesNotExistError", f"{doctype} {name} not found")


# ------------------------------------------------------------------ filters as frappe.get_list reads them


def _conditions(raw: Any, doctype: str) -> list[tuple[str, str, Any]]:
    if raw in (None, "", []):
        return []
    if isinstance(raw, dict):  # {field: value} or {field: [operator, value]}
        return [(f, str(v[0]).lower(), v[1]) if isinstance(v, list) else (f, "=", v) for f, v in raw.items()]
    conditions = []
    for entry in raw:
        if not isinstance(entry, list) or len(entry) not in (3, 4):
            raise FrappeError(417, "ValidationError", f"Invalid filter: {json.dumps(entry)}")
        if len(entry) == 4:
            if entry[0] != doctype:
                raise FrappeError(417, "DataError", f"Field not permitted in query: {entry[1]}")
            entry = entry[1:]
        conditions.append((str(entry[0]), str(entry[1]).lower(), entry[2]))
    return conditions


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, int | float) and not isinstance(left, bool):
        try:
            return left, float(right)
        except (TypeError, ValueError):
            return str(left), str(right)
    return ("" if left is None else str(left)), ("" if right is None else str(right))


def _holds(doc: dict[str, Any], condition: tuple[str, str, Any]) -> bool:
    fieldname, op, value = condition
    actual = doc.get(fieldname)
    if op == "is":
        return (actual not in (None, "")) == (value == "set")
    if op in ("in", "not in"):
        options = value if isinstance(value, list) else [v.strip() for v in str(value).split(",")]
        inside = any(_comparable(actual, option)[0] == _comparable(actual, option)[1] for option in options)
        return inside == (op == "in")
    if op in ("like", "not like"):
        pattern = str(value).replace("%", "*").replace("_", "?")
        return fnmatch.fnmatchcase(str(actual or "").lower(), pattern.lower()) == (op == "like")
    if op == "between":
        low, high = value
        return _comparable(actual, low)[0] >= _comparable(actual, low)[1] and (
            _comparable(actual, high)[0] <= _comparable(actual, high)[1]
        )
    left, right = _comparable(actual, value)
    compare = {
        "=": left == right,
        "!=": left != right,
        ">": left > right,
        "<": left < right,
        ">=": left >= right,
        "<=": left <= right,
    }
    if op not in compare:
        raise FrappeError(417, "ValidationError", f"Invalid operator: {op}")
    return compare[op]


_ORDER = re.compile(r"^\s*`?([A-Za-z_][A-Za-z0-9_]*)`?(?:\s+(asc|desc))?\s*$", re.IGNORECASE)


def _sort(docs: list[dict[str, Any]], order_by: str) -> list[dict[str, Any]]:
    keys = []
    for part in order_by.split(","):
        match = _ORDER.match(part)
        if match is None:  # Frappe refuses anything but plain fields here (no sub-queries, no functions)
            raise FrappeError(417, "ValidationError", f"Invalid field or order: {part.strip()}")
        keys.append((match.group(1), (match.group(2) or "asc").lower() == "desc"))
    for fieldname, descending in reversed(keys):  # stable sorts, last key first
        docs = sorted(docs, key=lambda d, f=fieldname: _comparable(d.get(f), d.get(f))[0], reverse=descending)
    return docs


# ------------------------------------------------------------------ the fake site


@dataclass
class FakeERPNext(FakeUpstream):
    api_key: str = "a3f9c2e17b4d5e6"
    api_secret: str = "9e8d7c6b5a4f3e2d1c0b-SECRET"
    docs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict[str, dict[str, dict[str, Any]]])
    counters: dict[str, int] = field(default_factory=dict[str, int])
    now: datetime.datetime = field(default_factory=lambda: datetime.datetime(2024, 5, 1, 9, 0, 0))
    frozen: str | None = None
    calls: list[dict[str, str]] = field(default_factory=list[dict[str, str]])

    def reset(self) -> None:
        self.docs = {doctype: {} for doctype in DOCTYPES}
        for doctype, names in (
            ("Customer Group", ("Commercial", "Government", "Individual")),
            ("Territory", ("All Territories", "Europe")),
            ("Item Group", ("Products",)),
        ):
            for name in names:
                self.docs[doctype][name] = self._stamp({"doctype": doctype, "name": name}, new=True)
        self.counters.clear()
        self.requests.clear()
        self.calls.clear()
        self.frozen = None

    def freeze(self, stamp: str | None) -> None:
        self.frozen = stamp

    def tick(self) -> str:
        if self.frozen is not None:
            return self.frozen
        self.now += datetime.timedelta(microseconds=1_250)
        return self.now.strftime("%Y-%m-%d %H:%M:%S.%f")

    def _stamp(self, doc: dict[str, Any], *, new: bool) -> dict[str, Any]:
        stamp = self.tick()
        if new:
            doc.update(owner=API_USER, creation=stamp, docstatus=0, idx=0)
        doc.update(modified=stamp, modified_by=API_USER)
        return doc

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        raw_path = request.scope["raw_path"].decode("latin-1")
        query = request.scope["query_string"].decode("latin-1")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Recorded(request.method, raw_path, query, headers, body))
        params = dict(parse_qsl(query, keep_blank_values=True))
        self.calls.append(params)
        try:
            self._authenticate(headers.get("authorization", ""))
            parts = [unquote(part) for part in raw_path.split("?")[0].strip("/").split("/")]
            return self._route(request.method, parts, params, body)
        except FrappeError as error:
            return JSONResponse(error.body, status_code=error.status)

    def _authenticate(self, header: str) -> None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                credentials = base64.b64decode(credentials).decode()
            except ValueError:
                credentials = ""
        elif scheme.lower() != "token":
            credentials = ""
        if credentials != f"{self.api_key}:{self.api_secret}":
            raise FrappeError(401, "AuthenticationError", None)

    def _route(self, method: str, parts: list[str], params: dict[str, str], body: bytes) -> Response:
        match (method, *parts):
            case ("GET", "api", "resource", doctype):
                return JSONResponse({"data": self.list_docs(self._doctype(doctype, "read"), params)})
            case ("POST", "api", "resource", doctype):
                return JSONResponse({"data": self.insert(self._doctype(doctype, "create"), self._json(body))})
            case ("GET", "api", "resource", doctype, name):
                return JSONResponse({"data": self._doc(self._doctype(doctype, "read"), name)})
            case ("PUT", "api", "resource", doctype, name):
                return JSONResponse({"data": self.save(self._doctype(doctype, "write"), name, self._json(body))})
            case ("DELETE", "api", "resource", doctype, name):
                self.delete(self._doctype(doctype, "delete"), name)
                return JSONResponse({"message": "ok"}, status_code=202)
            case _:
                return JSONResponse({"exc_type": "PageDoesNotExistError", "message": "Not found"}, status_code=404)

    def _doctype(self, doctype: str, action: str) -> str:
        if doctype not in DOCTYPES:
            raise FrappeError(404, "DoesNotExistError", f"DocType {doctype} not found")
        if doctype in FORBIDDEN:
            raise FrappeError(
                403,
                "PermissionError",
                f"User <strong>{API_USER}</strong> does not have doctype access via role permission for document "
                f"<strong>{doctype}</strong>",
            )
        return doctype

    def _json(self, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise FrappeError(417, "ValidationError", "Invalid JSON in request body") from None
        if not isinstance(data, dict):
            raise FrappeError(417, "ValidationError", "Request body must be a JSON object")
        return data

    def _doc(self, doctype: str, name: str) -> dict[str, Any]:
        doc = self.docs[doctype].get(name)
        if doc is None:
            raise not_found(doctype, name)
        return doc

    # ---------------------------------------------------------------- reads

    def list_docs(self, doctype: str, params: dict[str, str]) -> list[dict[str, Any]]:
        meta = DOCTYPES[doctype]
        try:
            fields = json.loads(params.get("fields", '["name"]'))
            filters = _conditions(json.loads(params.get("filters", "[]")), doctype)
            or_filters = _conditions(json.loads(params.get("or_filters", "[]")), doctype)
        except ValueError:
            raise FrappeError(417, "ValidationError", "Invalid JSON in fields or filters") from None
        known = {*STANDARD, *meta.fields}
        for name in [*(f for f in fields if f != "*"), *(c[0] for c in filters + or_filters)]:
            if name not in known:
                raise FrappeError(417, "DataError", f"Field not permitted in query: {name}")
        docs = [d for d in self.docs[doctype].values() if all(_holds(d, c) for c in filters)]
        if or_filters:
            docs = [d for d in docs if any(_holds(d, c) for c in or_filters)]
        docs = _sort(docs, params.get("order_by") or "modified desc")
        start = int(params.get("limit_start") or 0)
        length = int(params.get("limit_page_length") or params.get("limit") or 20)
        docs = docs[start : start + length] if length else docs[start:]
        columns = [*STANDARD, *meta.fields] if "*" in fields else fields
        return [{column: doc.get(column) for column in columns} for doc in docs]

    # ---------------------------------------------------------------- writes

    def _validate(self, doctype: str, doc: dict[str, Any]) -> None:
        meta = DOCTYPES[doctype]
        for fieldname, label in meta.mandatory:
            if doc.get(fieldname) in (None, "", []):
                raise FrappeError(
                    417,
                    "MandatoryError",
                    f"Error: Value missing for {doctype}: {label}",
                    exception=f"frappe.exceptions.MandatoryError: [{doctype}, {doc.get('name') or 'new'}]: {fieldname}",
                )
        for fieldname, target in meta.links:
            value = doc.get(fieldname)
            if value not in (None, "") and value not in self.docs[target]:
                raise FrappeError(417, "LinkValidationError", f"Could not find {target}: {value}")
        for fieldname in doc:
            if fieldname not in {*STANDARD, *meta.fields, *meta.tables, "doctype"}:
                raise FrappeError(417, "DataError", f"Field not permitted in query: {fieldname}")

    def insert(self, doctype: str, data: dict[str, Any]) -> dict[str, Any]:
        meta = DOCTYPES[doctype]
        doc: dict[str, Any] = {"doctype": doctype, **dict(meta.defaults), **copy.deepcopy(data)}
        if meta.series is not None:
            doc.pop("name", None)  # a naming series decides the name, whatever was sent
        self._validate(doctype, doc)
        if meta.series is not None:
            self.counters[doctype] = self.counters.get(doctype, 0) + 1
            doc["name"] = f"{meta.series}{self.counters[doctype]:05d}"
        else:
            doc["name"] = doc[meta.name_field or "name"]
            if doc["name"] in self.docs[doctype]:
                raise FrappeError(409, "DuplicateEntryError", f"{doctype} {doc['name']} already exists")
        self._stamp(doc, new=True)
        for table in meta.tables:
            doc[table] = [self._row(doctype, doc["name"], table, i, row) for i, row in enumerate(doc.get(table, []))]
        if doctype == "Sales Order":
            doc["grand_total"] = sum(row.get("qty", 0) * row.get("rate", 0) for row in doc["items"])
        self.docs[doctype][doc["name"]] = doc
        return doc

    def _row(self, parent_type: str, parent: str, table: str, index: int, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": f"{parent}-{table}-{index + 1}",
            "owner": API_USER,
            "docstatus": 0,
            "idx": index + 1,
            "parent": parent,
            "parentfield": table,
            "parenttype": parent_type,
            "doctype": f"{parent_type} Item",
            **row,
        }

    def save(self, doctype: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
        doc = self._doc(doctype, name)
        if "modified" in data and data["modified"] != doc["modified"]:
            raise FrappeError(
                417,
                "TimestampMismatchError",
                "Error: Document has been modified after you have opened it "
                f"({data['modified']}, {doc['modified']}). Please refresh to get the latest document.",
            )
        updated = {**doc, **{k: v for k, v in data.items() if k not in ("name", "modified", "creation", "owner")}}
        self._validate(doctype, updated)
        meta = DOCTYPES[doctype]
        for table in meta.tables:
            if table in data:
                updated[table] = [self._row(doctype, name, table, i, row) for i, row in enumerate(data[table])]
        self._stamp(updated, new=False)
        self.docs[doctype][name] = updated
        return updated

    def delete(self, doctype: str, name: str) -> None:
        self._doc(doctype, name)
        for other, meta in DOCTYPES.items():
            for fieldname, target in meta.links:
                if target != doctype:
                    continue
                for linked in self.docs[other].values():
                    if linked.get(fieldname) == name:
                        raise FrappeError(
                            417,
                            "LinkExistsError",
                            f'Cannot delete or cancel because {doctype} <a href="/app/{doctype.lower()}/{name}">'
                            f'{name}</a> is linked with {other} <a href="/app/{other.lower()}/{linked["name"]}">'
                            f"{linked['name']}</a>",
                        )
        del self.docs[doctype][name]

    # ---------------------------------------------------------------- helpers for tests

    def touch(self, doctype: str, name: str, **changes: Any) -> dict[str, Any]:
        """Change a document as a user in ERPNext would (a new `modified`)."""
        return self.save(doctype, name, changes)
