"""Request signing: HMAC checked against signatures recomputed here with `hmac`/`hashlib`, SigV4 against botocore
and AWS's published SigV4 test-suite signatures."""

from __future__ import annotations

import base64
import calendar
import datetime
import hashlib
import hmac
from typing import Any

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mcp_server._model import HmacAuth, SigV4Auth
from mcp_server._request import PreparedRequest
from mcp_server._secrets import ValueRef
from mcp_server._signing import HMAC_TEMPLATE_FIELDS, check_hmac_template, sign_hmac, sign_sigv4

REF = ValueRef("secret", "unused")  # the signers take resolved values; the refs only matter to the caller
KEY_ID = "key-4711"
SECRET = "hmac-secret-ünïcode-9f8e7d6c"
NONCE = "n0nce-b1c2d3"
NOW = calendar.timegm((2026, 11, 22, 15, 0, 0)) + 0.75  # 2026-11-22T15:00:00.75Z
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def request(
    method: str = "GET",
    url: str = "https://api.example.com/v1/items",
    headers: tuple[tuple[str, str], ...] = (),
    content: bytes | None = None,
) -> PreparedRequest:
    return PreparedRequest(method=method, url=url, headers=headers, content=content)


def header_map(prepared: PreparedRequest, *, unique: bool = True) -> dict[str, str]:
    names = [name.lower() for name, _ in prepared.headers]
    assert not unique or len(names) == len(set(names)), f"a header is sent twice: {prepared.headers}"
    return {name.lower(): value for name, value in prepared.headers}


def hmac_auth(**overrides: Any) -> HmacAuth:
    return HmacAuth(key_id=REF, secret=REF, **overrides)


def hmac_sign(prepared: PreparedRequest, auth: HmacAuth, now: float = NOW) -> dict[str, str]:
    return header_map(sign_hmac(prepared, auth, key_id=KEY_ID, secret=SECRET, now=now, nonce=NONCE))


def expected_hmac(canonical: str, algorithm: str = "sha256", encoding: str = "hex") -> str:
    digest = hmac.new(SECRET.encode("utf-8"), canonical.encode("utf-8"), getattr(hashlib, algorithm)).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")


# HMAC


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512", "sha1"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_default_scheme_for_each_algorithm_and_encoding(algorithm: str, encoding: str) -> None:
    auth = hmac_auth(algorithm=algorithm, signature_encoding=encoding)
    headers = hmac_sign(request(), auth)
    canonical = f"GET\n/v1/items\n{int(NOW)}\n{EMPTY_SHA256}"
    assert headers == {
        "x-api-key": KEY_ID,
        "x-timestamp": "1795359600",
        "x-signature": expected_hmac(canonical, algorithm, encoding),
    }


@pytest.mark.parametrize(
    ("form", "sent"),
    [("unix", "1795359600"), ("unix_ms", "1795359600750"), ("iso8601", "2026-11-22T15:00:00Z")],
)
def test_hmac_timestamp_is_signed_as_sent(form: str, sent: str) -> None:
    headers = hmac_sign(request(), hmac_auth(timestamp_format=form, canonical="{timestamp}"))
    assert headers["x-timestamp"] == sent
    assert headers["x-signature"] == expected_hmac(sent)


def test_hmac_body_hashes_cover_the_body_bytes() -> None:
    body = b'{"name": "caf\xc3\xa9", "n": 1}'
    auth = hmac_auth(canonical="{body_sha256}|{body_sha512}|{body_md5}")
    headers = hmac_sign(request("POST", content=body, headers=(("Content-Type", "application/json"),)), auth)
    canonical = "|".join(
        [
            hashlib.sha256(body).hexdigest(),
            hashlib.sha512(body).hexdigest(),
            hashlib.md5(body, usedforsecurity=False).hexdigest(),
        ]
    )
    assert headers["x-signature"] == expected_hmac(canonical)
    assert headers["content-type"] == "application/json"


