"""JWT bearer tokens: each token is taken apart and verified here with `hmac` and `cryptography` directly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from mcp_server._jwt import jwt_header_value, make_jwt
from mcp_server._model import JwtAlgorithm, JwtAuth
from mcp_server._secrets import ValueRef

REF = ValueRef("secret", "jwt_key")
HS_KEY = "hs-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"  # >= 64 bytes for HS512
NOW = 1_795_359_600.9
JTI = "c0ffee00-0000-4000-8000-000000000001"
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, traditional: bool = False) -> str:
    form = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption()).decode("ascii")


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    curves = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    return {algorithm: ec.generate_private_key(curve) for algorithm, curve in curves.items()}


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS."""
    header, payload, signature = token.split(".")
    return (
        json.loads(b64url_decode(header)),
        json.loads(b64url_decode(payload)),
        f"{header}.{payload}".encode("ascii"),
        b64url_decode(signature),
    )


def auth(algorithm: str, **overrides: Any) -> JwtAuth:
    return JwtAuth(algorithm=cast(JwtAlgorithm, algorithm), key=REF, **overrides)


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hs_tokens_carry_an_hmac_of_the_signing_input(algorithm: str) -> None:
    token = make_jwt(auth(algorithm), key=HS_KEY, now=NOW, jti=JTI)
    header, _, signing_input, signature = split(token)
    digest = getattr(hashlib, "sha" + algorithm[2:])
    assert hmac.compare_digest(signature, hmac.new(HS_KEY.encode("utf-8"), signing_input, digest).digest())
    assert header == {"alg": algorithm, "typ": "JWT"}


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512"])
@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "pkcs1"])
def test_rs_tokens_verify_with_the_public_key(rsa_key: rsa.RSAPrivateKey, algorithm: str, traditional: bool) -> None:
    token = make_jwt(auth(algorithm), key=pem(rsa_key, traditional=traditional), now=NOW, jti=JTI)
    header, _, signing_input, signature = split(token)
    rsa_key.public_key().verify(signature, signing_input, padding.PKCS1v15(), HASHES[algorithm[2:]]())
    assert header["alg"] == algorithm


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "ES512"])
@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "sec1"])
def test_es_tokens_verify_with_the_public_key(
    ec_keys: dict[str, ec.EllipticCurvePrivateKey], algorithm: str, traditional: bool
) -> None:
    key = ec_keys[algorithm]
    token = make_jwt(auth(algorithm), key=pem(key, traditional=traditional), now=NOW, jti=JTI)
    header, _, signing_input, signature = split(token)
    # JWS carries ECDSA signatures as the raw r || s, each the curve's size (RFC 7518 §3.4), not DER.
    size = (key.curve.key_size + 7) // 8
    assert len(signature) == 2 * size
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    der = encode_dss_signature(r, s)
    key.public_key().verify(der, signing_input, ec.ECDSA(HASHES[algorithm[2:]]()))
    assert header["alg"] == algorithm


def test_claims_lifetime_and_token_id() -> None:
    claims = {"iss": "mcp-connectors", "sub": "svc-42", "aud": ["https://api.example.com"], "scope": "read"}
    token = make_jwt(auth("HS256", claims=claims, lifetime=120), key=HS_KEY, now=NOW, jti=JTI)
    _, payload, _, _ = split(token)
    assert payload == {**claims, "iat": 1_795_359_600, "exp": 1_795_359_720, "jti": JTI}
    assert "nbf" not in payload


def test_iat_exp_and_jti_are_always_computed() -> None:
    claims = {"iat": 1, "exp": 2, "jti": "fixed", "nbf": 1_795_359_000, "iss": "x"}
    token = make_jwt(auth("HS256", claims=claims), key=HS_KEY, now=NOW, jti=JTI)
    _, payload, _, _ = split(token)
    assert payload == {"iat": 1_795_359_600, "exp": 1_795_359_900, "jti": JTI, "nbf": 1_795_359_000, "iss": "x"}


def test_a_fresh_token_per_call() -> None:
    first = make_jwt(auth("HS256"), key=HS_KEY, now=NOW, jti="a")
    second = make_jwt(auth("HS256"), key=HS_KEY, now=NOW, jti="b")
    assert first != second
    assert make_jwt(auth("HS256"), key=HS_KEY, now=NOW, jti="a") == first  # pure: same inputs, same token


def test_kid_header_when_a_key_id_is_set(rsa_key: rsa.RSAPrivateKey) -> None:
    token = make_jwt(auth("RS256", key_id="2026-11"), key=pem(rsa_key), now=NOW, jti=JTI)
    header, _, _, _ = split(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "2026-11"}


def test_header_value() -> None:
    assert jwt_header_value(auth("HS256"), "t.o.k") == ("Authorization", "Bearer t.o.k")
    assert jwt_header_value(auth("HS256", header="X-Auth", scheme=None), "t.o.k") == ("X-Auth", "t.o.k")
    assert jwt_header_value(auth("HS256", scheme="JWT"), "t.o.k") == ("Authorization", "JWT t.o.k")


def key_fragments(text: str) -> list[str]:
    """Pieces of a key that must not show up in an error message."""
    lines = [line for line in text.splitlines() if line and not line.startswith("-----")]
    return [line[:16] for line in lines] if lines else [text]


def assert_refused(algorithm: str, key: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        make_jwt(auth(algorithm), key=key, now=NOW, jti=JTI)
    message = str(caught.value)
    assert all(fragment not in message for fragment in key_fragments(key)), message
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_key_that_is_not_a_pem_is_refused(algorithm: str) -> None:
    assert_refused(algorithm, "not-a-pem-but-a-secret-value-1234", "not a PEM private key")
    truncated = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    assert_refused(algorithm, truncated, "not a PEM private key")


def test_a_key_of_the_wrong_kind_is_refused(
    rsa_key: rsa.RSAPrivateKey, ec_keys: dict[str, ec.EllipticCurvePrivateKey]
) -> None:
    assert_refused("RS256", pem(ec_keys["ES256"]), "RS256 needs an RSA private key")
    assert_refused("ES256", pem(rsa_key), "ES256 needs an EC private key")
    assert_refused("ES256", pem(ec_keys["ES384"]), "secp384r1; ES256 needs secp256r1")


def test_a_public_key_or_an_encrypted_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    public = (
        rsa_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    assert_refused("RS256", public, "not a PEM private key")
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode("ascii")
    assert_refused("RS256", encrypted, "encrypted")


def test_an_hs_key_that_is_a_pem_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    # Using a private key's text as an HMAC secret is a configuration mistake (and the classic algorithm
    # confusion); PyJWT refuses it and the refusal surfaces as a ValueError.
    assert_refused("HS256", pem(rsa_key), "cannot be used for HS256")


@pytest.mark.parametrize("algorithm", ["HS256", "RS256"])
def test_an_empty_key_is_refused(algorithm: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        make_jwt(auth(algorithm), key="", now=NOW, jti=JTI)
