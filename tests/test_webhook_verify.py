"""Signature checks computed by hand (hmac + hashlib here, not our code), and the manifest's `webhooks:` block."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from mcp_server._catalog import load_catalog
from mcp_server._secrets import ValueRef
from mcp_server._webhook_model import FieldSource, webhook_spec
from mcp_server._webhook_verify import Rejection, verify, verify_github, verify_stripe

SECRET = "whsec_test_4f3e2d1c0b"
BODY = b'{"id":"evt_1","type":"invoice.paid","created":1700000000}'
NOW = 1_700_000_000.0


def stripe_header(body: bytes, t: int, secret: str = SECRET, extra: str = "") -> str:
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}{extra}"


def reason(call: object) -> tuple[int, str]:
    assert isinstance(call, Rejection)
    return call.status, call.reason


def rejected(fn: object, *args: object, **kwargs: object) -> tuple[int, str]:
    with pytest.raises(Rejection) as caught:
        fn(*args, **kwargs)  # type: ignore[operator]
    return reason(caught.value)


def test_stripe_accepts_a_hand_made_signature_and_any_of_several_v1() -> None:
    verify_stripe(stripe_header(BODY, int(NOW)), BODY, SECRET, tolerance=300, now=NOW)
    wrong = "0" * 64
    # Several v1 (a rolled secret), v0 and unknown schemes beside them: one match is enough.
    several = f"t={int(NOW)},v1={wrong},v0=abc,v1={stripe_header(BODY, int(NOW)).split('v1=')[1]},x=1"
    verify_stripe(several, BODY, SECRET, tolerance=300, now=NOW)


def test_stripe_rejections() -> None:
    t = int(NOW)
    assert rejected(verify_stripe, None, BODY, SECRET, tolerance=300, now=NOW) == (401, "signature_missing")
    assert rejected(verify_stripe, "garbage", BODY, SECRET, tolerance=300, now=NOW) == (400, "signature_malformed")
    assert rejected(verify_stripe, f"t={t}", BODY, SECRET, tolerance=300, now=NOW) == (400, "signature_malformed")
    assert rejected(verify_stripe, f"v1={'0' * 64}", BODY, SECRET, tolerance=300, now=NOW)[1] == "signature_malformed"
    other_key = stripe_header(BODY, t, secret="whsec_other")
    assert rejected(verify_stripe, other_key, BODY, SECRET, tolerance=300, now=NOW) == (401, "signature_mismatch")
    tampered = BODY.replace(b"paid", b"void")
    assert rejected(verify_stripe, stripe_header(BODY, t), tampered, SECRET, tolerance=300, now=NOW)[1] == (
        "signature_mismatch"
    )
    # The timestamp is signed: moving it breaks the signature, not just the tolerance.
    moved = stripe_header(BODY, t).replace(f"t={t}", f"t={t + 1}")
    assert rejected(verify_stripe, moved, BODY, SECRET, tolerance=300, now=NOW)[1] == "signature_mismatch"


@pytest.mark.parametrize(
    ("age", "accepted"), [(0, True), (299, True), (300, True), (301, False), (-300, True), (-301, False)]
)
def test_stripe_tolerance_edges(age: int, accepted: bool) -> None:
    header = stripe_header(BODY, int(NOW) - age)
    if accepted:
        verify_stripe(header, BODY, SECRET, tolerance=300, now=NOW)
    else:
        assert rejected(verify_stripe, header, BODY, SECRET, tolerance=300, now=NOW) == (
            401,
            "timestamp_outside_tolerance",
        )


def test_github() -> None:
    signature = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    verify_github(signature, BODY, SECRET)
    verify_github(signature.upper().replace("SHA256=", "sha256="), BODY, SECRET)  # hex case does not matter
    assert rejected(verify_github, None, BODY, SECRET) == (401, "signature_missing")
    assert rejected(verify_github, "sha1=" + "0" * 40, BODY, SECRET) == (400, "signature_malformed")
    assert rejected(verify_github, "sha256=xyz", BODY, SECRET) == (400, "signature_malformed")
    assert rejected(verify_github, "sha256=" + "0" * 64, BODY, SECRET) == (401, "signature_mismatch")


def test_generic_hmac_slack_style_and_base64() -> None:
    spec = webhook_spec(
        {
            "type": "hmac",
            "header": "X-Slack-Signature",
            "prefix": "v0=",
            "timestamp_header": "X-Slack-Request-Timestamp",
            "signed_payload": "v0:{timestamp}:{body}",
        },
        ValueRef("env", "SLACK_SECRET"),
    )
    t = str(int(NOW) - 10)
    digest = hmac.new(SECRET.encode(), f"v0:{t}:".encode() + BODY, hashlib.sha256).hexdigest()
    headers = {"x-slack-signature": f"v0={digest}", "x-slack-request-timestamp": t}
    verify(spec, headers, BODY, SECRET, now=NOW)
    stale = {"x-slack-signature": f"v0={digest}", "x-slack-request-timestamp": str(int(NOW) - 1000)}
    assert rejected(verify, spec, stale, BODY, SECRET, now=NOW) == (401, "signature_mismatch")  # t is signed
    old = str(int(NOW) - 1000)
    old_digest = hmac.new(SECRET.encode(), f"v0:{old}:".encode() + BODY, hashlib.sha256).hexdigest()
    replayed = {"x-slack-signature": f"v0={old_digest}", "x-slack-request-timestamp": old}
    assert rejected(verify, spec, replayed, BODY, SECRET, now=NOW) == (401, "timestamp_outside_tolerance")
    assert rejected(verify, spec, {"x-slack-signature": f"v0={digest}"}, BODY, SECRET, now=NOW)[1] == (
        "timestamp_missing"
    )
    assert rejected(verify, spec, {**headers, "x-slack-signature": digest}, BODY, SECRET, now=NOW)[1] == (
        "signature_malformed"
    )

    b64 = webhook_spec(
        {"type": "hmac", "header": "X-Sig", "algorithm": "sha512", "encoding": "base64"}, ValueRef("env", "S")
    )
    signature = base64.b64encode(hmac.new(SECRET.encode(), BODY, hashlib.sha512).digest()).decode()
    verify(b64, {"x-sig": signature}, BODY, SECRET, now=NOW)
    assert rejected(verify, b64, {"x-sig": signature}, BODY + b" ", SECRET, now=NOW)[1] == "signature_mismatch"


def test_defaults_per_type() -> None:
    stripe = webhook_spec({"type": "stripe"}, ValueRef("secret", "s"))
    assert (stripe.event_id, stripe.event_type, stripe.event_time) == (
        FieldSource(pointer="/id"),
        FieldSource(pointer="/type"),
        FieldSource(pointer="/created"),
    )
    assert stripe.tolerance == 300 and stripe.max_events == 1000
    github = webhook_spec({"type": "github"}, ValueRef("secret", "s"))
    assert github.event_id == FieldSource(header="X-GitHub-Delivery")
    assert github.event_type == FieldSource(header="X-GitHub-Event") and github.event_time is None


def _manifest(tmp_path: Path, webhooks: str, operation: str = "ping") -> Path:
    directory = tmp_path / "tools"
    directory.mkdir(exist_ok=True)
    (directory / "hooks.yaml").write_text(
        f"name: hooks\nbase_url: https://api.example.com\n"
        f"operations: [{{name: {operation}, method: GET, path: /ping}}]\nwebhooks: {webhooks}\n"
    )
    return directory


def test_manifest_webhooks_block(tmp_path: Path) -> None:
    good = load_catalog([_manifest(tmp_path, "{type: stripe, secret: {secret: hooks_whsec}, max_events: 5}")])
    assert not good.faults
    spec = good.connectors[0].webhooks
    assert spec is not None and spec.max_events == 5 and spec.secret == ValueRef("secret", "hooks_whsec")

    def fault(webhooks: str, operation: str = "ping") -> str:
        catalog = load_catalog([_manifest(tmp_path, webhooks, operation)])
        assert not catalog.connectors and len(catalog.faults) == 1
        return str(catalog.faults[0])

    assert "$.webhooks" in fault("{type: paypal, secret: x}")
    assert "$.webhooks" in fault("{type: stripe}")  # no secret
    assert "header" in fault("{type: stripe, secret: x, header: X-Sig}")  # hmac-only keys
    assert "max_body_bytes" in fault("{type: github, secret: x, max_body_bytes: 99999999}")
    assert "{body}" in fault("{type: hmac, secret: x, signed_payload: nobodyhere}")
    assert "timestamp_header" in fault("{type: hmac, secret: x, signed_payload: '{timestamp}.{body}'}")
    assert "hooks_list_events" in fault("{type: github, secret: x}", operation="list_events")
    assert "$.webhooks" in fault("{type: hmac, secret: x, event_id: null}")


@pytest.mark.parametrize("t", ["\u00b2", "1\u0661", "9" * 13, "-1", " "])
def test_a_stripe_timestamp_must_be_ascii_digits(t: str) -> None:
    header = f"t={t},v1={'0' * 64}"
    assert rejected(verify_stripe, header, BODY, SECRET, tolerance=300, now=NOW)[0] == 400