def test_hmac_without_a_body_hashes_the_empty_string() -> None:
    auth = hmac_auth(canonical="{body_sha256}|{body_sha512}|{body_md5}")
    canonical = "|".join([EMPTY_SHA256, hashlib.sha512(b"").hexdigest(), "d41d8cd98f00b204e9800998ecf8427e"])
    assert hmac_sign(request("DELETE"), auth)["x-signature"] == expected_hmac(canonical)
    # An empty body and no body sign the same.
    assert hmac_sign(request("DELETE", content=b""), auth) == hmac_sign(request("DELETE"), auth)


def test_hmac_path_and_query_fields_are_the_url_as_encoded() -> None:
    url = "https://api.example.com/v1/items/a%20b?q=x%20y&tag=1&tag=2"
    auth = hmac_auth(canonical="{method} {path}|{path_only}|{query}")
    canonical = "POST /v1/items/a%20b?q=x%20y&tag=1&tag=2|/v1/items/a%20b|q=x%20y&tag=1&tag=2"
    assert hmac_sign(request("post", url), auth)["x-signature"] == expected_hmac(canonical)


def test_hmac_path_fields_without_a_query_or_a_path() -> None:
    auth = hmac_auth(canonical="{path}|{path_only}|{query}|")
    assert hmac_sign(request(url="https://api.example.com"), auth)["x-signature"] == expected_hmac("/|/||")
    assert hmac_sign(request(url="https://api.example.com/x"), auth)["x-signature"] == expected_hmac("/x|/x||")


def test_hmac_custom_headers_prefix_host_nonce_and_key_id() -> None:
    auth = hmac_auth(
        algorithm="sha512",
        canonical="{key_id}:{nonce}:{host}:{method}:{path}:{timestamp}",
        key_header="X-Client-Id",
        timestamp_header="X-Request-Time",
        signature_header="X-Hub-Signature",
        nonce_header="X-Nonce",
        signature_prefix="sha512=",
        timestamp_format="unix_ms",
    )
    headers = hmac_sign(request(url="https://API.Example.com:8443/hooks?x=1"), auth)
    canonical = f"{KEY_ID}:{NONCE}:api.example.com:8443:GET:/hooks?x=1:1795359600750"
    assert headers == {
        "x-client-id": KEY_ID,
        "x-request-time": "1795359600750",
        "x-nonce": NONCE,
        "x-hub-signature": "sha512=" + expected_hmac(canonical, "sha512"),
    }


def test_hmac_host_omits_the_default_port() -> None:
    auth = hmac_auth(canonical="{host}")
    assert hmac_sign(request(url="https://api.example.com:443/x"), auth)["x-signature"] == expected_hmac(
        "api.example.com"
    )
    assert hmac_sign(request(url="http://[::1]:8080/x"), auth)["x-signature"] == expected_hmac("[::1]:8080")


def test_hmac_without_a_key_header_sends_no_key_id() -> None:
    headers = hmac_sign(request(), hmac_auth(key_header=None, canonical="{key_id}"))
    assert set(headers) == {"x-timestamp", "x-signature"}
    assert headers["x-signature"] == expected_hmac(KEY_ID)  # still usable inside the canonical string


def test_hmac_template_is_taken_literally() -> None:
    # A real newline (what YAML's "\n" becomes) stays one; a backslash-n stays two characters; {{ }} are braces.
    auth = hmac_auth(canonical="{method}\n{timestamp}\\n{{literal}}")
    expected = expected_hmac("GET\n1795359600\\n{literal}")
    assert hmac_sign(request(), auth)["x-signature"] == expected


