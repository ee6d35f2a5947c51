"""A fake HashiCorp Vault on 127.0.0.1: exactly the HTTP API the `hashicorp` secret store calls through hvac.

Endpoints (paths under /v1/):
  GET    sys/internal/ui/mounts/<mount>     the KV preflight: {"data": {"type", "options": {"version"}, "path"}}
  GET    <mount>/data/<path>[?version=N]    read a version; 404 {"errors": []} if absent, 404 with the
                                            metadata (no "errors") if that version is deleted or destroyed
  POST   <mount>/data/<path>                write {"data": {...}, "options": {"cas"?}}: a new version
  LIST   <mount>/metadata/<folder>/         keys in the folder (sub-folders end in /); also GET ?list=true
  GET    <mount>/metadata/<path>            the metadata and versions; 404 if absent
  DELETE <mount>/metadata/<path>            every version and the metadata; 204 whether or not it existed

Like Vault: a missing or unknown `X-Vault-Token` is 403 {"errors": ["permission denied"]}, as is a token whose
policy does not cover the path (`limited_tokens`) and an `X-Vault-Namespace` other than `namespace`; a path
under no mount is 404 "no handler for route"; `sealed` answers everything with 503 "Vault is sealed".
KV v1 mounts and other engines exist only for the preflight. `redirect_to` answers everything with a 307.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests._upstream import free_port

ROOT_TOKEN = "hvs.fake-root-token"
DENIED = {"errors": ["permission denied"]}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Version:
    data: dict[str, Any] | None
    created_time: str = field(default_factory=_now)
    deletion_time: str = ""
    destroyed: bool = False

    def metadata(self, number: int) -> dict[str, Any]:
        return {
            "created_time": self.created_time,
            "custom_metadata": None,
            "deletion_time": self.deletion_time,
            "destroyed": self.destroyed,
            "version": number,
        }


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class FakeHashiCorpVault:
    port: int = 0
    scheme: str = "http"
    tokens: set[str] = field(default_factory=lambda: {ROOT_TOKEN})
    """Tokens with every capability everywhere."""
    limited_tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Token -> the API path prefixes (after /v1/) its policy covers."""
    namespace: str | None = None
    """The namespace every token lives in; requests must name it in X-Vault-Namespace (None: send none)."""
    mounts: dict[str, str] = field(default_factory=lambda: {"secret": "kv2"})
    """Mount path -> engine: "kv2", "kv1", or another type name ("pki")."""
    sealed: bool = False
    delay: float = 0.0
    redirect_to: str | None = None
    store: dict[tuple[str, str], list[Version]] = field(default_factory=dict)
    """(mount, path) -> versions, oldest first; version N is store[...][N - 1]."""
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.tokens = {ROOT_TOKEN}
        self.limited_tokens = {}
        self.namespace = None
        self.mounts = {"secret": "kv2"}
        self.sealed = False
        self.delay = 0.0
        self.redirect_to = None
        self.store.clear()
        self.seen.clear()

    # -- test helpers ------------------------------------------------------------------------------

    def put(self, mount: str, path: str, data: dict[str, Any]) -> None:
        """Write a version directly, as `vault kv put` would (any fields)."""
        self.store.setdefault((mount, path), []).append(Version(dict(data)))

    def soft_delete(self, mount: str, path: str) -> None:
        """Mark the latest version deleted, as `vault kv delete` does; the metadata stays."""
        self.store[(mount, path)][-1].deletion_time = _now()

    def latest(self, mount: str, path: str) -> dict[str, Any] | None:
        versions = self.store.get((mount, path))
        return versions[-1].data if versions else None

    # -- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        self.seen.append(
            Seen(
                request.method,
                request.url.path,
                request.url.query,
                {k.lower(): v for k, v in request.headers.items()},
            )
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.sealed:
            return JSONResponse({"errors": ["Vault is sealed"]}, status_code=503)
        if self.redirect_to is not None:
            return Response(status_code=307, headers={"Location": self.redirect_to + request.url.path})
        if (request.headers.get("x-vault-namespace") or "").strip("/") != (self.namespace or ""):
            return JSONResponse(DENIED, status_code=403)
        token = request.headers.get("x-vault-token", "")
        path = request.url.path.removeprefix("/v1/")
        if path.startswith("sys/internal/ui/mounts/"):
            return self._preflight(token, path.removeprefix("sys/internal/ui/mounts/").strip("/"))
        if token not in self.tokens and token not in self.limited_tokens:
            return JSONResponse(DENIED, status_code=403)
        mount = self._mount_of(path)
        if mount is None:
            return JSONResponse({"errors": [f'no handler for route "{path}". route entry not found.']}, status_code=404)
        if token in self.limited_tokens and not path.startswith(self.limited_tokens[token]):
            return JSONResponse(DENIED, status_code=403)
        if self.mounts[mount] != "kv2":
            return JSONResponse({"errors": []}, status_code=404)
        method = request.method
        if method == "GET" and request.query_params.get("list") == "true":
            method = "LIST"
        if method == "LIST" and not path.endswith("/"):
            # Vault lists folders: it appends the "/" that hvac strips from the end of every URL.
            path += "/"
        rest = path[len(mount) + 1 :]
        if rest.startswith("data/") and method == "GET":
            return self._read(mount, rest.removeprefix("data/"), request.query_params.get("version"))
        if rest.startswith("data/") and method in {"POST", "PUT"}:
            return self._write(mount, rest.removeprefix("data/"), await request.body())
        if rest.startswith("metadata/") and method == "LIST":
            return self._list(mount, rest.removeprefix("metadata/"))
        if rest.startswith("metadata/") and method == "GET":
            return self._metadata(mount, rest.removeprefix("metadata/"))
        if rest.startswith("metadata/") and method == "DELETE":
            self.store.pop((mount, rest.removeprefix("metadata/")), None)
            return Response(status_code=204)
        return JSONResponse({"errors": [f"unsupported operation {method} {path}"]}, status_code=405)

    def _mount_of(self, path: str) -> str | None:
        matches = [m for m in self.mounts if path == m or path.startswith(m + "/")]
        return max(matches, key=len) if matches else None

    def _preflight(self, token: str, target: str) -> Response:
        mount = self._mount_of(target)
        limited = self.limited_tokens.get(token)
        allowed = token in self.tokens or (
            limited is not None and mount is not None and any(p.startswith(mount + "/") for p in limited)
        )
        if mount is None or not allowed:
            # Vault answers both the same way, so the endpoint cannot be used to discover mounts.
            message = (
                "preflight capability check returned 403, please ensure client's policies grant access to "
                f'path "{target}/"'
            )
            return JSONResponse({"errors": [message]}, status_code=403)
        engine = self.mounts[mount]
        kind, options = ("kv", {"version": engine[-1]}) if engine.startswith("kv") else (engine, None)
        return JSONResponse({"data": {"type": kind, "options": options, "path": mount + "/", "description": ""}})

    def _read(self, mount: str, path: str, version: str | None) -> Response:
        versions = self.store.get((mount, path))
        if not versions:
            return JSONResponse({"errors": []}, status_code=404)
        number = int(version) if version else len(versions)
        if not 1 <= number <= len(versions):
            return JSONResponse({"errors": []}, status_code=404)
        chosen = versions[number - 1]
        if chosen.deletion_time or chosen.destroyed:
            return JSONResponse({"data": {"data": None, "metadata": chosen.metadata(number)}}, status_code=404)
        return JSONResponse({"data": {"data": chosen.data, "metadata": chosen.metadata(number)}})

    def _write(self, mount: str, path: str, raw: bytes) -> Response:
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"errors": ["failed to parse JSON input"]}, status_code=400)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return JSONResponse({"errors": ["no data provided"]}, status_code=400)
        versions = self.store.setdefault((mount, path), [])
        cas = (body.get("options") or {}).get("cas")
        if cas is not None and cas != len(versions):
            return JSONResponse({"errors": ["check-and-set parameter did not match the current version"]}, 400)
        versions.append(Version(data))
        return JSONResponse({"data": versions[-1].metadata(len(versions))})

    def _list(self, mount: str, prefix: str) -> Response:
        keys: set[str] = set()
        for stored_mount, path in self.store:
            if stored_mount == mount and path.startswith(prefix):
                rest = path[len(prefix) :]
                keys.add(rest.split("/", 1)[0] + "/" if "/" in rest else rest)
        if not keys:
            return JSONResponse({"errors": []}, status_code=404)
        return JSONResponse({"data": {"keys": sorted(keys)}})

    def _metadata(self, mount: str, path: str) -> Response:
        versions = self.store.get((mount, path))
        if not versions:
            return JSONResponse({"errors": []}, status_code=404)
        return JSONResponse(
            {
                "data": {
                    "current_version": len(versions),
                    "oldest_version": 1,
                    "created_time": versions[0].created_time,
                    "updated_time": versions[-1].created_time,
                    "versions": {str(i): v.metadata(i) for i, v in enumerate(versions, 1)},
                }
            }
        )

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "LIST"]
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])


class FakeHashiCorpThread:
    """Runs a `FakeHashiCorpVault` with uvicorn in a daemon thread; over TLS when given a cert and key."""

    def __init__(self, fake: FakeHashiCorpVault | None = None, *, certfile: str = "", keyfile: str = "") -> None:
        self.fake = fake or FakeHashiCorpVault()
        self.fake.port = free_port()
        self.fake.scheme = "https" if certfile else "http"
        config = uvicorn.Config(
            self.fake.app(),
            host="127.0.0.1",
            port=self.fake.port,
            log_level="warning",
            http="h11",  # httptools (uvicorn's faster parser) rejects Vault's LIST method
            ssl_certfile=certfile or None,
            ssl_keyfile=keyfile or None,
            ssl_cert_reqs=ssl.CERT_NONE,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> FakeHashiCorpVault:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake HashiCorp Vault did not start")
            time.sleep(0.01)
        return self.fake

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
