"""A fake api.stripe.com that behaves like the real one where our connector can tell the difference.

- Auth: `Authorization: Bearer sk_...`; none → 401 "You did not provide an API key..."; a wrong key → 401
  "Invalid API Key provided: sk_test_****…1234" (Stripe masks all but the last four characters).
- Parameters: GET/DELETE from the query string, POST from an `application/x-www-form-urlencoded` body, nested keys
  parsed as Stripe (Rack) does: `metadata[k]=v` → {"metadata": {"k": "v"}}, `items[0][price]=p` → {"items":
  [{"price": "p"}]}, `expand[]=a` appends. Unknown parameters are 400 `parameter_unknown`, a missing required one
  400 `parameter_missing`, a non-integer amount 400 `parameter_invalid_integer`, all with `param`.
- Idempotency (POST): the `Idempotency-Key` header's first result is saved when the request was executed (2xx, or a
  402 card error); the same key with the same parameters replays it (`Idempotent-Replayed: true`); with other
  parameters it is 400 `idempotency_error`. Failed validation saves nothing, as at Stripe.
- Objects: Charge, Refund, PaymentMethod, Subscription shaped like API version 2024-06-20; lists are
  `{"object": "list", "data", "has_more", "url"}`, newest first, paged by `limit` (1-100, default 10) and
  `starting_after` (an unknown id is 400 resource_missing); a missing object is 404 resource_missing.
- Test tokens: tok_visa / tok_mastercard succeed; tok_chargeDeclined → 402 card_declined (generic_decline),
  tok_chargeDeclinedInsufficientFunds → 402 card_declined (insufficient_funds); both record a failed charge.
- Test hooks: `lose_responses` answers the next N executed POSTs with a 502 after saving their result (the response
  lost on the way back, so only an idempotent retry recovers it); `rate_limited` answers 429 to everything;
  the description "echo-auth" stores the Authorization header in the charge's description (an API that reflects a
  credential).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests._upstream import FakeUpstream, Recorded

DOCS = "https://stripe.com/docs/error-codes"
CUSTOMERS = ("cus_NffrFeUfNV2Hib", "cus_Q5alice")
PRICES: dict[str, dict[str, Any]] = {
    "price_1MoBy5LkdIwHu7ixZhnattbh": {"unit_amount": 1000, "nickname": "Basic", "interval": "month"},
    "price_1MoBy5LkdIwHu7ixPro00000": {"unit_amount": 5000, "nickname": "Pro", "interval": "month"},
}
CARDS = {
    "tok_visa": ("visa", "4242", "credit"),
    "tok_mastercard": ("mastercard", "4444", "credit"),
    "tok_visa_debit": ("visa", "5556", "debit"),
}
DECLINES = {"tok_chargeDeclined": "generic_decline", "tok_chargeDeclinedInsufficientFunds": "insufficient_funds"}
NUMBERS = {"4242424242424242": ("visa", "credit"), "5555555555554444": ("mastercard", "credit")}


class StripeError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "type": kind, **fields}
        if "code" in fields:
            self.body["doc_url"] = f"{DOCS}#{fields['code'].replace('_', '-')}"


def missing(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def no_such(kind: str, ident: str, param: str = "id") -> StripeError:
    return StripeError(
        404 if param == "id" else 400, f"No such {kind}: '{ident}'", code="resource_missing", param=param
    )


# ------------------------------------------------------------------ Stripe's (Rack's) nested form keys

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_stripe_form(text: str) -> dict[str, Any]:
    """`a[b][0][c]=1&a[b][0][d]=2&e[]=x` → {"a": {"b": [{"c": "1", "d": "2"}]}, "e": ["x"]}, as Stripe parses it."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True, strict_parsing=False):
        match = _KEY.match(raw_key)
        if match is None:
            raise StripeError(400, f"Invalid parameter name: {raw_key}", code="parameter_unknown", param=raw_key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if isinstance(node, list):  # under `key[]`: each `[]` appends
                if part != "":
                    raise StripeError(400, f"Invalid array: {raw_key}", param=raw_key)
                node.append(value if last else ([] if parts[index + 1] == "" else {}))
                node = node[-1]
                continue
            if not isinstance(node, dict) or part == "":
                raise StripeError(400, f"Invalid hash: {raw_key}", param=raw_key)
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if parts[index + 1] == "" else {})
    return _arrays(root)