def test_hmac_credentials_replace_same_named_headers() -> None:
    prepared = request(
        headers=(
            ("x-signature", "forged"),
            ("Accept", "application/json"),
            ("X-API-KEY", "someone-else"),
            ("x-timestamp", "0"),
            ("X-Nonce", "replayed"),
        )
    )
    signed = sign_hmac(prepared, hmac_auth(nonce_header="x-nonce"), key_id=KEY_ID, secret=SECRET, now=NOW, nonce=NONCE)
    assert [name.lower() for name, _ in signed.headers] == [
        "accept",
        "x-api-key",
        "x-timestamp",
        "x-nonce",
        "x-signature",
    ]
    headers = header_map(signed)
    assert headers["x-api-key"] == KEY_ID
    assert headers["x-nonce"] == NONCE
    assert headers["x-signature"] != "forged"
    assert prepared.headers[0] == ("x-signature", "forged")  # the input is left as it was


@pytest.mark.parametrize(
    "template",
    ["{method}\n{body}", "{Method}", "{method.upper}", "{path[0]}", "{}", "{0}", "{timestamp:>20}", "{method!r}"],
)
def test_hmac_refuses_unknown_or_decorated_fields(template: str) -> None:
    with pytest.raises(ValueError, match="HMAC canonical template"):
        check_hmac_template(template)
    with pytest.raises(ValueError, match="HMAC canonical template"):
        hmac_sign(request(), hmac_auth(canonical=template))


def test_hmac_unknown_field_message_lists_the_fields() -> None:
    with pytest.raises(ValueError) as caught:
        check_hmac_template("{method}\n{body}")
    message = str(caught.value)
    assert "{body}" in message
    assert all(name in message for name in HMAC_TEMPLATE_FIELDS)


@pytest.mark.parametrize("template", ["{method", "method}", "{method}}"])
def test_hmac_refuses_unbalanced_braces(template: str) -> None:
    with pytest.raises(ValueError, match="literal brace"):
        check_hmac_template(template)


def test_hmac_accepts_every_field() -> None:
    check_hmac_template("".join(f"{{{name}}}\n" for name in sorted(HMAC_TEMPLATE_FIELDS)) + "{{}}")


def test_hmac_refuses_a_key_id_a_header_cannot_carry() -> None:
    leaked = "key\r\nX-Injected: 1"
    with pytest.raises(ValueError, match="key id") as caught:
        sign_hmac(request(), hmac_auth(), key_id=leaked, secret=SECRET, now=NOW, nonce=NONCE)
    assert leaked not in str(caught.value)


def test_hmac_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign_hmac(request(), hmac_auth(), key_id=KEY_ID, secret="", now=NOW, nonce=NONCE)


# SigV4

AKID = "AKIDEXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_NOW = calendar.timegm((2015, 8, 30, 12, 36, 0))  # 20150830T123600Z, the test suite's date
TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8Y"
    "UuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQc"
    "HNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)


def sigv4_auth(service: str = "service", region: str = "us-east-1") -> SigV4Auth:
    return SigV4Auth(access_key_id=REF, secret_access_key=REF, region=region, service=service)


def sigv4_sign(
    prepared: PreparedRequest,
    service: str = "service",
    region: str = "us-east-1",
    token: str | None = None,
    now: float = SUITE_NOW,
    *,
    unique: bool = True,
) -> dict[str, str]:
    signed = sign_sigv4(
        prepared,
        sigv4_auth(service, region),
        access_key_id=AKID,
        secret_access_key=AWS_SECRET,
        session_token=token,
        now=now,
    )
    return header_map(signed, unique=unique)


