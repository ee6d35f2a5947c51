"""A fake OAuth authorization server on 127.0.0.1: publishes a JWKS and signs access tokens with its keys.

Keys are generated with `cryptography` (RSA for RS256, EC P-256 for ES256); tokens are signed with PyJWT.
`rotate()` replaces the published keys, as an issuer rotating its signing key does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests._upstream import FakeUpstream

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class SigningKey:
    kid: str
    private: PrivateKey
    alg: str

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")

    def public_jwk(self) -> dict[str, Any]:
        if isinstance(self.private, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}


@dataclass
class FakeIdP(FakeUpstream):
    keys: list[SigningKey] = field(default_factory=list[SigningKey])
    jwks_requests: int = 0

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks.json"

    def rotate(self, *keys: SigningKey) -> None:
        self.keys = list(keys)

    def sign(
        self,
        key: SigningKey,
        *,
        audience: str | list[str],
        scope: str | None = "tools:*",
        issuer: str | None = None,
        lifetime: float = 300,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "aud": audience,
            "sub": "user-123",
            "client_id": "agent-app",
            "iat": now,
            "exp": now + int(lifetime),
            **claims,
        }
        if scope is not None:
            payload["scope"] = scope
        return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})})

    async def _jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        return JSONResponse({"keys": [key.public_jwk() for key in self.keys]})

    async def _metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": self.jwks_url,
                "response_types_supported": ["code"],
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/jwks.json", self._jwks, methods=["GET"]),
                Route("/.well-known/oauth-authorization-server", self._metadata, methods=["GET"]),
            ]
        )
