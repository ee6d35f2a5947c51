"""Sealed bundles for moving secrets to another machine: `vault export FILE` and `vault import FILE`.

Bundle format (UTF-8 JSON, one field per line, written atomically with mode 0600)::

    {
      "format": "mcp-connectors-vault-bundle",
      "version": 1,
      "kdf": {"name": "scrypt", "salt": "<b64, 16 bytes>", "n": 131072, "r": 8, "p": 1},
      "check": {"nonce": "<b64>", "ciphertext": "<b64>"},
      "payload": {"nonce": "<b64>", "ciphertext": "<b64>"}
    }

The bundle key is scrypt(passphrase, salt) with n=2**17, r=8, p=1: four times the vault's own cost,
because a bundle is meant to travel (mail, chat, a USB stick) and so faces offline guessing. The payload is
one AES-256-GCM ciphertext of ``{"secrets": {"<name>": "<value>", ...}}``, so the records are authenticated
as a whole: none can be dropped, swapped or replayed from another bundle. `check` seals a constant under the
same key, which tells a wrong passphrase apart from a damaged payload. Both seals take the header (format,
version, kdf, serialised canonically) as associated data, so every field is either authenticated or the
input of the key derivation. Parsing is strict as well (exact key sets, canonical base64), and the writer
puts only spaces and newlines between tokens, which no single-bit change turns into other whitespace; so
any change to the file, down to one bit, is an error and nothing is imported.

Values are decrypted from the vault only to be sealed into the bundle (export) and from the bundle only
to be sealed into the vault (import); neither is ever printed.
"""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mcp_server._errors import VaultBundleError, VaultError
from mcp_server._secrets import SecretStore
from mcp_server._vault import Vault, validate_secret_name, write_private_file

__all__ = [
    "BUNDLE_KEY_ENV",
    "ImportResult",
    "export_bundle",
    "import_bundle",
    "open_bundle",
    "read_bundle",
    "seal_bundle",
]

BUNDLE_KEY_ENV: Final = "MCP_CONNECTORS_BUNDLE_KEY"
FORMAT: Final = "mcp-connectors-vault-bundle"
VERSION: Final = 1
SCRYPT_N: Final = 2**17

_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SALT_LEN: Final = 16
_NONCE_LEN: Final = 12
_TAG_LEN: Final = 16
_KEY_LEN: Final = 32
_MAX_BUNDLE_BYTES: Final = 64 * 1024 * 1024  # far beyond any vault; stops a stray huge file being read whole
_CHECK_PLAINTEXT: Final = b"mcp-connectors-vault-bundle key check v1"
_CHECK_AAD_PREFIX: Final = b"mcp-connectors-vault-bundle/v1/check\n"
_PAYLOAD_AAD_PREFIX: Final = b"mcp-connectors-vault-bundle/v1/payload\n"
_TOP_KEYS: Final = {"format", "version", "kdf", "check", "payload"}
_KDF_KEYS: Final = {"name", "salt", "n", "r", "p"}
_SEALED_KEYS: Final = {"nonce", "ciphertext"}


@dataclass(frozen=True, slots=True)
class ImportResult:
    imported: list[str]
    """Names written to the vault, sorted."""
    skipped: list[str]
    """Names the vault already held and kept (no `overwrite`), sorted."""


# ---------------------------------------------------------------------------------------------- sealing


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=_KEY_LEN, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _header_aad(header: dict[str, object]) -> bytes:
    """The header as the seals authenticate it: canonical JSON, independent of how the file spells it."""
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> dict[str, str]:
    nonce = os.urandom(_NONCE_LEN)
    return {"nonce": _b64(nonce), "ciphertext": _b64(AESGCM(key).encrypt(nonce, plaintext, aad))}


