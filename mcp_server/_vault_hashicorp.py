"""HashiCorp Vault as the secret store: one KV version 2 secret per name, through `hvac`.

Selected with ``MCP_CONNECTORS_VAULT_BACKEND=hashicorp``; `HashiCorpSettings` lists the variables.
Secret NAME is the KV v2 secret ``<prefix>NAME`` on the mount, holding ``{"value": "<secret>"}``: with the
defaults, ``vault kv get -mount=secret mcp-connectors/NAME`` shows it. A token that only serves needs
``read`` on the data paths; managing secrets with ``mcp-connectors vault`` needs this policy::

    path "secret/data/mcp-connectors/*"     { capabilities = ["create", "read", "update"] }
    path "secret/metadata/mcp-connectors/*" { capabilities = ["list", "read", "delete"] }

Before its first request the store asks ``GET /v1/sys/internal/ui/mounts/<mount>`` (the preflight the
``vault kv`` commands make) whether the mount is KV version 2: a KV v1 mount would accept a write to
``<mount>/data/...`` as an ordinary secret under that literal name and answer every read with 404, so the
mismatch would otherwise pass silently as "secret not set".

Every failure is a `VaultError` whose message names the Vault address, the mount and the fix. The token
goes only into the ``X-Vault-Token`` header: it is kept as a `Secret`, scrubbed from any text Vault sends
back, and hvac/requests exceptions are dropped (``from None``) because their request objects carry the
headers. Redirects are not followed, so the token is never sent anywhere but ``VAULT_ADDR``.

hvac is imported on first use, so the file backend works without the ``mcp-connectors[hashicorp]`` extra.
hvac itself also honours ``VAULT_CLIENT_CERT`` / ``VAULT_CLIENT_KEY`` (mutual TLS) from the environment.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Any, ClassVar, Final, NamedTuple, cast

from mcp_server._config import HashiCorpSettings
from mcp_server._errors import VaultError
from mcp_server._secrets import Secret
from mcp_server._vault import validate_secret_name

__all__ = ["HashiCorpVault"]

logger = logging.getLogger("mcp_server.vault")

_INSTALL: Final = (
    "The HashiCorp Vault backend (MCP_CONNECTORS_VAULT_BACKEND=hashicorp) needs the hvac package: "
    "install mcp-connectors[hashicorp] (`pip install 'mcp-connectors[hashicorp]'`), or set "
    "MCP_CONNECTORS_VAULT_BACKEND=file to use the encrypted vault file."
)
_DETAIL_LIMIT: Final = 300
_ERRNO_RE: Final = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
# hvac raises one exception class per status code; the code itself is not kept on the exception.
_STATUS_OF_HVAC_ERROR: Final = {
    "InvalidRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "InvalidPath": 404,
    "RateLimitExceeded": 429,
    "InternalServerError": 500,
    "VaultNotInitialized": 501,
    "BadGateway": 502,
    "VaultDown": 503,
}


def _load_hvac() -> tuple[Any, Any]:
    """`(hvac, requests.exceptions)`, imported here and not at module level: hvac is an optional extra."""
    try:
        import hvac
        import requests.exceptions
    except ImportError:
        raise VaultError(_INSTALL) from None
    return hvac, requests.exceptions


class _Detail(NamedTuple):
    errors: list[str]
    """Vault's "errors" list, non-empty entries only."""
    text: str
    """One line for a message: the errors, else the body text; scrubbed and shortened."""


def _as_dict(value: object) -> dict[str, object] | None:
    return cast("dict[str, object]", value) if isinstance(value, dict) else None