# AWS's SigV4 test suite (https://docs.aws.amazon.com/IAM/latest/UserGuide/signature-v4-test-suite.html, the
# 2015-08-30 set): service `service`, region us-east-1, the example key, host example.amazonaws.com. The
# signatures are the published ones. The suite's request lines carry raw characters (`GET /ሴ`, `GET /example
# space/`) which it encodes once; our URLs are normally encoded already and get that encoding a second time, so
# those two vectors pass the raw form in the URL to reproduce the suite's input.
SUITE: list[tuple[str, str, str, tuple[tuple[str, str], ...], bytes | None, str]] = [
    ("get-vanilla", "GET", "/", (), None, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query", "GET", "/?", (), None, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    (
        "get-vanilla-empty-query-key",
        "GET",
        "/?Param1=value1",
        (),
        None,
        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    ),
    (
        "get-vanilla-query-order-key",
        "GET",
        "/?Param1=value2&Param1=Value1",
        (),
        None,
        "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "/?Param2=value2&Param1=value1",
        (),
        None,
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-query-order-value",
        "GET",
        "/?Param1=value2&Param1=value1",
        (),
        None,
        "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
    ),
    (
        "get-vanilla-query-unreserved",
        "GET",
        "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        "=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        (),
        None,
        "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    ),
    (
        "get-vanilla-utf8-query",
        "GET",
        "/?%E1%88%B4=bar",
        (),
        None,
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    ("get-utf8", "GET", "/ሴ", (), None, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    (
        "get-unreserved",
        "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        (),
        None,
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-space",
        "GET",
        "/example space/",
        (),
        None,
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    ),
    ("get-slash", "GET", "//", (), None, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-slashes", "GET", "//example//", (), None, "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"),
    ("get-slash-dot-slash", "GET", "/./", (), None, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    (
        "get-relative",
        "GET",
        "/example/..",
        (),
        None,
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "get-relative-relative",
        "GET",
        "/example1/example2/../..",
        (),
        None,
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "get-slash-pointless-dot",
        "GET",
        "/./example",
        (),
        None,
        "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
    ),
    (
        "get-header-key-duplicate",
        "GET",
        "/",
        (("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")),
        None,
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ),
    (
        "get-header-value-order",
        "GET",
        "/",
        (("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")),
        None,
        "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    ),
    (
        "get-header-value-trim",
        "GET",
        "/",
        (("My-Header1", " value1"), ("My-Header2", ' "a   b   c"')),
        None,
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    ("post-vanilla", "POST", "/", (), None, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    (
        "post-vanilla-query",
        "POST",
        "/?Param1=value1",
        (),
        None,
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    ),
    (
        "post-header-key-sort",
        "POST",
        "/",
        (("My-Header1", "value1"),),
        None,
        "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    ),
    (
        "post-header-value-case",
        "POST",
        "/",
        (("My-Header1", "VALUE1"),),
        None,
        "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST",
        "/",
        (("Content-Type", "application/x-www-form-urlencoded"),),
        b"Param1=value1",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
    (
        "post-x-www-form-urlencoded-parameters",
        "POST",
        "/",
        (("Content-Type", "application/x-www-form-urlencoded; charset=utf8"),),
        b"Param1=value1",
        "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
    ),
]


@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "signature"), [case[1:] for case in SUITE], ids=[case[0] for case in SUITE]
)
def test_sigv4_aws_test_suite(
    method: str, target: str, headers: tuple[tuple[str, str], ...], body: bytes | None, signature: str
) -> None:
    # Two suite vectors repeat a header, which our requests never do but the signer must still combine.
    signed = sigv4_sign(request(method, "https://example.amazonaws.com" + target, headers, body), unique=False)
    names = sorted({"host", "x-amz-date", *(name.lower() for name, _ in headers)})
    assert signed["x-amz-date"] == "20150830T123600Z"
    assert signed["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    assert "x-amz-content-sha256" not in signed


def test_sigv4_aws_test_suite_session_token() -> None:
    # post-sts-header-before: the token is sent and signed.
    signed = sigv4_sign(request("POST", "https://example.amazonaws.com/"), token=TOKEN)
    assert signed["x-amz-security-token"] == TOKEN
    assert signed["authorization"].endswith(
        "SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
    )


def botocore_sign(
    monkeypatch: pytest.MonkeyPatch,
    prepared: PreparedRequest,
    service: str,
    region: str = "us-east-1",
    token: str | None = None,
    now: float = SUITE_NOW,
    params: list[tuple[str, str]] | None = None,
) -> dict[str, str]:
    """botocore's headers for the same request. With `params`, botocore is given the decoded query pairs (and the
    URL without its query) and encodes them itself, an independent check of our decode-and-re-encode."""
    frozen = datetime.datetime.fromtimestamp(now, datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: frozen)
    url = prepared.url.split("?", 1)[0] if params is not None else prepared.url
    aws_request = AWSRequest(
        method=prepared.method, url=url, headers=dict(prepared.headers), data=prepared.content, params=params or {}
    )
    signer = botocore.auth.S3SigV4Auth if service == "s3" else botocore.auth.SigV4Auth
    signer(Credentials(AKID, AWS_SECRET, token), service, region).add_auth(aws_request)
    return {name.lower(): value for name, value in aws_request.headers.items()}


BOTOCORE_CASES: list[tuple[str, str, str, tuple[tuple[str, str], ...], bytes | None, list[tuple[str, str]] | None]] = [
    # GET with a query: repeated keys, spaces, unicode, reserved characters, an empty value, a bare key, `+` as
    # a space, lower-case escapes and raw `/` `:` `@` (legal in a query) that AWS's encoding escapes.
    (
        "service",
        "GET",
        "https://api.example.com/v1/items"
        "?b=2&a=x%20y&a=%e2%9c%93&a=1&c=a%2Fb%3D%26&d=&flag&e=one+two&f=/p:q@r&Z=~&k+1=v",
        (),
        None,
        [
            ("b", "2"),
            ("a", "x y"),
            ("a", "✓"),
            ("a", "1"),
            ("c", "a/b=&"),
            ("d", ""),
            ("flag", ""),
            ("e", "one two"),
            ("f", "/p:q@r"),
            ("Z", "~"),
            ("k 1", "v"),
        ],
    ),
    # The same query signed by botocore from the URL as it is (it does not re-encode): equal when the URL is
    # already AWS-encoded.
    ("execute-api", "GET", "https://api.example.com/v1/items?b=2&a=x%20y&a=%E2%9C%93&c=%2F", (), None, None),
    # POST with a JSON body and its Content-Type.
    (
        "execute-api",
        "POST",
        "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/orders",
        (("Content-Type", "application/json"), ("X-Request-Id", "r-1")),
        b'{"item": "caf\xc3\xa9", "qty": 2}',
        None,
    ),
    # A non-S3 path with encoded characters: encoded a second time.
    (
        "bedrock",
        "POST",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude%3A0/converse",
        (("Content-Type", "application/json"),),
        b"{}",
        None,
    ),
    ("service", "GET", "https://api.example.com/a%20b/%E2%9C%93/c%2Fd/%25", (), None, None),
    # Dot and empty segments are normalised away for non-S3 services.
    ("service", "GET", "https://api.example.com//a/./b/../c//", (), None, None),
    # S3: X-Amz-Content-Sha256 is sent and signed; the path is encoded once.
    (
        "s3",
        "PUT",
        "https://bucket.s3.eu-central-1.amazonaws.com/dir/my%20file%2Bv2%21.txt",
        (("Content-Type", "text/plain"),),
        b"hello, world\n",
        None,
    ),
    ("s3", "GET", "https://s3.amazonaws.com/bucket/a//b/./c", (), None, None),
    (
        "s3",
        "GET",
        "https://bucket.s3.amazonaws.com/?list-type=2&prefix=photos%2F2024%20x&max-keys=10",
        (),
        None,
        [("list-type", "2"), ("prefix", "photos/2024 x"), ("max-keys", "10")],
    ),
    # Host: a non-default port is kept, a default one dropped, the name lower-cased; plain http.
    ("service", "GET", "http://Localhost:9000/x?y=1", (), None, None),
    ("service", "DELETE", "https://API.example.com:443/x", (), None, None),
    # Headers proxies may change are not signed; values are trimmed and inner whitespace collapsed.
    (
        "service",
        "GET",
        "https://api.example.com/x",
        (("User-Agent", "mcp-connectors/1"), ("Expect", "100-continue"), ("X-Custom", "  a \t  b  c ")),
        None,
        None,
    ),
]


@pytest.mark.parametrize("token", [None, TOKEN], ids=["long-term", "session"])
@pytest.mark.parametrize(
    ("service", "method", "url", "headers", "body", "params"),
    BOTOCORE_CASES,
    ids=[f"{i}-{case[0]}-{case[1]}" for i, case in enumerate(BOTOCORE_CASES)],
)
def test_sigv4_matches_botocore(
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    method: str,
    url: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes | None,
    params: list[tuple[str, str]] | None,
    token: str | None,
) -> None:
    prepared = request(method, url, headers, body)
    now = NOW  # a date other than the suite's, with a fraction of a second
    ours = sigv4_sign(prepared, service, "eu-west-1", token, now)
    theirs = botocore_sign(monkeypatch, prepared, service, "eu-west-1", token, now, params)
    assert ours == theirs
    assert ours["x-amz-date"] == "20261122T150000Z"
    assert ("x-amz-content-sha256" in ours) == (service == "s3")
    assert ("x-amz-security-token" in ours) == (token is not None)


def test_sigv4_s3_content_hash_is_the_body_hash() -> None:
    body = b"\x00\x01binary\xff"
    signed = sigv4_sign(request("PUT", "https://b.s3.amazonaws.com/k", content=body), "s3")
    assert signed["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert "x-amz-content-sha256" in signed["authorization"].split("SignedHeaders=")[1].split(",")[0]
    empty = sigv4_sign(request("GET", "https://b.s3.amazonaws.com/k"), "s3")
    assert empty["x-amz-content-sha256"] == EMPTY_SHA256


def test_sigv4_query_bytes_that_are_not_utf8_survive(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore signs a URL's query as it is; for an already AWS-encoded query our re-encoding is the identity.
    prepared = request(url="https://api.example.com/x?k=%FF%FE&j=%C3%A9")
    assert sigv4_sign(prepared) == botocore_sign(monkeypatch, prepared, "service")


def test_sigv4_does_not_sign_what_the_sender_replaces(monkeypatch: pytest.MonkeyPatch) -> None:
    # `_exchange` drops a request's Host and Accept-Encoding and sends its own: signing them would break.
    bare = request("POST", "https://api.example.com/x", (("Content-Type", "application/json"),), b"{}")
    noisy = request(
        "POST",
        "https://api.example.com/x",
        (("Host", "elsewhere.example"), ("Content-Type", "application/json"), ("Accept-Encoding", "br")),
        b"{}",
    )
    ours = sigv4_sign(noisy)
    assert "SignedHeaders=content-type;host;x-amz-date," in ours["authorization"]
    assert ours["authorization"] == botocore_sign(monkeypatch, bare, "service")["authorization"]


def test_sigv4_credentials_replace_same_named_headers() -> None:
    prepared = request(
        headers=(
            ("authorization", "Bearer stale"),
            ("X-AMZ-DATE", "19990101T000000Z"),
            ("x-amz-security-token", "stale-token"),
            ("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
            ("Accept", "application/json"),
        )
    )
    signed = sign_sigv4(
        prepared, sigv4_auth(), access_key_id=AKID, secret_access_key=AWS_SECRET, session_token=None, now=SUITE_NOW
    )
    headers = header_map(signed)
    assert set(headers) == {"accept", "x-amz-date", "authorization"}
    assert headers["x-amz-date"] == "20150830T123600Z"
    assert "SignedHeaders=accept;host;x-amz-date," in headers["authorization"]
    with_token = sigv4_sign(prepared, token="fresh-token")
    assert with_token["x-amz-security-token"] == "fresh-token"


def test_sigv4_refuses_a_token_a_header_cannot_carry() -> None:
    leaked = "token\nX-Injected: 1"
    with pytest.raises(ValueError, match="session token") as caught:
        sigv4_sign(request(), token=leaked)
    assert leaked not in str(caught.value)


def test_sigv4_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign_sigv4(request(), sigv4_auth(), access_key_id=AKID, secret_access_key="", session_token=None, now=NOW)