def _arrays(node: Any) -> Any:
    """Hashes keyed 0, 1, 2, ... are arrays to Stripe (`items[0][price]`), in index order."""
    if isinstance(node, dict):
        converted = {key: _arrays(value) for key, value in node.items()}
        if converted and all(key.isdigit() for key in converted):
            return [converted[key] for key in sorted(converted, key=int)]
        return converted
    if isinstance(node, list):
        return [_arrays(value) for value in node]
    return node


def integer(params: dict[str, Any], name: str, *, required: bool = False, low: int | None = None) -> int | None:
    if name not in params:
        if required:
            raise missing(name)
        return None
    text = params[name]
    if not isinstance(text, str) or not re.fullmatch(r"-?\d+", text):
        raise StripeError(400, f"Invalid integer: {text}", code="parameter_invalid_integer", param=name)
    value = int(text)
    if low is not None and value < low:
        raise StripeError(
            400, f"This value must be greater than or equal to {low}.", code="parameter_invalid_integer", param=name
        )
    return value


def page_limit(params: dict[str, Any]) -> int:
    limit = integer(params, "limit")
    if limit is None:
        return 10
    if not 1 <= limit <= 100:
        raise StripeError(
            400, "This value must be less than or equal to 100.", code="parameter_invalid_integer", param="limit"
        )
    return limit


def boolean(params: dict[str, Any], name: str) -> bool | None:
    if name not in params:
        return None
    if params[name] not in ("true", "false"):
        raise StripeError(400, f"Invalid boolean: {params[name]}", param=name)
    return params[name] == "true"


