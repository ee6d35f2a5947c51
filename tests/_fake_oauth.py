"""A fake OAuth 2.0 authorization server on 127.0.0.1, run by `UpstreamThread` like the fake upstream.

Routes:
  GET  /authorize   checks client_id, response_type=code, a loopback redirect_uri, state, an S256 code_challenge;
                    302 to redirect_uri with `code` and `state` (or `error=access_denied` when `deny` is set)
  POST /token       grant types client_credentials, authorization_code (PKCE-checked, single-use codes) and
                    refresh_token (rotating: the old refresh token dies with each refresh unless `rotate` is off)

Knobs (plain attributes, set from the test thread): `client_auth` ("basic" / "body" / "none" for a public client),
`expires_in` (None omits it), `rotate`, `deny`, and `failure` for the next token requests: "invalid_client",
"500", "slow", "not_json", "no_access_token", "redirect", "huge_description". `token_requests` counts POSTs to
/token; every request is also recorded in `requests` (form bodies included) by the base class.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests._upstream import FakeUpstream, Recorded

CLIENT_ID = "demo-client:id"  # a ':' makes the RFC 6749 §2.3.1 form-encoding before Basic matter
CLIENT_SECRET = "s3cr3t/+ö:demo-CLIENT-secret"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str | None


@dataclass
class FakeAuthServer(FakeUpstream):
    client_auth: str = "body"
    expires_in: int | str | None = 3600
    rotate: bool = True
    deny: bool = False
    failure: str | None = None
    slow_seconds: float = 3.0
    token_requests: int = 0
    codes: dict[str, _Grant] = field(default_factory=dict[str, _Grant])
    live_refresh_tokens: set[str] = field(default_factory=set[str])
    issued_access_tokens: list[str] = field(default_factory=list[str])
    authorize_params: list[dict[str, str]] = field(default_factory=list[dict[str, str]])
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    def reset(self) -> None:
        self.client_auth = "body"
        self.expires_in = 3600
        self.rotate = True
        self.deny = False
        self.failure = None
        self.slow_seconds = 3.0
        self.token_requests = 0
        self.codes.clear()
        self.live_refresh_tokens.clear()
        self.issued_access_tokens.clear()
        self.authorize_params.clear()
        self.requests.clear()

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/authorize"

    def issue_refresh_token(self) -> str:
        """A refresh token as if a login had happened, for provider tests that start from a stored set."""
        token = f"rt-{next(self._serial)}-{secrets.token_urlsafe(8)}"
        self.live_refresh_tokens.add(token)
        return token

    def token_forms(self) -> list[dict[str, str]]:
        return [_form(r) for r in self.requests if r.raw_path.startswith("/token")]

    # -- routes ----------------------------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorize_params.append(params)
        redirect_uri = params.get("redirect_uri", "")
        target = urlsplit(redirect_uri)
        problems = [
            what
            for what, ok in (
                ("response_type", params.get("response_type") == "code"),
                ("client_id", params.get("client_id") == CLIENT_ID),
                ("redirect_uri", target.scheme == "http" and target.hostname == "127.0.0.1"),
                ("state", bool(params.get("state"))),
                ("code_challenge_method", params.get("code_challenge_method") == "S256"),
                ("code_challenge", len(params.get("code_challenge", "")) == 43),
            )
            if not ok
        ]
        if problems:
            return JSONResponse({"error": "invalid_request", "bad": problems}, status_code=400)
        if self.deny:
            query = {"error": "access_denied", "error_description": "The user said no", "state": params["state"]}
            return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=302)
        code = f"code-{next(self._serial)}-{secrets.token_urlsafe(8)}"
        self.codes[code] = _Grant(CLIENT_ID, redirect_uri, params["code_challenge"], params.get("scope"))
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': params['state']})}", 302)

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
        failure = self.failure
        if failure == "slow":
            await asyncio.sleep(self.slow_seconds)
        elif failure == "invalid_client":
            return _error("invalid_client", "Client authentication failed", 401)
        elif failure == "huge_description":
            echoed = f"rejected {form.get('client_secret', '')} {form.get('refresh_token', '')} "
            return _error("invalid_client", echoed + "x" * 5000, 400)
        elif failure == "500":
            return PlainTextResponse("upstream exploded", status_code=500)
        elif failure == "not_json":
            return PlainTextResponse("access_token=abc&token_type=bearer")
        elif failure == "no_access_token":
            return JSONResponse({"token_type": "Bearer"})
        elif failure == "redirect":
            return RedirectResponse(f"{self.url}/elsewhere", status_code=307)
        if not self._client_authenticated(request, form):
            return _error("invalid_client", "Client authentication failed", 401)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            return self._issue(scope=form.get("scope"), refresh=False)
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)  # single use: popped even when the rest is wrong
            if code is None:
                return _error("invalid_grant", "unknown or used authorization code")
            if form.get("redirect_uri") != code.redirect_uri:
                return _error("invalid_grant", "redirect_uri does not match")
            if _challenge(form.get("code_verifier", "")) != code.challenge:
                return _error("invalid_grant", "PKCE verification failed")
            return self._issue(scope=code.scope, refresh=True)
        if grant == "refresh_token":
            old = form.get("refresh_token", "")
            if old not in self.live_refresh_tokens:
                return _error("invalid_grant", "refresh token is invalid, expired or revoked")
            if self.rotate:
                self.live_refresh_tokens.discard(old)
                return self._issue(scope=None, refresh=True)
            return self._issue(scope=None, refresh=False)
        return _error("unsupported_grant_type", f"grant_type {grant!r}")

    def _client_authenticated(self, request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization")
        if self.client_auth == "basic":
            if header is None or not header.startswith("Basic ") or "client_secret" in form:
                return False
            user, _, password = base64.b64decode(header[6:]).decode("ascii").partition(":")
            return unquote_plus(user) == CLIENT_ID and unquote_plus(password) == CLIENT_SECRET
        if self.client_auth == "body":
            return header is None and form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
        return header is None and form.get("client_id") == CLIENT_ID and "client_secret" not in form

    def _issue(self, *, scope: str | None, refresh: bool) -> Response:
        access = f"at-{next(self._serial)}-{secrets.token_urlsafe(12)}"
        self.issued_access_tokens.append(access)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if refresh:
            body["refresh_token"] = self.issue_refresh_token()
        if scope:
            body["scope"] = scope
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _dispatch(self, request: Request) -> Response:
        # The base class's handler records every request (body included); its answer is only used for other paths.
        answer = await self._handle(request)
        if request.url.path == "/authorize" and request.method == "GET":
            return await self._authorize(request)
        if request.url.path == "/token" and request.method == "POST":
            return await self._token(request)
        return answer

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST"])])


def _form(recorded: Recorded) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(recorded.body.decode(), keep_blank_values=True).items()}


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _error(code: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)
