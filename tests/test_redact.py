"""`Redactor`, `InFlightSecrets`, `RedactingFilter`, and a real server's log after calls that echo credentials."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx2
import pytest
from mcp import Client

from mcp_server._redact import MIN_SECRET_LENGTH, REDACTED, InFlightSecrets, RedactingFilter, Redactor
from tests._upstream import FakeUpstream
from tests.conftest import ALL_SECRETS, API_KEY, PASSWORD, start_http_server, stop_process

TRICKY = 'p@ss w/rd+"quote"&é=1'

# ------------------------------------------------------------------ Redactor


@pytest.mark.parametrize(
    "form",
    [
        TRICKY,
        quote(TRICKY, safe=""),
        quote_plus(TRICKY, safe=""),
        json.dumps(TRICKY)[1:-1],
        json.dumps(TRICKY, ensure_ascii=False)[1:-1],
        base64.b64encode(TRICKY.encode()).decode(),
        quote(TRICKY, safe="").lower(),
        json.dumps(TRICKY)[1:-1].replace("/", "\\/"),
    ],
    ids=["raw", "quote", "quote_plus", "json_ascii", "json_unicode", "base64", "quote_lower_hex", "json_solidus"],
)
def test_every_wire_form_is_redacted(form: str) -> None:
    redactor = Redactor([TRICKY])
    assert redactor.text(f"before {form} after") == f"before {REDACTED} after"
    assert redactor.contains_secret(f"x{form}x")


def test_forms_are_distinct_for_the_tricky_secret() -> None:
    # Otherwise the parametrized test above would prove less than it claims.
    forms = {
        quote(TRICKY, safe=""),
        quote_plus(TRICKY, safe=""),
        json.dumps(TRICKY)[1:-1],
        json.dumps(TRICKY, ensure_ascii=False)[1:-1],
        base64.b64encode(TRICKY.encode()).decode(),
    }
    assert len(forms) == 5 and TRICKY not in forms


def test_json_body_round_trip() -> None:
    redactor = Redactor([TRICKY])
    raw = json.dumps({"echo": TRICKY, "list": [TRICKY, {"deep": [f"Bearer {TRICKY}"]}]})
    assert TRICKY not in redactor.text(raw)
    assert json.dumps(TRICKY)[1:-1] not in redactor.text(raw)
    value = redactor.value(json.loads(raw))
    assert value == {"echo": REDACTED, "list": [REDACTED, {"deep": [f"Bearer {REDACTED}"]}]}


def test_secret_in_keys_nested_lists_and_numbers() -> None:
    redactor = Redactor(["s3cr3t-key", "12345678"])
    parsed = {
        "s3cr3t-key": "value",
        "prefix-s3cr3t-key": 1,
        "nested": [[["s3cr3t-key"]], {"n": 12345678, "f": 12345678.0, "bigger": 9123456789}],
        "safe": 42,
        "flag": True,
        "none": None,
    }
    assert redactor.value(parsed) == {
        REDACTED: "value",
        f"prefix-{REDACTED}": 1,
        "nested": [[[REDACTED]], {"n": REDACTED, "f": REDACTED, "bigger": REDACTED}],
        "safe": 42,
        "flag": True,
        "none": None,
    }
    assert redactor.text("id=12345678") == f"id={REDACTED}"


def test_value_leaves_input_untouched() -> None:
    parsed = {"a": ["secret-value"]}
    Redactor(["secret-value"]).value(parsed)
    assert parsed == {"a": ["secret-value"]}


def test_overlapping_secrets_longest_wins() -> None:
    short, long = "abcd1234", "abcd1234-and-more"
    for order in ([short, long], [long, short]):
        redactor = Redactor(order)
        assert redactor.text(f"[{long}] [{short}]") == f"[{REDACTED}] [{REDACTED}]"
        assert "-and-more" not in redactor.text(long)


def test_short_secrets_are_left_alone() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    redactor = Redactor([short, ""])
    assert not redactor
    assert redactor.text(f"{short} stays") == f"{short} stays"
    assert redactor.value({short: [short]}) == {short: [short]}
    # Exactly the minimum length is long enough.
    exact = "y" * MIN_SECRET_LENGTH
    assert Redactor([exact]).text(exact) == REDACTED


def test_empty_redactor_returns_the_same_object() -> None:
    parsed = {"a": 1}
    assert Redactor([]).value(parsed) is parsed


# ------------------------------------------------------------------ InFlightSecrets


def test_in_flight_counts_overlapping_holders() -> None:
    in_flight = InFlightSecrets()
    assert not in_flight.redactor
    with in_flight.holding(["shared-secret", "first-only"]):
        with in_flight.holding(["shared-secret", "second-only", "abc"]):
            redactor = in_flight.redactor
            assert redactor.text("shared-secret first-only second-only abc") == " ".join([REDACTED] * 3 + ["abc"])
        # The second holder left; the secret the first still holds stays redacted.
        assert in_flight.redactor.text("shared-secret second-only") == f"{REDACTED} second-only"
        assert in_flight.redactor.contains_secret("first-only")
    assert not in_flight.redactor
    assert in_flight.redactor.text("shared-secret first-only") == "shared-secret first-only"


def test_in_flight_releases_on_exception() -> None:
    in_flight = InFlightSecrets()
    with pytest.raises(RuntimeError), in_flight.holding(["raising-secret"]):
        assert in_flight.redactor.contains_secret("raising-secret")
        raise RuntimeError("boom")
    assert not in_flight.redactor


def test_in_flight_ignores_short_values() -> None:
    in_flight = InFlightSecrets()
    with in_flight.holding(["ab", ""]):
        assert not in_flight.redactor


# ------------------------------------------------------------------ RedactingFilter


@pytest.fixture
def scrubbed_logger() -> Iterator[tuple[logging.Logger, io.StringIO, InFlightSecrets]]:
    in_flight = InFlightSecrets()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(in_flight))
    logger = logging.getLogger("tests.redact.filter")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, in_flight
    logger.handlers.clear()


def test_filter_scrubs_message_args_and_traceback(
    scrubbed_logger: tuple[logging.Logger, io.StringIO, InFlightSecrets],
) -> None:
    logger, stream, in_flight = scrubbed_logger
    secret = "filter-secret-0xDEADBEEF"
    with in_flight.holding([secret]):
        logger.info(f"inline {secret}")
        logger.info("as an argument: %s and %r", secret, {"token": secret})
        logger.debug("url-encoded in a URL: https://api.example/x?key=%s", quote(secret, safe=""))
        try:
            raise ValueError(f"bad token {secret}")
        except ValueError:
            logger.exception("call failed")
        try:
            try:
                raise KeyError(secret)
            except KeyError as inner:
                raise RuntimeError("wrapped") from inner
        except RuntimeError:
            logger.error("chained", exc_info=True)
    out = stream.getvalue()
    assert secret not in out and quote(secret, safe="") not in out
    assert out.count(REDACTED) == 6
    assert "inline [REDACTED]" in out
    assert "Traceback (most recent call last)" in out and "ValueError: bad token [REDACTED]" in out
    assert "KeyError: '[REDACTED]'" in out and "RuntimeError: wrapped" in out


def test_filter_scrubs_nothing_once_the_call_ended(
    scrubbed_logger: tuple[logging.Logger, io.StringIO, InFlightSecrets],
) -> None:
    logger, stream, in_flight = scrubbed_logger
    with in_flight.holding(["ended-call-secret"]):
        pass
    logger.info("value %s", "ended-call-secret")
    try:
        raise ValueError("ended-call-secret")
    except ValueError:
        logger.exception("after")
    out = stream.getvalue()
    assert "value ended-call-secret" in out
    assert "ValueError: ended-call-secret" in out
    assert REDACTED not in out


def test_filter_leaves_unrelated_records_alone(
    scrubbed_logger: tuple[logging.Logger, io.StringIO, InFlightSecrets],
) -> None:
    logger, stream, in_flight = scrubbed_logger
    with in_flight.holding(["unrelated-secret"]):
        logger.info("count=%d name=%s", 3, "x")
    assert stream.getvalue() == "INFO count=3 name=x\n"


# ------------------------------------------------------------------ end to end: the server's own log


def _encoded_forms() -> list[str]:
    forms: list[str] = []
    for secret in (*ALL_SECRETS, f"alice:{PASSWORD}"):
        forms += [secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()]
    return forms


async def test_server_log_has_no_secret(server_env: dict[str, str], tmp_path: Path, upstream: FakeUpstream) -> None:
    log_path = tmp_path / "server.log"
    server = start_http_server(server_env, log_path, "--log-level", "DEBUG", "--log-format", "text")
    try:
        calls: list[tuple[str, dict[str, object]]] = [
            ("echo_get_item", {"item_id": "42"}),  # credential echoed in a JSON body
            ("echo_fail", {"code": 500}),  # ... in an error body
            ("echo_fail", {"code": 401}),
            ("echo_text", {}),  # ... in a text body
            ("keyquery_whoami", {}),  # API key in the query string of the upstream URL
            ("keycookie_whoami", {}),
            ("basicauth_whoami", {}),
            ("hdrs_whoami", {}),
            ("envauth_whoami", {}),
        ]
        with httpx2.Client(base_url=server.url, timeout=30) as http:
            for tool, parameters in calls:
                response = http.post("/v1/invoke", json={"tool": tool, "parameters": parameters})
                assert response.status_code in (200, 424, 502), response.text
        assert upstream.requests[4].query == f"api_key={API_KEY}"
        async with Client(f"{server.url}/mcp") as client:
            for tool, parameters in calls[:5]:
                await client.call_tool(tool, parameters)
    finally:
        stop_process(server.process)
    log = log_path.read_text(errors="replace")
    assert " DEBUG " in log, "the server did not log at DEBUG"
    assert "call keyquery_whoami ok" in log and "call echo_fail failed code=UPSTREAM_ERROR" in log
    for form in _encoded_forms():
        assert form not in log, "a secret reached the server log"


@pytest.mark.parametrize("before", range(4))
@pytest.mark.parametrize("after", range(3))
@pytest.mark.parametrize("alphabet", ["standard", "url"])
def test_a_secret_inside_a_longer_base64_text_is_found_at_every_alignment(
    before: int, after: int, alphabet: str
) -> None:
    secret = "canary-4f9c1d2e7b"
    blob = b"{" * before + secret.encode() + b"}" * after
    encoded = base64.b64encode(blob) if alphabet == "standard" else base64.urlsafe_b64encode(blob).rstrip(b"=")
    text = f"Authorization: Bearer xx.{encoded.decode()}.yy"
    assert Redactor([secret]).contains_secret(text)
    scrubbed = Redactor([secret]).text(text)
    assert REDACTED in scrubbed and not Redactor([secret]).contains_secret(scrubbed)


def test_a_secret_inside_a_jwt_payload_and_a_basic_header_is_scrubbed() -> None:
    secret = "sk_live_canary_0123456789"
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "bot", "api_key": secret}).encode()).rstrip(b"=").decode()
    basic = base64.b64encode(f"bot:{secret}".encode()).decode()
    result = Redactor([secret]).value({"token": f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln", "auth": f"Basic {basic}"})
    assert REDACTED in result["token"] and REDACTED in result["auth"]


def test_in_flight_forms_live_exactly_as_long_as_a_call_holds_the_secret() -> None:
    from mcp_server._redact import InFlightSecrets

    flight = InFlightSecrets()
    with flight.holding(["first-secret-value"]):
        with flight.holding(["first-secret-value", "second-secret-value"]):
            assert flight.redactor.text("a first-secret-value and a second-secret-value") == (
                "a [REDACTED] and a [REDACTED]"
            )
        assert flight.forms_of("second-secret-value") is None  # its only call ended: nothing of it kept
        assert flight.forms_of("first-secret-value") is not None
        assert flight.redactor.text("second-secret-value first-secret-value") == "second-secret-value [REDACTED]"
    assert flight.forms_of("first-secret-value") is None and not flight.redactor