def seal_bundle(values: dict[str, str], passphrase: str, *, n: int = SCRYPT_N) -> bytes:
    """The bundle file's bytes for `values` (name -> value) under `passphrase`."""
    if not passphrase:
        raise ValueError("the bundle passphrase is empty")
    salt = os.urandom(_SALT_LEN)
    kdf: dict[str, object] = {"name": "scrypt", "salt": _b64(salt), "n": n, "r": _SCRYPT_R, "p": _SCRYPT_P}
    header: dict[str, object] = {"format": FORMAT, "version": VERSION, "kdf": kdf}
    key = _derive(passphrase, salt, n, _SCRYPT_R, _SCRYPT_P)
    aad = _header_aad(header)
    payload = json.dumps({"secrets": values}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    body = {
        **header,
        "check": _seal(key, _CHECK_PLAINTEXT, _CHECK_AAD_PREFIX + aad),
        "payload": _seal(key, payload, _PAYLOAD_AAD_PREFIX + aad),
    }
    # One top-level field per line, with spaces only: no single-bit change turns that whitespace into
    # other whitespace (a tab would become a carriage return), so every change breaks the parse or a seal.
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in body.items()]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------- opening


def _damaged(source: Path, what: str) -> VaultBundleError:
    return VaultBundleError(
        f"Bundle {source} cannot be imported: {what}. Nothing was imported; export it again from the source vault."
    )


def _exact_object(value: object, keys: set[str], source: Path, where: str) -> dict[str, object]:
    if not isinstance(value, dict) or set(cast("dict[str, object]", value)) != keys:
        raise _damaged(source, f"{where} is not an object with exactly the fields {', '.join(sorted(keys))}")
    return cast("dict[str, object]", value)


def _unb64(value: object, source: Path, where: str) -> bytes:
    try:
        raw = binascii.a2b_base64(cast("str", value), strict_mode=True)
        canonical = binascii.b2a_base64(raw, newline=False) == cast("str", value).encode("ascii")
    except (TypeError, ValueError, AttributeError):  # not a string, not base64, not ASCII
        canonical = False
        raw = b""
    if not canonical:
        raise _damaged(source, f"{where} is not canonical base64")
    return raw