class HashiCorpVault:
    """`SecretStore` over a HashiCorp Vault KV v2 mount; see the module docstring for the layout.

    Constructing one never fails and does no I/O: a missing `VAULT_ADDR` or `VAULT_TOKEN`, or a missing
    hvac, is raised as `VaultError` by each operation, so `serve` can start and report it like an
    unreadable vault file. Shared by the pipeline's worker threads: its own state is only ever set once (a
    race just repeats the set-up) and requests' connection pool is thread-safe.
    """

    remote: ClassVar[bool] = True

    def __init__(self, settings: HashiCorpSettings) -> None:
        self._settings = settings
        self._url = (settings.addr or "").strip().rstrip("/")
        # For messages and repr: a user:password@ in VAULT_ADDR is refused on use, and never shown.
        self._shown_url = re.sub(r"//[^/]*@", "//", self._url)
        self._mount = settings.mount.strip().strip("/")
        prefix = settings.prefix.strip().strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._client: Any = None
        self._hvac_errors: Any = None
        self._http_errors: Any = None
        # Set once the preflight has seen a KV v2 mount; a lost race just runs the preflight twice.
        self._kv2_confirmed = False

    def __repr__(self) -> str:
        return f"HashiCorpVault({self._shown_url!r}, mount={self._mount!r}, prefix={self._prefix!r})"

    def describe(self) -> str:
        where = f"HashiCorp Vault at {self._shown_url}" if self._url else "HashiCorp Vault (VAULT_ADDR not set)"
        if self._settings.namespace:
            where += f" (namespace {self._settings.namespace!r})"
        return f"{where}, mount {self._mount!r}, prefix {self._prefix!r}"

    # -- SecretStore ---------------------------------------------------------------------------------

    def get(self, name: str) -> Secret | None:
        """The secret's `value`; None when it does not exist or its latest version is deleted."""
        path = self._secret_path(name)
        shown = f"{self._mount}/data/{path}"
        self._ready()
        result = self._call(
            lambda kv: kv.read_secret_version(path=path, mount_point=self._mount, raise_on_deleted_version=True),
            action="read",
            shown=shown,
            capabilities=("read",),
            missing_ok=True,
        )
        if result is None:
            return None
        data = _as_dict(self._body(result, "read", shown).get("data"))
        if data is None or "metadata" not in data:
            raise VaultError(
                f"{self.describe()}: the answer for {shown} is not a KV version 2 secret (no data.metadata). "
                f"Set MCP_CONNECTORS_VAULT_MOUNT to a KV version 2 mount."
            )
        fields = _as_dict(data.get("data"))
        value = fields.get("value") if fields is not None else None
        if isinstance(value, str):
            return Secret(value)
        # Field names only: the other fields' values may be secrets too.
        present = ", ".join(sorted(fields)[:20]) if fields else "none"
        raise VaultError(
            f'{self.describe()}: the secret at {shown} has no string "value" field (its fields: {present}). '
            f'mcp-connectors keeps each secret as {{"value": "..."}}: store it again with '
            f"`mcp-connectors vault set {name}` or `vault kv put -mount={self._mount} {path} value=...`."
        )

    def set(self, name: str, value: str) -> None:
        """Write a new version holding only `{"value": value}` (other fields of the secret are replaced)."""
        path = self._secret_path(name)
        if not isinstance(value, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError("a secret value must be a str")
        shown = f"{self._mount}/data/{path}"
        self._ready()
        self._call(
            lambda kv: kv.create_or_update_secret(path=path, secret={"value": value}, mount_point=self._mount),
            action="write",
            shown=shown,
            capabilities=("create", "update"),
        )

    def delete(self, name: str) -> bool:
        """Remove every version and the metadata of `name`; True if it existed."""
        path = self._secret_path(name)
        shown = f"{self._mount}/metadata/{path}"
        self._ready()
        # Vault answers 204 to a delete whether or not the secret existed, so existence is read first; the
        # metadata (not the data) so a secret whose latest version was soft-deleted, which `names()` still
        # lists, is removed too.
        found = self._call(
            lambda kv: kv.read_secret_metadata(path=path, mount_point=self._mount),
            action="read the metadata of",
            shown=shown,
            capabilities=("read", "delete"),
            missing_ok=True,
        )
        if found is None:
            return False
        self._call(
            lambda kv: kv.delete_metadata_and_all_versions(path=path, mount_point=self._mount),
            action="delete",
            shown=shown,
            capabilities=("read", "delete"),
        )
        return True

    def names(self) -> list[str]:
        """Sorted names under the prefix; sub-folders and keys that are not valid secret names are skipped."""
        shown = f"{self._mount}/metadata/{self._prefix}"
        self._ready()
        result = self._call(
            lambda kv: kv.list_secrets(path=self._prefix, mount_point=self._mount),
            action="list",
            shown=shown,
            capabilities=("list",),
            missing_ok=True,  # an empty folder does not exist in Vault: 404
        )
        if result is None:
            return []
        data = _as_dict(self._body(result, "list", shown).get("data"))
        keys = data.get("keys") if data is not None else None
        if not isinstance(keys, list):
            raise VaultError(f"{self.describe()}: the answer to LIST {shown} has no data.keys list.")
        return sorted(key for key in cast("list[object]", keys) if isinstance(key, str) and _is_secret_name(key))

    def check(self) -> None:
        """Reach Vault and confirm, with the token, that the mount is KV version 2 (even if already confirmed)."""
        self._ready(recheck=True)

    # -- plumbing ------------------------------------------------------------------------------------

    def _secret_path(self, name: str) -> str:
        validate_secret_name(name)
        # "." and ".." pass the shared name rule but are dot segments in a URL path: they would name the
        # prefix folder or its parent, not a secret inside it.
        if name in {".", ".."}:
            raise ValueError(f"Invalid secret name {name!r} for HashiCorp Vault: it is a path segment.")
        return self._prefix + name

    def _configuration_problem(self) -> str | None:
        s = self._settings
        mount_hint = f"mount {self._mount!r}" if self._mount else "no mount"
        if not self._url:
            return (
                f"MCP_CONNECTORS_VAULT_BACKEND=hashicorp, but VAULT_ADDR is not set ({mount_hint}): "
                "export VAULT_ADDR=https://vault.example.com:8200, the address of the Vault API."
            )
        parts = urllib.parse.urlsplit(self._url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            return f"VAULT_ADDR={self._shown_url!r} is not an http(s) URL: set it like https://vault.example.com:8200."
        if parts.username is not None or parts.password is not None:
            # Not echoed: the user-info part is a credential.
            return "VAULT_ADDR contains a user name or password: remove it; the token goes in VAULT_TOKEN."
        if s.token is None or not s.token.reveal():
            return (
                f"MCP_CONNECTORS_VAULT_BACKEND=hashicorp, but VAULT_TOKEN is not set for HashiCorp Vault at "
                f"{self._shown_url} ({mount_hint}): export VAULT_TOKEN with a token allowed to read "
                f"{self._mount}/data/{self._prefix}* (for example from `vault login`)."
            )
        if not self._mount or any(seg in {"", ".", ".."} for seg in self._mount.split("/")):
            return f"MCP_CONNECTORS_VAULT_MOUNT={s.mount!r} is not a mount path: set it like `secret` or `team/kv`."
        if self._prefix and any(seg in {"", ".", ".."} for seg in self._prefix[:-1].split("/")):
            return (
                f"MCP_CONNECTORS_VAULT_PREFIX={s.prefix!r} is not a folder path: set it like `mcp-connectors/` "
                "(or `/` for the mount's root)."
            )
        if s.ca_cert is not None and not s.ca_cert.is_file():
            return (
                f"VAULT_CACERT={str(s.ca_cert)!r} is not a file: point it at the PEM CA bundle for {self._shown_url}."
            )
        if s.timeout <= 0:
            return f"The HashiCorp Vault request timeout must be positive, not {s.timeout}."
        return None

    def _ready(self, *, recheck: bool = False) -> None:
        """Raise on configuration problems, build the client once, and run the KV v2 preflight once."""
        if self._client is None:
            problem = self._configuration_problem()
            if problem is not None:
                raise VaultError(problem)
            hvac, self._http_errors = _load_hvac()
            self._hvac_errors = hvac.exceptions
            s = self._settings
            token = cast("Secret", s.token)
            verify: bool | str = False if s.skip_verify else (str(s.ca_cert) if s.ca_cert is not None else True)
            self._client = hvac.Client(
                url=self._url,
                token=token.reveal(),
                namespace=s.namespace,
                verify=verify,
                timeout=s.timeout,
                allow_redirects=False,  # requests would carry X-Vault-Token along to any host a 3xx names
            )
        if recheck or not self._kv2_confirmed:
            self._confirm_kv2()
            self._kv2_confirmed = True

    def _confirm_kv2(self) -> None:
        shown = f"sys/internal/ui/mounts/{self._mount}"
        url = "/v1/sys/internal/ui/mounts/" + urllib.parse.quote(self._mount)
        result = self._call(
            lambda _kv: self._client.adapter.get(url), action="read", shown=shown, capabilities=(), preflight=True
        )
        data = _as_dict(self._body(result, "read", shown).get("data")) or {}
        kind = data.get("type")
        options = _as_dict(data.get("options")) or {}
        version = str(options.get("version") or "1")
        if kind != "kv" or version != "2":
            what = f"a KV version {version} mount" if kind == "kv" else f"a {kind or 'unknown'} secrets engine"
            fix = (
                f"upgrade it with `vault kv enable-versioning {self._mount}/`"
                if kind == "kv"
                else f"enable one with `vault secrets enable -path={self._mount} kv-v2`"
            )
            raise VaultError(
                f"{self.describe()}: {self._mount}/ is {what}, not KV version 2. Set MCP_CONNECTORS_VAULT_MOUNT "
                f"to a KV version 2 mount, or {fix}."
            )
        mounted_at = str(data.get("path") or "").strip("/")
        # KV v2 paths are <mount>/data/<path>: "secret/team" taken as a mount would put data/ in the wrong place.
        # (Only a strictly shorter mount path counts: a parent namespace's mount may come back namespace-prefixed.)
        if mounted_at and self._mount.startswith(mounted_at + "/"):
            inner = self._mount[len(mounted_at) + 1 :]
            raise VaultError(
                f"{self.describe()}: {self._mount}/ is a folder inside the KV version 2 mount {mounted_at}/, not "
                f"a mount. Set MCP_CONNECTORS_VAULT_MOUNT={mounted_at} and "
                f"MCP_CONNECTORS_VAULT_PREFIX={inner}/{self._prefix}."
            )

    def _call(
        self,
        request: Callable[[Any], object],
        *,
        action: str,
        shown: str,
        capabilities: tuple[str, ...],
        missing_ok: bool = False,
        preflight: bool = False,
    ) -> object | None:
        """Run one hvac request (given the KV v2 API); None for a 404 on the path itself when `missing_ok`."""
        logger.debug("HashiCorp Vault %s: %s %s", self._shown_url, action, shown)
        try:
            result = request(self._client.secrets.kv.v2)
        except self._hvac_errors.VaultError as exc:
            status = _STATUS_OF_HVAC_ERROR.get(type(exc).__name__)
            detail = self._detail(exc)
            # A missing secret is a 404 with an empty "errors" list (a deleted version: no list at all);
            # a 404 that says something ("no handler for route") means the mount itself is missing.
            if status == 404 and missing_ok and not preflight and not detail.errors:
                return None
            raise self._answer_error(status, detail.text, action, shown, capabilities, preflight) from None
        except self._http_errors.RequestException as exc:
            raise self._transport_error(exc) from None
        except OSError as exc:  # requests' own CA-bundle check raises a bare OSError
            raise VaultError(f"{self.describe()}: cannot set up TLS: {self._scrub(str(exc))}.") from None
        status: object = getattr(result, "status_code", None)
        if isinstance(status, int) and 300 <= status < 400:
            # hvac treats a 3xx as success; with redirects off the request did not happen.
            headers: Any = getattr(result, "headers", {})
            location = self._scrub(str(headers.get("Location") or "another address"))
            raise VaultError(
                f"{self.describe()} redirected the {action} of {shown} (HTTP {status}) to {location}. Set "
                "VAULT_ADDR to the active node's address; redirects are not followed, so the token only goes "
                "to VAULT_ADDR."
            )
        return result

    def _detail(self, exc: Any) -> _Detail:
        raw: object = getattr(exc, "errors", None)
        errors = [str(e) for e in cast("list[object]", raw) if str(e).strip()] if isinstance(raw, list) else []
        text = "; ".join(errors) if errors else str(getattr(exc, "text", "") or "")
        # Vault's multi-error format ("1 error occurred:\n\t* permission denied\n\n") read as one line.
        text = re.sub(r"\d+ errors? occurred:\s*", "", text)
        text = " ".join(text.replace("* ", "").split())
        if len(text) > _DETAIL_LIMIT:
            text = text[:_DETAIL_LIMIT] + "…"
        return _Detail(errors, self._scrub(text))

    def _scrub(self, text: str) -> str:
        """Vault never echoes the token, but its answers are not ours to trust with it."""
        token = self._settings.token.reveal() if self._settings.token is not None else ""
        return text.replace(token, "**********") if token else text

    def _policy_hint(self, shown: str, capabilities: tuple[str, ...]) -> str:
        # shown is <mount>/data/<prefix>NAME or <mount>/metadata/<prefix>[NAME]: the policy covers the folder.
        kind = "metadata" if shown.startswith(f"{self._mount}/metadata/") else "data"
        caps = ", ".join(f'"{c}"' for c in capabilities)
        return f'`path "{self._mount}/{kind}/{self._prefix}*" {{ capabilities = [{caps}] }}`'

    def _answer_error(
        self,
        status: int | None,
        detail: str,
        action: str,
        shown: str,
        capabilities: tuple[str, ...],
        preflight: bool,
    ) -> VaultError:
        at = self.describe()
        said = f" ({detail})" if detail else ""
        if status == 503:
            if "sealed" in detail.lower():
                return VaultError(
                    f"{at} is sealed, so no secret can be read: unseal it (`vault operator unseal`, or wait "
                    "for auto-unseal), then retry."
                )
            return VaultError(f"{at} is unavailable (HTTP 503{said}): retry once it is back, or check its status.")
        # Vault answers a token from another namespace like an unknown one.
        namespace = " (or belongs to another namespace than VAULT_NAMESPACE)" if self._settings.namespace else ""
        if preflight and status in {403, 404}:
            return VaultError(
                f"{at}: cannot confirm that {self._mount}/ is a KV version 2 mount (HTTP {status}{said}). Either "
                f"nothing is mounted at {self._mount}/ (set MCP_CONNECTORS_VAULT_MOUNT to your KV v2 mount), or "
                f"VAULT_TOKEN is invalid or expired{namespace}, or no policy grants it anything under that mount."
            )
        if status in {401, 403}:
            policy = self._policy_hint(shown, capabilities)
            return VaultError(
                f"{at}: permission denied to {action} {shown}{said}. VAULT_TOKEN is invalid or expired{namespace}, "
                f"or its policies do not cover that path: renew the token, or grant it {policy}."
            )
        if status == 404:
            return VaultError(
                f"{at}: no secrets engine answers for {shown}{said}. Set MCP_CONNECTORS_VAULT_MOUNT to your KV "
                f"version 2 mount, or enable one with `vault secrets enable -path={self._mount} kv-v2`."
            )
        if status == 429:
            return VaultError(f"{at}: rate limited while trying to {action} {shown}{said}; retry shortly.")
        code = f"HTTP {status}" if status is not None else "an unexpected status"
        return VaultError(f"{at}: could not {action} {shown}: Vault answered {code}{said}.")

    def _transport_error(self, exc: Any) -> VaultError:
        at = self.describe()
        errors = self._http_errors
        if isinstance(exc, errors.SSLError):
            reason = _ERRNO_RE.search(str(exc))
            why = reason.group(1).strip() if reason else "certificate verification failed"
            return VaultError(
                f"{at}: TLS connection failed ({self._scrub(why)}). Set VAULT_CACERT to the PEM CA bundle that "
                "signed Vault's certificate (VAULT_SKIP_VERIFY=true turns verification off, for testing only)."
            )
        if isinstance(exc, errors.Timeout):
            return VaultError(
                f"{at} did not answer within {self._settings.timeout:g} s. Check VAULT_ADDR, that Vault is "
                "running, and that this host can reach it."
            )
        if isinstance(exc, errors.ConnectionError):
            reason = _ERRNO_RE.search(str(exc))
            why = reason.group(1).strip() if reason else "connection failed"
            return VaultError(
                f"Cannot reach {at}: {self._scrub(why)}. Check VAULT_ADDR, that Vault is running, and that this "
                "host can reach it."
            )
        return VaultError(f"{at}: the request failed ({type(exc).__name__}). Check VAULT_ADDR.")

    def _body(self, result: object, action: str, shown: str) -> dict[str, object]:
        """hvac returns a 200 JSON answer as a dict and anything else as the requests `Response`."""
        body = _as_dict(result)
        if body is not None:
            return body
        status: object = getattr(result, "status_code", None)
        raise VaultError(
            f"{self.describe()}: the answer to the {action} of {shown} (HTTP {status}) is not a JSON object. "
            "Check that VAULT_ADDR is the Vault API address."
        )


def _is_secret_name(key: str) -> bool:
    if key in {".", ".."}:
        return False
    try:
        validate_secret_name(key)
    except ValueError:
        return False
    return True