def check_known(params: dict[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeError(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def metadata(params: dict[str, Any]) -> dict[str, str]:
    value = params.get("metadata", {})
    if value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise StripeError(400, "Invalid hash", param="metadata")
    return {key: text for key, text in value.items() if text != ""}  # an empty value unsets the key


# ------------------------------------------------------------------ the fake


@dataclass
class FakeStripe(FakeUpstream):
    api_key: str = "sk_test_51Fake0000000000000000000000000000000000000000000KEY1234"
    charges: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(
        default_factory=dict[str, tuple[str, int, dict[str, Any]]]
    )
    lose_responses: int = 0
    rate_limited: bool = False
    executed: int = 0
    """POSTs that created or changed something (replays excluded)."""
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1_714_000_000))
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def reset(self) -> None:
        for store in (self.charges, self.refunds, self.payment_methods, self.subscriptions, self.idempotency):
            store.clear()
        self.requests.clear()
        self.lose_responses, self.rate_limited, self.executed = 0, False, 0

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_3P{next(self.ids):06d}LkdIwHu7ix{prefix.upper()[:2]}"

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        raw_path = request.scope["raw_path"].decode("latin-1")
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = request.scope["query_string"].decode("latin-1")
        self.requests.append(Recorded(request.method, raw_path, query, headers, body))
        try:
            return self._respond(request.method, raw_path, query, headers, body)
        except StripeError as error:
            return JSONResponse({"error": error.body}, status_code=error.status, headers={"request-id": "req_fake"})

    def _respond(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        auth = headers.get("authorization", "")
        if not auth:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using "
                "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#"
                "authentication for details, or we can help at https://support.stripe.com/.",
            )
        given = auth.removeprefix("Bearer ")
        if given != self.api_key:
            masked = given[:8] + "*" * max(len(given) - 12, 0) + given[-4:]
            raise StripeError(401, f"Invalid API Key provided: {masked}")
        if self.rate_limited:
            raise StripeError(
                429,
                "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.",
                code="rate_limit",
            )
        if method == "POST":
            if headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded" and body:
                raise StripeError(400, "Invalid request: unsupported Content-Type " + headers.get("content-type", ""))
            params = parse_stripe_form(body.decode("utf-8"))
        else:
            params = parse_stripe_form(query)
        key = headers.get("idempotency-key")
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        if method == "POST" and key is not None and key in self.idempotency:
            saved_fingerprint, status, saved = self.idempotency[key]
            if saved_fingerprint != fingerprint:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                    kind="idempotency_error",
                )
            return JSONResponse(saved, status_code=status, headers={"idempotent-replayed": "true"})
        try:
            status, result = self._route(method, path, params, headers)
        except StripeError as error:
            if method == "POST" and key is not None and error.status == 402:  # a card error was executed: saved
                self.idempotency[key] = (fingerprint, 402, {"error": error.body})
            raise
        if method == "POST":
            self.executed += 1
            if key is not None:
                self.idempotency[key] = (fingerprint, status, result)
            if self.lose_responses > 0:
                self.lose_responses -= 1
                return JSONResponse({"error": {"type": "api_error", "message": "Bad gateway"}}, status_code=502)
        return JSONResponse(result, status_code=status, headers={"request-id": "req_fake"})

    # ---------------------------------------------------------------- routes

    def _route(self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        parts = path.split("?")[0].strip("/").split("/")
        match (method, *parts):
            case ("POST", "v1", "charges"):
                return 200, self.create_charge(params, headers)
            case ("GET", "v1", "charges"):
                return 200, self.list_objects("charge", self.charges, params, {"customer", "created"})
            case ("GET", "v1", "charges", ident):
                check_known(params, set())
                return 200, self.fetch("charge", self.charges, ident)
            case ("POST", "v1", "refunds"):
                return 200, self.create_refund(params)
            case ("GET", "v1", "refunds"):
                return 200, self.list_objects("refund", self.refunds, params, {"charge", "payment_intent", "created"})
            case ("GET", "v1", "refunds", ident):
                return 200, self.fetch("refund", self.refunds, ident)
            case ("POST", "v1", "payment_methods"):
                return 200, self.create_payment_method(params)
            case ("GET", "v1", "payment_methods"):
                return 200, self.list_objects("payment_method", self.payment_methods, params, {"customer", "type"})
            case ("GET", "v1", "payment_methods", ident):
                return 200, self.fetch("payment_method", self.payment_methods, ident)
            case ("POST", "v1", "subscriptions"):
                return 200, self.create_subscription(params)
            case ("GET", "v1", "subscriptions"):
                return 200, self.list_subscriptions(params)
            case ("GET", "v1", "subscriptions", ident):
                return 200, self.fetch("subscription", self.subscriptions, ident)
            case ("POST", "v1", "subscriptions", ident):
                return 200, self.update_subscription(ident, params)
            case ("DELETE", "v1", "subscriptions", ident):
                return 200, self.cancel_subscription(ident, params)
            case _:
                raise StripeError(
                    404,
                    f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can "
                    "help at https://support.stripe.com/.",
                )

    def fetch(self, kind: str, store: dict[str, dict[str, Any]], ident: str) -> dict[str, Any]:
        if ident not in store:
            raise no_such(kind.replace("_", " ") if kind != "payment_method" else "PaymentMethod", ident)
        return store[ident]

    def list_objects(
        self, kind: str, store: dict[str, dict[str, Any]], params: dict[str, Any], filters: set[str]
    ) -> dict[str, Any]:
        check_known(params, {"limit", "starting_after", "ending_before", "expand", *filters})
        limit = page_limit(params)
        newest_first = list(reversed(store.values()))
        for name in filters - {"created"}:
            if name in params:
                newest_first = [obj for obj in newest_first if obj.get(name) == params[name]]
        created = params.get("created")
        if isinstance(created, dict):
            ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
            for op, bound in created.items():
                if op not in ops:
                    raise StripeError(
                        400,
                        f"Received unknown parameter: created[{op}]",
                        code="parameter_unknown",
                        param=f"created[{op}]",
                    )
                newest_first = [obj for obj in newest_first if ops[op](obj["created"], int(bound))]
        return self.page(kind, newest_first, params, limit)

    def page(self, kind: str, objects: list[dict[str, Any]], params: dict[str, Any], limit: int) -> dict[str, Any]:
        start = 0
        after = params.get("starting_after")
        if after is not None:
            positions = [index for index, obj in enumerate(objects) if obj["id"] == after]
            if not positions:
                raise no_such(kind.replace("_", " "), after, "starting_after")
            start = positions[0] + 1
        chosen = objects[start : start + limit]
        plural = {"charge": "charges", "refund": "refunds", "payment_method": "payment_methods"}.get(kind, kind + "s")
        return {"object": "list", "data": chosen, "has_more": start + limit < len(objects), "url": f"/v1/{plural}"}

    # ---------------------------------------------------------------- charges and refunds

    def create_charge(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        check_known(
            params,
            {
                "amount",
                "currency",
                "source",
                "customer",
                "description",
                "receipt_email",
                "statement_descriptor_suffix",
                "capture",
                "metadata",
                "expand",
            },
        )
        amount = integer(params, "amount", required=True)
        assert amount is not None
        if "currency" not in params:
            raise missing("currency")
        currency = params["currency"]
        if amount < 50 and currency == "usd":
            raise StripeError(400, "Amount must be at least $0.50 usd", code="amount_too_small", param="amount")
        source, customer = params.get("source"), params.get("customer")
        if source is None and customer is None:
            raise StripeError(400, "Must provide source or customer.")
        if customer is not None and customer not in CUSTOMERS:
            raise no_such("customer", customer, "customer")
        capture = boolean(params, "capture")
        token = source or "tok_visa"  # a customer's default source is a Visa here
        if token not in CARDS and token not in DECLINES:
            raise no_such("token", token, "source")
        description = params.get("description")
        if description == "echo-auth":
            description = headers.get("authorization")
        charge_id = self.new_id("ch")
        brand, last4, funding = CARDS.get(token, ("visa", "0002", "credit"))
        declined = DECLINES.get(token)
        charge = {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": 0 if declined or capture is False else amount,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": None if declined else self.new_id("txn"),
            "billing_details": {
                "address": {
                    "city": None,
                    "country": None,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "email": None,
                "name": None,
                "phone": None,
            },
            "calculated_statement_descriptor": "FAKE STRIPE",
            "captured": not declined and capture is not False,
            "created": next(self.clock),
            "currency": currency,
            "customer": customer,
            "description": description,
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": "card_declined" if declined else None,
            "failure_message": "Your card was declined." if declined else None,
            "fraud_details": {},
            "livemode": False,
            "metadata": metadata(params),
            "on_behalf_of": None,
            "outcome": {
                "network_status": "declined_by_network" if declined else "approved_by_network",
                "reason": declined,
                "risk_level": "normal",
                "risk_score": 32,
                "seller_message": "The bank did not return any further details with this decline."
                if declined
                else "Payment complete.",
                "type": "issuer_declined" if declined else "authorized",
            },
            "paid": not declined,
            "payment_intent": None,
            "payment_method": self.new_id("card"),
            "payment_method_details": {
                "card": {
                    "brand": brand,
                    "country": "US",
                    "exp_month": 8,
                    "exp_year": 2030,
                    "funding": funding,
                    "last4": last4,
                    "network": brand,
                },
                "type": "card",
            },
            "receipt_email": params.get("receipt_email"),
            "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}",
            "refunded": False,
            "review": None,
            "shipping": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": params.get("statement_descriptor_suffix"),
            "status": "failed" if declined else "succeeded",
            "transfer_data": None,
            "transfer_group": None,
        }
        self.charges[charge_id] = charge
        if declined:
            raise StripeError(
                402,
                "Your card was declined.",
                kind="card_error",
                code="card_declined",
                decline_code=declined,
                charge=charge_id,
            )
        return charge

    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, {"charge", "payment_intent", "amount", "reason", "metadata", "expand"})
        charge_id = params.get("charge")
        if charge_id is None and "payment_intent" not in params:
            raise StripeError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
            )
        if charge_id is None or charge_id not in self.charges:
            raise no_such("charge", str(charge_id or params["payment_intent"]), "charge")
        charge = self.charges[charge_id]
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeError(400, f"Charge {charge_id} has already been refunded.", code="charge_already_refunded")
        amount = integer(params, "amount", low=1)
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise StripeError(
                400,
                f"Refund amount (${amount / 100:.2f}) is greater than unrefunded amount on charge "
                f"(${remaining / 100:.2f})",
                param="amount",
            )
        reason = params.get("reason")
        if reason is not None and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise StripeError(
                400, "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer", param="reason"
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund_id = self.new_id("re")
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": self.new_id("txn"),
            "charge": charge_id,
            "created": next(self.clock),
            "currency": charge["currency"],
            "destination_details": {"card": {"type": "refund"}, "type": "card"},
            "metadata": metadata(params),
            "payment_intent": None,
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        self.refunds[refund_id] = refund
        return refund

    # ---------------------------------------------------------------- payment methods

    def create_payment_method(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, {"type", "card", "billing_details", "metadata", "expand"})
        if "type" not in params:
            raise missing("type")
        if params["type"] != "card":
            raise StripeError(400, f"Invalid type: {params['type']} is not supported here", param="type")
        card = params.get("card")
        if not isinstance(card, dict):
            raise missing("card")
        check_known(
            {f"card[{k}]": v for k, v in card.items()},
            {"card[number]", "card[exp_month]", "card[exp_year]", "card[cvc]", "card[token]"},
        )
        if "token" in card:
            if card["token"] not in CARDS:
                raise no_such("token", card["token"], "card[token]")
            brand, last4, funding = CARDS[card["token"]]
            exp_month, exp_year = 8, 2030
        else:
            number = str(card.get("number", "")).replace(" ", "")
            if not number:
                raise missing("card[number]")
            if number not in NUMBERS:
                raise StripeError(
                    402, "Your card number is incorrect.", kind="card_error", code="incorrect_number", param="number"
                )
            brand, funding = NUMBERS[number]
            last4 = number[-4:]
            exp_month = integer(card, "exp_month", required=True) or 0
            exp_year = integer(card, "exp_year", required=True) or 0
            if not 1 <= exp_month <= 12:
                raise StripeError(
                    402,
                    "Your card's expiration month is invalid.",
                    kind="card_error",
                    code="invalid_expiry_month",
                    param="exp_month",
                )
            if exp_year < 2024:
                raise StripeError(
                    402,
                    "Your card's expiration year is invalid.",
                    kind="card_error",
                    code="invalid_expiry_year",
                    param="exp_year",
                )
        billing = params.get("billing_details", {})
        address = billing.get("address", {}) if isinstance(billing, dict) else {}
        method_id = self.new_id("pm")
        method = {
            "id": method_id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {k: address.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")},
                "email": billing.get("email"),
                "name": billing.get("name"),
                "phone": billing.get("phone"),
            },
            "card": {
                "brand": brand,
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "unchecked"},
                "country": "US",
                "display_brand": brand,
                "exp_month": exp_month,
                "exp_year": exp_year,
                "fingerprint": "mToisGZ01V71BCos",
                "funding": funding,
                "generated_from": None,
                "last4": last4,
                "networks": {"available": [brand], "preferred": None},
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "created": next(self.clock),
            "customer": None,
            "livemode": False,
            "metadata": metadata(params),
            "type": "card",
        }
        self.payment_methods[method_id] = method
        return method

    # ---------------------------------------------------------------- subscriptions

    def create_subscription(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(
            params,
            {
                "customer",
                "items",
                "default_payment_method",
                "trial_period_days",
                "cancel_at_period_end",
                "description",
                "metadata",
                "expand",
            },
        )
        if "customer" not in params:
            raise missing("customer")
        if params["customer"] not in CUSTOMERS:
            raise no_such("customer", params["customer"], "customer")
        items = params.get("items")
        if not items:
            raise missing("items")
        if not isinstance(items, list):
            raise StripeError(400, "Invalid array", param="items")
        now = next(self.clock)
        sub_id = self.new_id("sub")
        data = []
        for index, entry in enumerate(items):
            if not isinstance(entry, dict) or "price" not in entry:
                raise missing(f"items[{index}][price]")
            check_known(
                {f"items[{index}][{k}]": v for k, v in entry.items()},
                {f"items[{index}][price]", f"items[{index}][quantity]"},
            )
            price_id = entry["price"]
            if price_id not in PRICES:
                raise no_such("price", price_id, f"items[{index}][price]")
            price = PRICES[price_id]
            data.append(
                {
                    "id": self.new_id("si"),
                    "object": "subscription_item",
                    "billing_thresholds": None,
                    "created": now,
                    "metadata": {},
                    "price": {
                        "id": price_id,
                        "object": "price",
                        "active": True,
                        "billing_scheme": "per_unit",
                        "currency": "usd",
                        "nickname": price["nickname"],
                        "product": "prod_NjpI7DbZx6AlWQ",
                        "recurring": {"interval": price["interval"], "interval_count": 1, "usage_type": "licensed"},
                        "type": "recurring",
                        "unit_amount": price["unit_amount"],
                    },
                    "quantity": integer(entry, "quantity", low=1) or 1,
                    "subscription": sub_id,
                    "tax_rates": [],
                }
            )
        trial = integer(params, "trial_period_days", low=1)
        period_end = now + 30 * 86400
        at_end = boolean(params, "cancel_at_period_end") or False
        subscription = {
            "id": sub_id,
            "object": "subscription",
            "application": None,
            "billing_cycle_anchor": now,
            "cancel_at": period_end if at_end else None,
            "cancel_at_period_end": at_end,
            "canceled_at": now if at_end else None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": now,
            "currency": "usd",
            "current_period_end": now + trial * 86400 if trial else period_end,
            "current_period_start": now,
            "customer": params["customer"],
            "days_until_due": None,
            "default_payment_method": params.get("default_payment_method"),
            "description": params.get("description"),
            "discount": None,
            "ended_at": None,
            "items": {
                "object": "list",
                "data": data,
                "has_more": False,
                "total_count": len(data),
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "latest_invoice": self.new_id("in"),
            "livemode": False,
            "metadata": metadata(params),
            "pause_collection": None,
            "start_date": now,
            "status": "trialing" if trial else "active",
            "trial_end": now + trial * 86400 if trial else None,
            "trial_start": now if trial else None,
        }
        self.subscriptions[sub_id] = subscription
        return subscription

    def list_subscriptions(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, {"customer", "price", "status", "limit", "starting_after", "ending_before", "expand"})
        subscriptions = list(reversed(self.subscriptions.values()))
        if "customer" in params:
            subscriptions = [s for s in subscriptions if s["customer"] == params["customer"]]
        if "price" in params:
            subscriptions = [
                s for s in subscriptions if any(i["price"]["id"] == params["price"] for i in s["items"]["data"])
            ]
        status = params.get("status")
        if status is None:  # Stripe leaves canceled subscriptions out unless asked
            subscriptions = [s for s in subscriptions if s["status"] != "canceled"]
        elif status == "ended":
            subscriptions = [s for s in subscriptions if s["status"] in ("canceled", "incomplete_expired")]
        elif status != "all":
            subscriptions = [s for s in subscriptions if s["status"] == status]
        return self.page("subscription", subscriptions, params, page_limit(params))

    def update_subscription(self, ident: str, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, {"cancel_at_period_end", "metadata", "description", "default_payment_method", "expand"})
        subscription = self.fetch("subscription", self.subscriptions, ident)
        if subscription["status"] == "canceled":
            raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        at_end = boolean(params, "cancel_at_period_end")
        if at_end is not None:
            subscription["cancel_at_period_end"] = at_end
            subscription["cancel_at"] = subscription["current_period_end"] if at_end else None
            subscription["canceled_at"] = next(self.clock) if at_end else None
            subscription["cancellation_details"] = {
                "comment": None,
                "feedback": None,
                "reason": "cancellation_requested" if at_end else None,
            }
        if "metadata" in params:
            subscription["metadata"] = {**subscription["metadata"], **metadata(params)}
        return subscription

    def cancel_subscription(self, ident: str, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, {"invoice_now", "prorate", "cancellation_details", "expand"})
        boolean(params, "invoice_now")
        boolean(params, "prorate")
        subscription = self.fetch("subscription", self.subscriptions, ident)
        if subscription["status"] == "canceled":
            raise no_such("subscription", ident)
        now = next(self.clock)
        subscription.update(
            status="canceled",
            canceled_at=now,
            ended_at=now,
            cancel_at=None,
            cancel_at_period_end=False,
            cancellation_details={"comment": None, "feedback": None, "reason": "cancellation_requested"},
        )
        return subscription
