"""The encrypted secret vault: one JSON file, one AES-256-GCM ciphertext per secret.

File format (UTF-8 JSON, replaced atomically, mode 0600)::

    {
      "format": "mcp-connectors-vault",
      "version": 1,
      "kdf": {"source": "scrypt", "salt": "<b64>", "n": 32768, "r": 8, "p": 1}
           | {"source": "keyring"}
           | {"source": "keyfile"},
      "check": {"nonce": "<b64>", "ciphertext": "<b64>"},
      "records": {"<name>": {"nonce": "<b64>", "ciphertext": "<b64>"}, ...}
    }

Each record is sealed on its own with a fresh 12-byte nonce and its name as associated data, so reading
one secret decrypts only that one, and a ciphertext copied under another name fails to open. `check`
seals a fixed constant under fixed associated data, so a wrong key is detected on open even when the
vault holds no records. Names are stored in plaintext (listing them needs no key); values never are.

Key sources, tried in this order when a vault is created; `kdf.source` records the one used, and opening
uses exactly that one (never a silent switch to another key):

1. ``scrypt``: the passphrase from ``MCP_CONNECTORS_VAULT_KEY`` stretched with scrypt (n=2**15, r=8,
   p=1) over a random per-vault salt. Derived keys are cached per process, so scrypt runs once.
2. ``keyring``: a random 32-byte key, base64, in the OS keyring (service ``mcp-connectors``, user = the
   resolved vault path), only when a real keyring backend is available.
3. ``keyfile``: a random 32-byte key, base64, in ``<vault file name>.key`` beside the vault, created
   with mode 0600.

Writers serialise on ``<vault file name>.lock`` and re-read the file inside the lock, so concurrent
writers from several processes lose nothing; readers need no lock because the file is only ever
replaced whole with ``os.replace``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast

import keyring
import keyring.backends.fail
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from filelock import FileLock, Timeout

from mcp_server._errors import VaultCorrupted, VaultError, VaultKeyMismatch
from mcp_server._secrets import Secret

__all__ = ["KEYRING_SERVICE", "PASSPHRASE_ENV", "Vault", "validate_secret_name"]

FORMAT: Final = "mcp-connectors-vault"
VERSION: Final = 1
KEYRING_SERVICE: Final = "mcp-connectors"
PASSPHRASE_ENV: Final = "MCP_CONNECTORS_VAULT_KEY"  # noqa: S105 - the variable's name, not its value

KeySource = Literal["scrypt", "keyring", "keyfile"]

_KEY_LEN: Final = 32
_NONCE_LEN: Final = 12
_TAG_LEN: Final = 16
_SALT_LEN: Final = 16
_SCRYPT_N: Final = 2**15
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_CHECK_AAD: Final = b"mcp-connectors-vault/v1/check"
_CHECK_PLAINTEXT: Final = b"mcp-connectors-vault key check v1"
_RECORD_AAD_PREFIX: Final = b"mcp-connectors-vault/v1/record/"
_LOCK_TIMEOUT_S: Final = 60.0
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
_RESTORE: Final = (
    "Restore it from a backup, or move it aside and add the secrets again with `mcp-connectors vault set`."
)

# (resolved vault path, salt, n, r, p, SHA-256 of the passphrase) -> derived key. Hashing the passphrase
# keeps it out of the process's long-lived data structures; the key itself has to live somewhere.
_derived_keys: dict[tuple[str, bytes, int, int, int, bytes], bytes] = {}


def validate_secret_name(name: str) -> None:
    """Raise `ValueError` unless `name` is 1-128 characters from ``A-Z a-z 0-9 _ . @ -``."""
    if isinstance(name, str) and _NAME_RE.fullmatch(name) is not None:  # pyright: ignore[reportUnnecessaryIsInstance]
        return
    shown = repr(name[:64] + "…" if isinstance(name, str) and len(name) > 64 else name)  # pyright: ignore[reportUnnecessaryIsInstance]
    raise ValueError(
        f"Invalid secret name {shown}: use 1 to 128 characters from letters, digits and _ . @ - "
        "(for example `github_token`)."
    )


@dataclass(frozen=True, slots=True)
class _Sealed:
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class _Kdf:
    source: KeySource
    salt: bytes = b""
    n: int = _SCRYPT_N
    r: int = _SCRYPT_R
    p: int = _SCRYPT_P


@dataclass(frozen=True, slots=True)
class _Document:
    """One parsed vault file; never mutated, because instances are cached across calls."""

    kdf: _Kdf
    check: _Sealed
    records: dict[str, _Sealed]


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> _Sealed:
    nonce = os.urandom(_NONCE_LEN)
    return _Sealed(nonce, AESGCM(key).encrypt(nonce, plaintext, aad))


def _record_aad(name: str) -> bytes:
    return _RECORD_AAD_PREFIX + name.encode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------------------------- parsing


def _corrupted(path: Path, what: str) -> VaultCorrupted:
    return VaultCorrupted(f"Vault file {path} is corrupted: {what}. {_RESTORE}")


def _as_object(value: object, path: Path, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _corrupted(path, f"{where} is not a JSON object")
    return cast("dict[str, object]", value)


def _unb64(value: object, path: Path, where: str) -> bytes:
    if not isinstance(value, str):
        raise _corrupted(path, f"{where} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _corrupted(path, f"{where} is not valid base64") from None


def _parse_sealed(value: object, path: Path, where: str) -> _Sealed:
    obj = _as_object(value, path, where)
    nonce = _unb64(obj.get("nonce"), path, f"{where}.nonce")
    ciphertext = _unb64(obj.get("ciphertext"), path, f"{where}.ciphertext")
    if len(nonce) != _NONCE_LEN or len(ciphertext) < _TAG_LEN:
        raise _corrupted(path, f"{where} has a nonce or ciphertext of the wrong length")
    return _Sealed(nonce, ciphertext)


def _scrypt_param(kdf: dict[str, object], name: str, low: int, high: int, path: Path) -> int:
    value = kdf.get(name)
    # bool is an int subclass; `true` is not a cost parameter. The bounds stop a tampered header from
    # asking for gigabytes of memory before the key check can reject it.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _corrupted(path, f"kdf.{name} must be an integer from {low} to {high}")
    return value


def _parse_kdf(value: object, path: Path) -> _Kdf:
    kdf = _as_object(value, path, "kdf")
    source = kdf.get("source")
    if source == "scrypt":
        salt = _unb64(kdf.get("salt"), path, "kdf.salt")
        n = _scrypt_param(kdf, "n", 2, 2**20, path)
        if n & (n - 1):
            raise _corrupted(path, "kdf.n must be a power of two")
        return _Kdf("scrypt", salt, n, _scrypt_param(kdf, "r", 1, 32, path), _scrypt_param(kdf, "p", 1, 16, path))
    if source == "keyring":
        return _Kdf("keyring")
    if source == "keyfile":
        return _Kdf("keyfile")
    raise _corrupted(path, "kdf.source is not one of scrypt, keyring, keyfile")


def _parse(raw: bytes, path: Path) -> _Document:
    try:
        doc: object = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _corrupted(path, "it is not valid JSON (truncated or overwritten?)") from None
    top = _as_object(doc, path, "the file")
    if top.get("format") != FORMAT:
        raise _corrupted(path, f'it is not an mcp-connectors vault (no "format": "{FORMAT}")')
    version = top.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _corrupted(path, "its format version is missing")
    if version != VERSION:
        raise VaultCorrupted(
            f"Vault file {path} has format version {version}, but this mcp-connectors reads version {VERSION}. "
            "Open it with the mcp-connectors release that wrote it (upgrade if it is newer)."
        )
    records: dict[str, _Sealed] = {}
    for name, sealed in _as_object(top.get("records"), path, "records").items():
        try:
            validate_secret_name(name)
        except ValueError:
            raise _corrupted(path, f"it holds a record with an invalid name {name[:64]!r}") from None
        records[name] = _parse_sealed(sealed, path, f"record {name!r}")
    return _Document(_parse_kdf(top.get("kdf"), path), _parse_sealed(top.get("check"), path, "check"), records)


def _dump(doc: _Document) -> bytes:
    kdf: dict[str, object] = {"source": doc.kdf.source}
    if doc.kdf.source == "scrypt":
        kdf.update(salt=_b64(doc.kdf.salt), n=doc.kdf.n, r=doc.kdf.r, p=doc.kdf.p)
    body = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": kdf,
        "check": {"nonce": _b64(doc.check.nonce), "ciphertext": _b64(doc.check.ciphertext)},
        "records": {
            name: {"nonce": _b64(s.nonce), "ciphertext": _b64(s.ciphertext)} for name, s in sorted(doc.records.items())
        },
    }
    return json.dumps(body, indent=2).encode("utf-8") + b"\n"


# ---------------------------------------------------------------------------------------------- keyring


def _keyring_usable() -> bool:
    try:
        backend = keyring.get_keyring()
        return not isinstance(backend, keyring.backends.fail.Keyring) and float(backend.priority) > 0
    except Exception:  # any backend failure just means "no keyring"; the key file takes over
        return False


def _keyring_get(user: str) -> bytes | None:
    try:
        stored = keyring.get_password(KEYRING_SERVICE, user)
        key = base64.b64decode(stored, validate=True) if stored is not None else None
    except Exception:
        return None
    return key if key is not None and len(key) == _KEY_LEN else None


def _keyring_store(user: str, key: bytes) -> bool:
    try:
        keyring.set_password(KEYRING_SERVICE, user, _b64(key))
    except Exception:
        return False
    # Some backends accept a write they cannot read back (locked collections); trust only a round trip.
    return _keyring_get(user) == key


# ---------------------------------------------------------------------------------------------- vault


class Vault:
    """Named secrets, each encrypted separately; see the module docstring for the format and key sources.

    `passphrase` is the value of ``MCP_CONNECTORS_VAULT_KEY`` (empty counts as unset). `use_keyring=False`
    keeps the OS keyring out of both creating and opening the vault.
    """

    def __init__(self, path: Path, *, passphrase: str | None = None, use_keyring: bool = True) -> None:
        self.path: Path = Path(path)
        self._passphrase = passphrase or None
        self._use_keyring = use_keyring
        # Parsed file keyed by (st_mtime_ns, st_size, st_ino): every write os.replace()s in a new file, so
        # another process's write changes the stamp. Ciphertext only; decrypted values are never cached.
        self._parsed: tuple[tuple[int, int, int], _Document] | None = None
        # The key last verified against (kdf, check); a rewrite with the same header reuses it.
        self._verified: tuple[_Kdf, _Sealed, bytes] | None = None

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r})"

    @property
    def key_file(self) -> Path:
        return self.path.with_name(self.path.name + ".key")

    @property
    def lock_file(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    # -- public ------------------------------------------------------------------------------------

    def get(self, name: str) -> Secret | None:
        """Decrypt the one record `name`; None if it is absent or there is no vault file yet."""
        validate_secret_name(name)
        doc = self._load()
        if doc is None:
            return None
        key = self._key_for(doc)
        sealed = doc.records.get(name)
        if sealed is None:
            return None
        try:
            return Secret(AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, _record_aad(name)).decode("utf-8"))
        except (InvalidTag, UnicodeDecodeError):
            raise VaultCorrupted(
                f"Vault file {self.path} is corrupted: secret {name!r} does not decrypt (its ciphertext was "
                f"modified, or copied from another name). Set it again with `mcp-connectors vault set {name}`, "
                "or restore the file from a backup."
            ) from None

    def set(self, name: str, value: str) -> None:
        validate_secret_name(name)
        if not isinstance(value, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError("a secret value must be a str")
        with self._locked():
            doc = self._load(fresh=True)
            if doc is None:
                kdf, key = self._new_key()
                doc = _Document(kdf, _seal(key, _CHECK_PLAINTEXT, _CHECK_AAD), {})
                self._verified = (doc.kdf, doc.check, key)
            else:
                key = self._key_for(doc)
            records = {**doc.records, name: _seal(key, value.encode("utf-8"), _record_aad(name))}
            self._write(_Document(doc.kdf, doc.check, records))

    def delete(self, name: str) -> bool:
        """Remove `name`; True if it existed."""
        validate_secret_name(name)
        with self._locked():
            doc = self._load(fresh=True)
            if doc is None:
                return False
            self._key_for(doc)  # only someone who can open the vault may edit it
            if name not in doc.records:
                return False
            records = {n: s for n, s in doc.records.items() if n != name}
            self._write(_Document(doc.kdf, doc.check, records))
            return True

    def names(self) -> list[str]:
        """Sorted record names; names are stored in plaintext, so this needs no key."""
        doc = self._load()
        return sorted(doc.records) if doc is not None else []

    def check(self) -> None:
        """Read and parse the file and verify the key; raise `VaultError` on any problem.

        A missing vault file is an empty vault, not a problem.
        """
        doc = self._load()
        if doc is not None:
            self._key_for(doc)

    # -- reading -----------------------------------------------------------------------------------

    def _load(self, *, fresh: bool = False) -> _Document | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unreadable(exc) from exc
        try:
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
                cached = self._parsed
                if not fresh and cached is not None and cached[0] == stamp:
                    return cached[1]
                raw = f.read()
        except OSError as exc:
            raise self._unreadable(exc) from exc
        doc = _parse(raw, self.path)
        self._parsed = (stamp, doc)
        return doc

    def _unreadable(self, exc: OSError) -> VaultError:
        return VaultError(
            f"Cannot read vault file {self.path}: {exc.strerror or exc}. Check that it is a file you can read."
        )

    # -- keys --------------------------------------------------------------------------------------

    def _key_for(self, doc: _Document) -> bytes:
        verified = self._verified
        if verified is not None and verified[0] == doc.kdf and verified[1] == doc.check:
            return verified[2]
        key = self._stored_key(doc.kdf)
        try:
            ok = AESGCM(key).decrypt(doc.check.nonce, doc.check.ciphertext, _CHECK_AAD) == _CHECK_PLAINTEXT
        except InvalidTag:
            ok = False
        if not ok:
            raise self._wrong_key(doc.kdf.source)
        self._verified = (doc.kdf, doc.check, key)
        return key

    def _wrong_key(self, source: KeySource) -> VaultKeyMismatch:
        if source == "scrypt":
            problem = f"{PASSPHRASE_ENV} is not the passphrase it was created with"
            fix = f"Set {PASSPHRASE_ENV} to the vault's passphrase"
        elif source == "keyring":
            problem = f"the key in the OS keyring (service {KEYRING_SERVICE!r}) is not the key it was created with"
            fix = "Restore the vault's keyring entry"
        else:
            problem = f"the key file {self.key_file} is not the key it was created with"
            fix = "Restore the key file that belongs to this vault"
        return VaultKeyMismatch(
            f"Vault file {self.path} cannot be opened: {problem} (or its header was altered). {fix}; "
            "without the right key its secrets cannot be recovered."
        )

    def _stored_key(self, kdf: _Kdf) -> bytes:
        """The key an existing vault says it uses; never a different source."""
        if kdf.source == "scrypt":
            if self._passphrase is None:
                raise VaultKeyMismatch(
                    f"Vault file {self.path} is protected by a passphrase, but none was given: "
                    f"set {PASSPHRASE_ENV} to the vault's passphrase."
                )
            return self._derive(self._passphrase, kdf)
        where = "the OS keyring" if kdf.source == "keyring" else f"the key file {self.key_file}"
        if self._passphrase is not None:
            raise VaultKeyMismatch(
                f"Vault file {self.path} was created with a key in {where}, not a passphrase, but "
                f"{PASSPHRASE_ENV} is set. Unset {PASSPHRASE_ENV} to open it with {where}."
            )
        if kdf.source == "keyring":
            user = str(self.path.resolve())
            key = _keyring_get(user) if self._use_keyring else None
            if key is None:
                raise VaultKeyMismatch(
                    f"Vault file {self.path} keeps its key in the OS keyring (service {KEYRING_SERVICE!r}, "
                    f"user {user!r}), but "
                    + ("the keyring is disabled here" if not self._use_keyring else "no usable entry was found there")
                    + ". Unlock or configure the OS keyring and restore that entry."
                )
            return key
        return self._read_key_file()

    def _derive(self, passphrase: str, kdf: _Kdf) -> bytes:
        digest = hashlib.sha256(passphrase.encode("utf-8")).digest()
        cache_key = (str(self.path.resolve()), kdf.salt, kdf.n, kdf.r, kdf.p, digest)
        key = _derived_keys.get(cache_key)
        if key is None:
            key = Scrypt(salt=kdf.salt, length=_KEY_LEN, n=kdf.n, r=kdf.r, p=kdf.p).derive(passphrase.encode("utf-8"))
            _derived_keys[cache_key] = key
        return key

    def _read_key_file(self) -> bytes:
        try:
            raw = self.key_file.read_bytes()
        except FileNotFoundError:
            raise VaultKeyMismatch(
                f"Vault file {self.path} was created with the key file {self.key_file}, which is missing. "
                "Restore the key file from a backup; without it the secrets cannot be decrypted."
            ) from None
        except OSError as exc:
            raise VaultKeyMismatch(
                f"Cannot read the key file {self.key_file} of vault file {self.path}: {exc.strerror or exc}. "
                "Check that it is a file you can read."
            ) from exc
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != _KEY_LEN:
            raise VaultKeyMismatch(
                f"The key file {self.key_file} of vault file {self.path} does not hold a valid key "
                f"({_KEY_LEN} bytes, base64). Restore the key file from a backup."
            )
        return key

    def _new_key(self) -> tuple[_Kdf, bytes]:
        """Choose the key for a vault being created: passphrase, else keyring, else key file."""
        if self._passphrase is not None:
            kdf = _Kdf("scrypt", os.urandom(_SALT_LEN))
            return kdf, self._derive(self._passphrase, kdf)
        if self._use_keyring and _keyring_usable():
            user = str(self.path.resolve())
            # Reuse a leftover entry for this path rather than orphan it; otherwise store a fresh key.
            existing = _keyring_get(user)
            if existing is not None:
                return _Kdf("keyring"), existing
            key = secrets.token_bytes(_KEY_LEN)
            if _keyring_store(user, key):
                return _Kdf("keyring"), key
        return _Kdf("keyfile"), self._create_key_file()

    def _create_key_file(self) -> bytes:
        key = secrets.token_bytes(_KEY_LEN)
        # O_EXCL with mode 0600 at creation: the key is never readable by others, not even briefly.
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.key_file, flags, 0o600)
        except FileExistsError:
            # A key file without a vault (the vault was removed): keep using it rather than destroy a key.
            return self._read_key_file()
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64encode(key) + b"\n")
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self.key_file)
            raise
        return key

    # -- writing -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Generator[None]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = FileLock(self.lock_file, timeout=_LOCK_TIMEOUT_S, mode=0o600)
            lock.acquire()
        except Timeout:
            raise VaultError(
                f"Vault file {self.path} is locked by another process ({self.lock_file} held for "
                f"{_LOCK_TIMEOUT_S:.0f}s). Retry once the other `mcp-connectors` command has finished."
            ) from None
        except OSError as exc:
            raise self._unwritable(exc) from exc
        try:
            yield
        except OSError as exc:
            raise self._unwritable(exc) from exc
        finally:
            lock.release()

    def _unwritable(self, exc: OSError) -> VaultError:
        return VaultError(
            f"Could not write vault file {self.path}: {exc.strerror or exc}. The vault is unchanged; check the "
            f"free space and permissions of {self.path.parent}."
        )

    def _write(self, doc: _Document) -> None:
        data = _dump(doc)
        directory = self.path.parent
        # mkstemp creates the file 0600 in the same directory, so os.replace is an atomic rename.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory, which is fine there."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
