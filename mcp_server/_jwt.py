"""JWT bearer auth (`JwtAuth`): a short-lived token signed per request with a key from the vault. Pure: the clock
and the token id are parameters.

Covers JWS compact tokens (RFC 7515/7519) with the HMAC (HS256/384/512), RSASSA-PKCS1-v1_5 (RS256/384/512) and
ECDSA (ES256/384/512) algorithms, signed by PyJWT. An HS key is the secret's text, used as its UTF-8 bytes; an
RS or ES key is an unencrypted PEM private key (PKCS#8, or the traditional PKCS#1/SEC1 forms), checked here
to be of the algorithm's kind (and, for ES, of its curve) so a mismatch is a clear ValueError instead of a
failure deep in a library. No message ever contains key material.

Claims: the manifest's fixed claims (iss, sub, aud, nbf, ...) are sent as they are, except `iat`, `exp` and
`jti`, which are always computed per token (`iat` = int(now), `exp` = iat + lifetime, `jti` as given) and
replace manifest values of those names: a fixed expiry or token id would make every token after the first
stale or a replay. `nbf` is only sent when the manifest gives one. The JOSE header carries `alg`, `typ: JWT`
and, when `key_id` is set, `kid`.
"""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mcp_server._model import JwtAuth

_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
"""RFC 7518 §3.4: each ES algorithm is bound to one curve (by cryptography's curve names)."""


def make_jwt(auth: JwtAuth, *, key: str, now: float, jti: str) -> str:
    """The signed token (compact serialization) for one request."""
    issued_at = int(now)
    claims: dict[str, Any] = {**auth.claims, "iat": issued_at, "exp": issued_at + auth.lifetime, "jti": jti}
    headers = {"kid": auth.key_id} if auth.key_id is not None else None
    signing_key = _signing_key(auth.algorithm, key)
    try:
        return jwt.encode(claims, signing_key, algorithm=auth.algorithm, headers=headers)
    except jwt.InvalidKeyError as exc:
        # PyJWT refuses an HS secret that looks like a PEM, SSH or JWK key (algorithm confusion); its messages
        # describe the key's kind, never its content.
        raise ValueError(f"the JWT key cannot be used for {auth.algorithm}: {exc}") from None


def jwt_header_value(auth: JwtAuth, token: str) -> tuple[str, str]:
    """The (header name, value) pair that carries `token`, e.g. `("Authorization", "Bearer <jwt>")`."""
    return auth.header, f"{auth.scheme} {token}" if auth.scheme else token


def _signing_key(algorithm: str, key: str) -> str | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if not key:
        raise ValueError(f"the JWT key for {algorithm} is empty")
    if algorithm.startswith("HS"):
        return key
    kind = "an RSA" if algorithm.startswith("RS") else "an EC"
    expected = f"{algorithm} needs {kind} private key in PEM form"
    try:
        loaded = load_pem_private_key(key.encode("utf-8"), password=None)
    except TypeError:  # encrypted: there is no field for a password
        raise ValueError(f"the JWT key is an encrypted PEM; {expected}, unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        # `from None`: the parser's own error is about the bytes it was given and adds nothing for the user.
        raise ValueError(f"the JWT key is not a PEM private key; {expected}") from None
    if algorithm.startswith("RS"):
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"the JWT key is a PEM private key of another kind; {expected}")
        return loaded
    curve = _CURVES[algorithm]
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"the JWT key is a PEM private key of another kind; {expected}")
    if loaded.curve.name != curve:
        raise ValueError(f"the JWT key is on curve {loaded.curve.name}; {algorithm} needs {curve}")
    return loaded