def _integer(value: object, source: Path, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _damaged(source, f"{where} is not an integer from {low} to {high}")
    return value


def _parse_kdf(value: object, source: Path) -> tuple[bytes, int, int, int]:
    kdf = _exact_object(value, _KDF_KEYS, source, "kdf")
    if kdf["name"] != "scrypt":
        raise _damaged(source, "kdf.name is not scrypt")
    salt = _unb64(kdf["salt"], source, "kdf.salt")
    # The bounds stop a damaged header from asking for gigabytes of memory before the check can reject it.
    n = _integer(kdf["n"], source, "kdf.n", 2, 2**20)
    if n & (n - 1):
        raise _damaged(source, "kdf.n is not a power of two")
    r = _integer(kdf["r"], source, "kdf.r", 1, 32)
    return salt, n, r, _integer(kdf["p"], source, "kdf.p", 1, 16)


def _parse_sealed(value: object, source: Path, where: str) -> tuple[bytes, bytes]:
    sealed = _exact_object(value, _SEALED_KEYS, source, where)
    nonce = _unb64(sealed["nonce"], source, f"{where}.nonce")
    ciphertext = _unb64(sealed["ciphertext"], source, f"{where}.ciphertext")
    if len(nonce) != _NONCE_LEN or len(ciphertext) < _TAG_LEN:
        raise _damaged(source, f"{where} has a nonce or ciphertext of the wrong length")
    return nonce, ciphertext


def _parse_secrets(plaintext: bytes, source: Path) -> dict[str, str]:
    """The decrypted payload; authenticated already, so a bad shape means a broken exporter, not tampering."""
    try:
        doc: object = json.loads(plaintext)
    except (ValueError, RecursionError):
        raise _damaged(source, "its sealed content is not JSON") from None
    secrets = _exact_object(doc, {"secrets"}, source, "the sealed content")["secrets"]
    if not isinstance(secrets, dict):
        raise _damaged(source, "its sealed content holds no secrets object")
    values: dict[str, str] = {}
    for name, value in cast("dict[str, object]", secrets).items():
        try:
            validate_secret_name(name)
        except ValueError:
            raise _damaged(source, f"it holds a secret with an invalid name {name[:64]!r}") from None
        if not isinstance(value, str):
            raise _damaged(source, f"secret {name!r} is not a string")
        values[name] = value
    return values


def open_bundle(data: bytes, passphrase: str, source: Path) -> dict[str, str]:
    """The secrets in a bundle's bytes; `VaultBundleError` on any damage or a wrong passphrase."""
    try:
        doc: object = json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _damaged(source, "it is not valid JSON (truncated or damaged?)") from None
    top = _exact_object(doc, _TOP_KEYS, source, "the file")
    if top["format"] != FORMAT:
        raise _damaged(source, f'it is not an mcp-connectors bundle (no "format": "{FORMAT}")')
    if top["version"] != VERSION or isinstance(top["version"], bool):
        raise _damaged(source, f"it has format version {top['version']!r}; this mcp-connectors reads version 1")
    salt, n, r, p = _parse_kdf(top["kdf"], source)
    check_nonce, check_ciphertext = _parse_sealed(top["check"], source, "check")
    nonce, ciphertext = _parse_sealed(top["payload"], source, "payload")
    aad = _header_aad({"format": top["format"], "version": top["version"], "kdf": top["kdf"]})
    aead = AESGCM(_derive(passphrase, salt, n, r, p))
    try:
        ok = aead.decrypt(check_nonce, check_ciphertext, _CHECK_AAD_PREFIX + aad) == _CHECK_PLAINTEXT
    except InvalidTag:
        ok = False
    if not ok:
        raise VaultBundleError(
            f"Bundle {source} cannot be opened: the passphrase is not the one it was exported with (or its "
            f"header was altered). Set {BUNDLE_KEY_ENV} to the export passphrase, or type it at the prompt. "
            "Nothing was imported."
        )
    try:
        plaintext = aead.decrypt(nonce, ciphertext, _PAYLOAD_AAD_PREFIX + aad)
    except InvalidTag:
        raise _damaged(source, "its sealed content was altered or truncated") from None
    return _parse_secrets(plaintext, source)


def read_bundle(source: Path, passphrase: str) -> dict[str, str]:
    """The secrets in the bundle file `source`."""
    try:
        with source.open("rb") as f:
            data = f.read(_MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise VaultBundleError(f"Cannot read bundle {source}: {exc.strerror or exc}. Nothing was imported.") from exc
    if len(data) > _MAX_BUNDLE_BYTES:
        raise _damaged(source, f"it is larger than {_MAX_BUNDLE_BYTES // 2**20} MiB, far more than any export")
    return open_bundle(data, passphrase, source)


# ---------------------------------------------------------------------------------------------- vault side


def export_bundle(
    vault: SecretStore, target: Path, passphrase: str, *, force: bool = False, n: int = SCRYPT_N
) -> list[str]:
    """Seal every secret of `vault` into `target`; return the names exported.

    Refuses to replace an existing `target` unless `force`; the check and the write are one atomic step.
    """
    values: dict[str, str] = {}
    for name in vault.names():
        secret = vault.get(name)
        if secret is not None:  # deleted by another process since names() was read
            values[name] = secret.reveal()
    data = seal_bundle(values, passphrase, n=n)
    try:
        write_private_file(target, data, replace=force)
    except FileExistsError:
        raise VaultError(f"{target} already exists; pass --force to replace it. Nothing was written.") from None
    except OSError as exc:
        raise VaultError(f"Could not write the bundle {target}: {exc.strerror or exc}. Nothing was written.") from exc
    return sorted(values)


def import_bundle(
    vault: SecretStore, source: Path, passphrase: str, *, overwrite: bool = False, only: Iterable[str] = ()
) -> ImportResult:
    """Add the secrets of the bundle `source` to `vault`: one atomic write for a vault file.

    A name the vault already holds keeps its value unless `overwrite`. `only` restricts the import to those
    names, each of which must be in the bundle. A store without multi-secret writes (HashiCorp Vault) gets
    one write per secret.
    """
    values = read_bundle(source, passphrase)
    wanted = sorted(set(only))
    if wanted:
        missing = [name for name in wanted if name not in values]
        if missing:
            raise VaultBundleError(
                f"Bundle {source} holds no secret named {', '.join(missing)}; nothing was imported. "
                f"It holds: {', '.join(sorted(values)) or 'no secrets'}."
            )
        values = {name: values[name] for name in wanted}
    if isinstance(vault, Vault):
        imported = vault.set_many(values, overwrite=overwrite)
    else:
        existing = set(vault.names())
        imported = sorted(name for name in values if overwrite or name not in existing)
        for name in imported:
            vault.set(name, values[name])
    return ImportResult(imported, sorted(set(values) - set(imported)))
