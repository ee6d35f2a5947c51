"""The encrypted secret vault: one JSON file, envelope encryption (a data key per secret, wrapped by the master key).

File format, version 2 (UTF-8 JSON, replaced atomically, mode 0600)::

    {
      "format": "mcp-connectors-vault",
      "version": 2,
      "kdf": {"source": "scrypt", "salt": "<b64>", "n": 32768, "r": 8, "p": 1}
           | {"source": "keyring"}
           | {"source": "keyfile"},
      "generation": 3,                                   # bumped by every master-key rotation
      "check": {"nonce": "<b64>", "ciphertext": "<b64>"},
      "records": {
        "<name>": {
          "key":   {"nonce": "<b64>", "ciphertext": "<b64>"},   # the data key, wrapped by the master key
          "value": {"nonce": "<b64>", "ciphertext": "<b64>"}    # the value, sealed by the data key
        }, ...
      }
    }

    master key ──AES-256-GCM(aad = ".../v2/data-key/<name>")──▶ record.key   (32-byte random data key)
    data key   ──AES-256-GCM(aad = ".../v2/value/<name>")─────▶ record.value (the secret, UTF-8)

Every record has its own random 256-bit data key, made afresh by every `set`, so each data key seals
exactly one value and its random nonce can never repeat under it. The value is sealed with AES-256-GCM
under that data key, and the data key is wrapped with AES-256-GCM under the master key; both seals take the
record's name as associated data, so a record (or just its wrapped key, or just its value) copied under
another name fails to open. The two associated-data prefixes differ, so a wrapped key cannot stand in for
a value either. AES-GCM rather than AES key wrap (RFC 3394/5649) for the data key: key wrap has no
associated data, and binding the name to the wrapped key is the point; GCM with a fresh random nonce per
wrap is also the one primitive the file already uses. Rotating the master key re-wraps 48-byte data keys
and never touches a value, which is what envelope encryption buys.

`check` seals a fixed constant under the master key with the generation as associated data, so a wrong key
is detected on open even when the vault holds no records, and the generation cannot be altered unnoticed.
Names are stored in plaintext (listing them needs no key); values never are. Records are authenticated one
by one, not the file as a whole: someone who can write the file can delete a record or put back an older
copy of one (same name, same master key) without it being detected; they cannot read or forge a value.

Version 1 (what earlier releases wrote) had no data keys: ``"records": {"<name>": {"nonce", "ciphertext"}}``
sealed directly under the master key with associated data ``mcp-connectors-vault/v1/record/<name>``, a
``v1/check`` check record and no ``generation``. Version-1 files are read as they are. The first write
(``set``, ``delete``, an import, or ``rotate-key``) migrates the whole file to version 2 in that one atomic
write: each version-1 value is decrypted once and re-sealed under a fresh data key. A version-1 record
that no longer decrypts stops the migration with an error naming it (set or delete that record first).

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

Master-key rotation (`Vault.rotate_key`) holds the writer lock throughout and runs in steps, each of which
is atomic on its own (a rename, or a keyring entry written and read back)::

    keyfile / keyring vault                          what a SIGKILL right after the step leaves
    0. re-wrap every data key in memory              nothing changed
    1. stage the new key: <vault>.key.next (0600,    file and <vault>.key still old: opens with the old
       written to a temp file and renamed) or the    key; the staged key is unused and is replaced by
       keyring entry "<path>#next"                   the next rotation
    2. replace the vault file: data keys wrapped by  file under the new key, <vault>.key still old: opening
       the new key, new check, generation + 1        tries the primary key, then the staged one, which
                                                     matches the check, so everything still opens; a
                                                     re-run of rotate-key only finishes step 3
    3. promote: rename <vault>.key.next over         done; the old key no longer opens the vault
       <vault>.key / write the keyring entry, then
       delete "<path>#next"

    scrypt vault (or switching to a passphrase)
    1. replace the vault file: new random salt,      the new key is a function of the new passphrase and
       key derived from the new passphrase, data     the salt written in this same atomic write, so there
       keys re-wrapped, new check, generation + 1    is nothing to stage: before the rename the old
                                                     passphrase opens the vault, after it the new one does
    2. delete the key file / keyring entries the     leftovers of the old source are unused; a re-run
       vault no longer uses (switch only)            given the new passphrase sees that it already opens
                                                     the vault, deletes them and reports completion

Temporary files of writers killed mid-write (``.<vault file name>.XXXXXXXX.tmp``) are never read; a
rotation removes them, since under the lock no other writer can own one. The lock file is never removed
(removing a lock file other processes may be waiting on breaks the lock). A reader that races a promotion
(it read the old primary key, then found no staged key because it had just been renamed) reads the
primary key once more before reporting a wrong key; one that read the file just before a rotation
replaced it and the key files just after reads the file again.
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
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final, Literal, NamedTuple, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from filelock import FileLock, Timeout

from mcp_server._errors import VaultCorrupted, VaultError, VaultKeyMismatch
from mcp_server._secrets import Secret

__all__ = [
    "KEYRING_SERVICE",
    "PASSPHRASE_ENV",
    "KeySource",
    "Rotation",
    "Vault",
    "validate_secret_name",
    "write_private_file",
]

FORMAT: Final = "mcp-connectors-vault"
VERSION: Final = 2
KEYRING_SERVICE: Final = "mcp-connectors"
PASSPHRASE_ENV: Final = "MCP_CONNECTORS_VAULT_KEY"  # noqa: S105 - the variable's name, not its value

KeySource = Literal["scrypt", "keyring", "keyfile"]

_KEY_LEN: Final = 32
_NONCE_LEN: Final = 12
_TAG_LEN: Final = 16
_WRAPPED_KEY_LEN: Final = _KEY_LEN + _TAG_LEN
_SALT_LEN: Final = 16
_SCRYPT_N: Final = 2**15
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_MAX_GENERATION: Final = 2**53  # JSON numbers beyond this lose precision in other readers
_V1_CHECK_AAD: Final = b"mcp-connectors-vault/v1/check"
_V1_CHECK_PLAINTEXT: Final = b"mcp-connectors-vault key check v1"
_V1_RECORD_AAD_PREFIX: Final = b"mcp-connectors-vault/v1/record/"
_CHECK_AAD_PREFIX: Final = b"mcp-connectors-vault/v2/check/generation="
_CHECK_PLAINTEXT: Final = b"mcp-connectors-vault key check v2"
_WRAP_AAD_PREFIX: Final = b"mcp-connectors-vault/v2/data-key/"
_VALUE_AAD_PREFIX: Final = b"mcp-connectors-vault/v2/value/"
_STAGED_SUFFIX: Final = "#next"
_LOCK_TIMEOUT_S: Final = 60.0
_READ_RETRIES: Final = 3  # re-reads of a file a rotation replaced while we read it (see _open_for_reading)
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


# NamedTuples rather than frozen dataclasses for the two types built once per record on every load: they
# are immutable all the same and several times cheaper to construct.


class _Sealed(NamedTuple):
    nonce: bytes
    ciphertext: bytes


class _Record(NamedTuple):
    """One secret. `wrapped_key` is None only for a version-1 record, whose value is sealed by the master key."""

    value: _Sealed
    wrapped_key: _Sealed | None
    text: tuple[str, str, str, str] | None = None
    """The base64 fields (key nonce, key ciphertext, value nonce, value ciphertext) as the file spells them:
    the next load reuses this record when they are unchanged, and a write copies them out as they are."""


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

    version: int
    kdf: _Kdf
    generation: int
    check: _Sealed
    records: Mapping[str, _Record]

    @property
    def header(self) -> tuple[int, _Kdf, int, _Sealed]:
        """What decides which master key opens the file."""
        return (self.version, self.kdf, self.generation, self.check)


@dataclass(frozen=True, slots=True)
class Rotation:
    """What `Vault.rotate_key` did."""

    records: int
    source: KeySource
    generation: int
    resumed: bool
    """True when an interrupted rotation was completed instead of a new key being made."""


# ---------------------------------------------------------------------------------------------- crypto


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> _Sealed:
    nonce = os.urandom(_NONCE_LEN)
    return _Sealed(nonce, AESGCM(key).encrypt(nonce, plaintext, aad))


def _unseal(key: bytes, sealed: _Sealed, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, aad)


def _check_aad(generation: int) -> bytes:
    return _CHECK_AAD_PREFIX + str(generation).encode("ascii")


def _new_check(key: bytes, generation: int) -> _Sealed:
    return _seal(key, _CHECK_PLAINTEXT, _check_aad(generation))


def _opens(doc: _Document, key: bytes) -> bool:
    """Whether `key` is the master key of `doc`, judged by its check record alone."""
    if doc.version == 1:
        aad, expected = _V1_CHECK_AAD, _V1_CHECK_PLAINTEXT
    else:
        aad, expected = _check_aad(doc.generation), _CHECK_PLAINTEXT
    try:
        return _unseal(key, doc.check, aad) == expected
    except InvalidTag:
        return False


def _make_record(value: _Sealed, wrapped_key: _Sealed) -> _Record:
    text = (_b64(wrapped_key.nonce), _b64(wrapped_key.ciphertext), _b64(value.nonce), _b64(value.ciphertext))
    return _Record(value, wrapped_key, text)


def _new_record(master: bytes, name: str, plaintext: bytes) -> _Record:
    data_key = secrets.token_bytes(_KEY_LEN)
    value = _seal(data_key, plaintext, _VALUE_AAD_PREFIX + name.encode("ascii"))
    return _make_record(value, _seal(master, data_key, _WRAP_AAD_PREFIX + name.encode("ascii")))


def _unwrap(master: bytes, name: str, wrapped: _Sealed) -> bytes:
    return _unseal(master, wrapped, _WRAP_AAD_PREFIX + name.encode("ascii"))


def _open_record(master: bytes, name: str, record: _Record) -> bytes:
    """The plaintext of one record; raises `InvalidTag` when anything about it was altered."""
    if record.wrapped_key is None:
        return _unseal(master, record.value, _V1_RECORD_AAD_PREFIX + name.encode("ascii"))
    data_key = _unwrap(master, name, record.wrapped_key)
    return _unseal(data_key, record.value, _VALUE_AAD_PREFIX + name.encode("ascii"))


def _rewrap(old: bytes, new: bytes, name: str, record: _Record) -> _Record:
    """`record` under the master key `new`: the data key is re-wrapped, the value is left as it is.

    A version-1 record has no data key yet, so it is decrypted once and sealed under a fresh one.
    """
    if record.wrapped_key is None:
        return _new_record(new, name, _open_record(old, name, record))
    data_key = _unwrap(old, name, record.wrapped_key)
    return _make_record(record.value, _seal(new, data_key, _WRAP_AAD_PREFIX + name.encode("ascii")))


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


# ---------------------------------------------------------------------------------------------- parsing


def _corrupted(path: Path, what: str) -> VaultCorrupted:
    return VaultCorrupted(f"Vault file {path} is corrupted: {what}. {_RESTORE}")


def _as_object(value: object, path: Path, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _corrupted(path, f"{where} is not a JSON object")
    return cast("dict[str, object]", value)


def _unb64(value: object, path: Path, where: str) -> bytes:
    # binascii directly: this runs four times per record on every load, and base64's wrappers triple its cost.
    if not isinstance(value, str):
        raise _corrupted(path, f"{where} is not a base64 string")
    try:
        raw = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _corrupted(path, f"{where} is not valid base64") from None
    # Decoding ignores the unused low bits of the last character; only the one canonical spelling is
    # accepted, so no change to the file's text goes unnoticed.
    if binascii.b2a_base64(raw, newline=False) != value.encode("ascii"):
        raise _corrupted(path, f"{where} is not canonical base64")
    return raw


def _parse_sealed(value: object, path: Path, where: str, *, length: int | None = None) -> _Sealed:
    obj = _as_object(value, path, where)
    nonce = _unb64(obj.get("nonce"), path, f"{where}.nonce")
    ciphertext = _unb64(obj.get("ciphertext"), path, f"{where}.ciphertext")
    if len(nonce) != _NONCE_LEN or len(ciphertext) < _TAG_LEN or (length is not None and len(ciphertext) != length):
        raise _corrupted(path, f"{where} has a nonce or ciphertext of the wrong length")
    return _Sealed(nonce, ciphertext)


def _record_text(entry: object) -> tuple[str, str, str, str] | None:
    """The four base64 fields of a version-2 record entry, unchecked; None when they are not all there."""
    try:
        obj = cast("dict[str, dict[str, str]]", entry)
        key, value = obj["key"], obj["value"]
        return (key["nonce"], key["ciphertext"], value["nonce"], value["ciphertext"])
    except (TypeError, KeyError):
        return None


def _unb64_quickly(text: str) -> bytes | None:
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (TypeError, ValueError):  # binascii.Error is a ValueError
        return None
    return raw if binascii.b2a_base64(raw, newline=False) == text.encode("ascii") else None


def _parse_record(entry: object, path: Path, name: str, version: int) -> _Record:
    """One record: the well-formed case takes a short path, anything else the careful one that explains."""
    record = _parse_record_quickly(entry) if version == VERSION else None
    return record if record is not None else _parse_record_carefully(entry, path, name, version)


def _parse_record_quickly(entry: object) -> _Record | None:
    text = _record_text(entry)
    if text is None:
        return None
    key_nonce, key_ciphertext, value_nonce, value_ciphertext = map(_unb64_quickly, text)
    if (
        key_nonce is None
        or key_ciphertext is None
        or value_nonce is None
        or value_ciphertext is None
        or len(key_nonce) != _NONCE_LEN
        or len(key_ciphertext) != _WRAPPED_KEY_LEN
        or len(value_nonce) != _NONCE_LEN
        or len(value_ciphertext) < _TAG_LEN
    ):
        return None
    return _Record(_Sealed(value_nonce, value_ciphertext), _Sealed(key_nonce, key_ciphertext), text)


def _parse_record_carefully(entry: object, path: Path, name: str, version: int) -> _Record:
    where = f"record {name!r}"
    if version == 1:
        return _Record(_parse_sealed(entry, path, where), None)
    obj = _as_object(entry, path, where)
    wrapped = _parse_sealed(obj.get("key"), path, f"{where}.key", length=_WRAPPED_KEY_LEN)
    return _Record(_parse_sealed(obj.get("value"), path, f"{where}.value"), wrapped, _record_text(entry))


def _parse_records(value: object, path: Path, version: int, previous: Mapping[str, _Record]) -> dict[str, _Record]:
    """All records; one whose text is as in `previous` (the last load of this file) is reused as it is."""
    records: dict[str, _Record] = {}
    for name, entry in _as_object(value, path, "records").items():
        known = previous.get(name)
        if known is not None and known.text is not None and _record_text(entry) == known.text:
            records[name] = known
            continue
        try:
            validate_secret_name(name)
        except ValueError:
            raise _corrupted(path, f"it holds a record with an invalid name {name[:64]!r}") from None
        records[name] = _parse_record(entry, path, name, version)
    return records


def _int_field(value: object, path: Path, where: str, low: int, high: int) -> int:
    # bool is an int subclass; `true` is not a number here.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _corrupted(path, f"{where} must be an integer from {low} to {high}")
    return value


def _parse_kdf(value: object, path: Path) -> _Kdf:
    kdf = _as_object(value, path, "kdf")
    source = kdf.get("source")
    if source == "scrypt":
        salt = _unb64(kdf.get("salt"), path, "kdf.salt")
        # The bounds stop a tampered header from asking for gigabytes of memory before the check rejects it.
        n = _int_field(kdf.get("n"), path, "kdf.n", 2, 2**20)
        if n & (n - 1):
            raise _corrupted(path, "kdf.n must be a power of two")
        r = _int_field(kdf.get("r"), path, "kdf.r", 1, 32)
        return _Kdf("scrypt", salt, n, r, _int_field(kdf.get("p"), path, "kdf.p", 1, 16))
    if source == "keyring":
        return _Kdf("keyring")
    if source == "keyfile":
        return _Kdf("keyfile")
    raise _corrupted(path, "kdf.source is not one of scrypt, keyring, keyfile")


def _parse_version(top: dict[str, object], path: Path) -> int:
    version = top.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _corrupted(path, "its format version is missing")
    if version not in (1, VERSION):
        raise VaultCorrupted(
            f"Vault file {path} has format version {version}, but this mcp-connectors reads versions 1 and "
            f"{VERSION}. Open it with the mcp-connectors release that wrote it (upgrade if it is newer)."
        )
    return version


def _parse(raw: bytes, path: Path, previous: _Document | None = None) -> _Document:
    try:
        doc: object = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _corrupted(path, "it is not valid JSON (truncated or overwritten?)") from None
    top = _as_object(doc, path, "the file")
    if top.get("format") != FORMAT:
        raise _corrupted(path, f'it is not an mcp-connectors vault (no "format": "{FORMAT}")')
    version = _parse_version(top, path)
    generation = 1 if version == 1 else _int_field(top.get("generation"), path, "generation", 1, _MAX_GENERATION)
    same_version = previous is not None and previous.version == version == VERSION
    reusable: Mapping[str, _Record] = previous.records if previous is not None and same_version else {}
    records = _parse_records(top.get("records"), path, version, reusable)
    check = _parse_sealed(top.get("check"), path, "check")
    return _Document(version, _parse_kdf(top.get("kdf"), path), generation, check, records)


def _sealed_json(sealed: _Sealed) -> dict[str, str]:
    return {"nonce": _b64(sealed.nonce), "ciphertext": _b64(sealed.ciphertext)}


def _dump(doc: _Document) -> bytes:
    """Serialise a version-2 document (writes always produce version 2), one record per line.

    Laid out by hand: every write rewrites every record, and `json.dumps(indent=...)` (the pure-Python
    encoder) or even one `json.dumps` per record made that the slowest part of a write.
    """
    kdf: dict[str, object] = {"source": doc.kdf.source}
    if doc.kdf.source == "scrypt":
        kdf.update(salt=_b64(doc.kdf.salt), n=doc.kdf.n, r=doc.kdf.r, p=doc.kdf.p)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": kdf,
        "generation": doc.generation,
        "check": _sealed_json(doc.check),
    }
    lines = ["{", *(f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in header.items()), '  "records": {']
    entries: list[str] = []
    for name, record in sorted(doc.records.items()):
        assert record.text is not None, "version-1 records are migrated before any write"
        key_nonce, key_ciphertext, value_nonce, value_ciphertext = record.text
        # Names (validate_secret_name) and base64 contain nothing JSON would escape.
        entries.append(
            f'    "{name}": {{"key": {{"nonce": "{key_nonce}", "ciphertext": "{key_ciphertext}"}}, '
            f'"value": {{"nonce": "{value_nonce}", "ciphertext": "{value_ciphertext}"}}}}'
        )
    if entries:
        lines.append(",\n".join(entries))
    lines += ["  }", "}", ""]
    return "\n".join(lines).encode("utf-8")


# ---------------------------------------------------------------------------------------------- keyring


def _keyring_usable() -> bool:
    # Imported here: keyring and its backends' discovery cost ~12 ms and ~2 MB, and a passphrase or key-file
    # vault never needs them.
    import keyring
    import keyring.backends.fail

    try:
        backend = keyring.get_keyring()
        return not isinstance(backend, keyring.backends.fail.Keyring) and float(backend.priority) > 0
    except Exception:  # any backend failure just means "no keyring"; the key file takes over
        return False


def _keyring_get(user: str) -> bytes | None:
    import keyring

    try:
        stored = keyring.get_password(KEYRING_SERVICE, user)
        key = base64.b64decode(stored, validate=True) if stored is not None else None
    except Exception:
        return None
    return key if key is not None and len(key) == _KEY_LEN else None


def _keyring_store(user: str, key: bytes) -> bool:
    import keyring

    try:
        keyring.set_password(KEYRING_SERVICE, user, _b64(key))
    except Exception:
        return False
    # Some backends accept a write they cannot read back (locked collections); trust only a round trip.
    return _keyring_get(user) == key


def _keyring_delete(user: str) -> None:
    import keyring

    with contextlib.suppress(Exception):  # absent, or no backend: either way the entry is not there
        keyring.delete_password(KEYRING_SERVICE, user)


# ---------------------------------------------------------------------------------------------- files


def write_private_file(target: Path, data: bytes, *, replace: bool = True) -> None:
    """Write `data` to `target` atomically, mode 0600.

    The data goes to a temporary file in the same directory (mkstemp creates it 0600), is fsynced, and is
    then renamed over `target` (`replace`), or hard-linked to `target`, which raises `FileExistsError`
    when `target` exists, so creating never clobbers.
    """
    directory = target.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, target)
        else:
            _link_no_clobber(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not replace:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _fsync_dir(directory)


def _link_no_clobber(tmp: str, target: Path) -> None:
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        # Some file systems have no hard links: fall back to check-then-rename, atomic for the content.
        if target.exists():
            raise FileExistsError(target) from None
        os.replace(tmp, target)


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


# ---------------------------------------------------------------------------------------------- vault


class Vault:
    """Named secrets, each under its own data key; see the module docstring for the format and key sources.

    `passphrase` is the value of ``MCP_CONNECTORS_VAULT_KEY`` (empty counts as unset). `use_keyring=False`
    keeps the OS keyring out of both creating and opening the vault.
    """

    remote: ClassVar[bool] = False
    """A local file; a backend that keeps secrets on a server says True."""

    def __init__(self, path: Path, *, passphrase: str | None = None, use_keyring: bool = True) -> None:
        self.path: Path = Path(path)
        self._passphrase = passphrase or None
        self._use_keyring = use_keyring
        # The last file read: its (st_mtime_ns, st_size, st_ino), its bytes and their parse. Every write
        # os.replace()s in a new file, so another process's write changes the stamp; writers compare the bytes
        # too, since an inode number can be reused within one mtime tick. Ciphertext only: decrypted values
        # are never cached.
        self._parsed: tuple[tuple[int, int, int], bytes, _Document] | None = None
        # The master key last verified against a header, and whether it was the staged one.
        self._verified: tuple[tuple[int, _Kdf, int, _Sealed], bytes, bool] | None = None

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r})"

    def describe(self) -> str:
        """Where the secrets live, for messages: ``vault file /path/vault.json``."""
        return f"vault file {self.path}"

    @property
    def key_file(self) -> Path:
        return self.path.with_name(self.path.name + ".key")

    @property
    def staged_key_file(self) -> Path:
        """The next master key while a rotation is in progress (keyfile vaults)."""
        return self.path.with_name(self.path.name + ".key.next")

    @property
    def lock_file(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    # -- public ------------------------------------------------------------------------------------

    def get(self, name: str) -> Secret | None:
        """Decrypt the one record `name`; None if it is absent or there is no vault file yet."""
        validate_secret_name(name)
        opened = self._open_for_reading()
        if opened is None:
            return None
        doc, key = opened
        record = doc.records.get(name)
        if record is None:
            return None
        return Secret(self._decrypt(key, name, record))

    def set(self, name: str, value: str) -> None:
        validate_secret_name(name)
        if not isinstance(value, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError("a secret value must be a str")
        self.set_many({name: value})

    def set_many(self, values: Mapping[str, str], *, overwrite: bool = True) -> list[str]:
        """Store several secrets in one atomic write; return the sorted names actually written.

        With `overwrite=False` a name the vault already holds keeps its value and is left out of the result.
        """
        for name, value in values.items():
            validate_secret_name(name)
            if not isinstance(value, str):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError("a secret value must be a str")
        with self._locked():
            doc, key = self._load_for_write(create=bool(values))
            if doc is None:
                return []
            chosen = sorted(n for n in values if overwrite or n not in doc.records)
            if not chosen:
                return []
            fresh = {n: _new_record(key, n, values[n].encode("utf-8")) for n in chosen}
            self._write(doc, key, {**doc.records, **fresh})
            return chosen

    def delete(self, name: str) -> bool:
        """Remove `name`; True if it existed."""
        validate_secret_name(name)
        with self._locked():
            doc, key = self._load_for_write(create=False)
            if doc is None or name not in doc.records:
                return False
            self._write(doc, key, {n: r for n, r in doc.records.items() if n != name})
            return True

    def names(self) -> list[str]:
        """Sorted record names; names are stored in plaintext, so this needs no key."""
        doc = self._load()
        return sorted(doc.records) if doc is not None else []

    def key_source(self) -> KeySource | None:
        """Where the master key comes from (read from the file, no key needed); None without a vault file."""
        doc = self._load()
        return doc.kdf.source if doc is not None else None

    def check(self) -> None:
        """Read and parse the file and verify the key; raise `VaultError` on any problem.

        A missing vault file is an empty vault, not a problem.
        """
        self._open_for_reading()

    def rotate_key(self, *, new_passphrase: str | None = None) -> Rotation:
        """Replace the master key, re-wrapping every data key; values are not re-encrypted.

        Keyring and key-file vaults get a new random key in the same place. `new_passphrase` switches to (or,
        for a passphrase vault, is required for) a key derived with scrypt from it. Completes an interrupted
        rotation instead when it finds one; see the module docstring for the crash windows.
        """
        if new_passphrase == "":
            raise ValueError("the new passphrase is empty")
        with self._locked():
            self._remove_stale_temp_files()
            doc = self._load(fresh=True)
            if doc is None:
                raise VaultError(f"There is no vault file at {self.path}, so there is no key to rotate.")
            self._verified = None  # decide from the key files as they are now, not from an earlier open
            try:
                key, staged = self._find_key(doc)
            except VaultKeyMismatch:
                if new_passphrase is not None and self._already_under(doc, new_passphrase):
                    self._passphrase = new_passphrase
                    self._discard_keys_of_other_sources()
                    return Rotation(len(doc.records), "scrypt", doc.generation, resumed=True)
                raise
            if staged:
                self._promote_staged(doc.kdf)
                return Rotation(len(doc.records), doc.kdf.source, doc.generation, resumed=True)
            if new_passphrase is not None:
                return self._rotate_to_passphrase(doc, key, new_passphrase)
            if doc.kdf.source == "scrypt":
                raise ValueError("a passphrase vault needs the new passphrase to rotate its key")
            return self._rotate_stored_key(doc, key)

    # -- reading -----------------------------------------------------------------------------------

    def _load(self, *, fresh: bool = False) -> _Document | None:
        cached = self._parsed
        if not fresh and cached is not None:
            # Every call reads the vault; an unchanged file costs one stat(), not an open, fstat and close.
            try:
                st = os.stat(self.path)
            except OSError:
                pass  # gone or unreadable: the open below reports it
            else:
                if (st.st_mtime_ns, st.st_size, st.st_ino) == cached[0]:
                    return cached[2]
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
                    return cached[2]
                raw = f.read()
        except OSError as exc:
            raise self._unreadable(exc) from exc
        if cached is not None and cached[1] == raw:
            doc = cached[2]
        else:
            doc = _parse(raw, self.path, cached[2] if cached is not None else None)
        self._parsed = (stamp, raw, doc)
        return doc

    def _open_for_reading(self) -> tuple[_Document, bytes] | None:
        """The current document and its master key, for readers, who take no lock."""
        doc = self._load()
        for _ in range(_READ_RETRIES):
            if doc is None:
                return None
            try:
                return doc, self._key_for(doc)
            except VaultKeyMismatch:
                # A rotation may have replaced the file and promoted its key between our reading the one
                # and the other, leaving us the old file and only the new key: judge the file as it is now.
                again = self._load(fresh=True)
                if again is not None and again.header == doc.header:
                    raise
                doc = again
        return (doc, self._key_for(doc)) if doc is not None else None

    def _unreadable(self, exc: OSError) -> VaultError:
        return VaultError(
            f"Cannot read vault file {self.path}: {exc.strerror or exc}. Check that it is a file you can read."
        )

    def _decrypt(self, key: bytes, name: str, record: _Record) -> str:
        try:
            return _open_record(key, name, record).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise self._undecryptable(name) from None

    def _undecryptable(self, name: str) -> VaultCorrupted:
        return VaultCorrupted(
            f"Vault file {self.path} is corrupted: secret {name!r} does not decrypt (its ciphertext or "
            f"wrapped key was modified, or copied from another name). Set it again with "
            f"`mcp-connectors vault set {name}` or delete it, or restore the file from a backup."
        )

    def _rewrap_named(self, old: bytes, new: bytes, name: str, record: _Record) -> _Record:
        try:
            return _rewrap(old, new, name, record)
        except InvalidTag:
            raise self._undecryptable(name) from None

    # -- keys --------------------------------------------------------------------------------------

    def _key_for(self, doc: _Document) -> bytes:
        return self._find_key(doc)[0]

    def _find_key(self, doc: _Document) -> tuple[bytes, bool]:
        """The master key of `doc` and whether it is the staged one (a rotation stopped before promoting)."""
        verified = self._verified
        if verified is not None and verified[0] == doc.header:
            return verified[1], verified[2]
        found = self._try_keys(doc)
        self._verified = (doc.header, *found)
        return found

    def _try_keys(self, doc: _Document) -> tuple[bytes, bool]:
        self._require_configured(doc.kdf)
        problem: VaultKeyMismatch | None = None
        try:
            primary: bytes | None = self._stored_key(doc.kdf)
        except VaultKeyMismatch as exc:
            primary, problem = None, exc
        if primary is not None and _opens(doc, primary):
            return primary, False
        staged = self._staged_key(doc.kdf)
        if staged is not None and _opens(doc, staged):
            return staged, True
        if doc.kdf.source != "scrypt":
            # A concurrent rotation may have promoted the staged key between the two reads above.
            with contextlib.suppress(VaultKeyMismatch):
                again = self._stored_key(doc.kdf)
                if again != primary and _opens(doc, again):
                    return again, False
        raise problem or self._wrong_key(doc.kdf.source)

    def _already_under(self, doc: _Document, passphrase: str) -> bool:
        """Whether a passphrase vault already opens with `passphrase` (an earlier rotation got that far)."""
        return doc.kdf.source == "scrypt" and _opens(doc, self._derive(passphrase, doc.kdf))

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

    def _require_configured(self, kdf: _Kdf) -> None:
        """Refuse a configuration that names a different key source than the vault uses."""
        if kdf.source == "scrypt":
            if self._passphrase is None:
                raise VaultKeyMismatch(
                    f"Vault file {self.path} is protected by a passphrase, but none was given: "
                    f"set {PASSPHRASE_ENV} to the vault's passphrase."
                )
            return
        if self._passphrase is not None:
            where = "the OS keyring" if kdf.source == "keyring" else f"the key file {self.key_file}"
            raise VaultKeyMismatch(
                f"Vault file {self.path} was created with a key in {where}, not a passphrase, but "
                f"{PASSPHRASE_ENV} is set. Unset {PASSPHRASE_ENV} to open it with {where}."
            )

    def _stored_key(self, kdf: _Kdf) -> bytes:
        """The current key from the source the vault names; never a different source."""
        if kdf.source == "scrypt":
            assert self._passphrase is not None  # _require_configured ran first
            return self._derive(self._passphrase, kdf)
        if kdf.source == "keyring":
            user = self._keyring_user()
            key = _keyring_get(user) if self._use_keyring else None
            if key is None:
                raise VaultKeyMismatch(
                    f"Vault file {self.path} keeps its key in the OS keyring (service {KEYRING_SERVICE!r}, "
                    f"user {user!r}), but "
                    + ("the keyring is disabled here" if not self._use_keyring else "no usable entry was found there")
                    + ". Unlock or configure the OS keyring and restore that entry."
                )
            return key
        return self._read_key_file(self.key_file)

    def _staged_key(self, kdf: _Kdf) -> bytes | None:
        """The key a rotation staged and may not have promoted yet; None when there is none."""
        if kdf.source == "keyring":
            return _keyring_get(self._keyring_user() + _STAGED_SUFFIX) if self._use_keyring else None
        if kdf.source == "keyfile":
            try:
                return self._read_key_file(self.staged_key_file)
            except VaultKeyMismatch:  # absent or unreadable: a staged key only ever helps, never hurts
                return None
        return None

    def _keyring_user(self) -> str:
        return str(self.path.resolve())

    def _derive(self, passphrase: str, kdf: _Kdf) -> bytes:
        digest = hashlib.sha256(passphrase.encode("utf-8")).digest()
        cache_key = (str(self.path.resolve()), kdf.salt, kdf.n, kdf.r, kdf.p, digest)
        key = _derived_keys.get(cache_key)
        if key is None:
            key = Scrypt(salt=kdf.salt, length=_KEY_LEN, n=kdf.n, r=kdf.r, p=kdf.p).derive(passphrase.encode("utf-8"))
            _derived_keys[cache_key] = key
        return key

    def _read_key_file(self, key_file: Path) -> bytes:
        try:
            raw = key_file.read_bytes()
        except FileNotFoundError:
            raise VaultKeyMismatch(
                f"Vault file {self.path} was created with the key file {key_file}, which is missing. "
                "Restore the key file from a backup; without it the secrets cannot be decrypted."
            ) from None
        except OSError as exc:
            raise VaultKeyMismatch(
                f"Cannot read the key file {key_file} of vault file {self.path}: {exc.strerror or exc}. "
                "Check that it is a file you can read."
            ) from exc
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != _KEY_LEN:
            raise VaultKeyMismatch(
                f"The key file {key_file} of vault file {self.path} does not hold a valid key "
                f"({_KEY_LEN} bytes, base64). Restore the key file from a backup."
            )
        return key

    def _new_key(self) -> tuple[_Kdf, bytes]:
        """Choose the key for a vault being created: passphrase, else keyring, else key file."""
        if self._passphrase is not None:
            kdf = _Kdf("scrypt", os.urandom(_SALT_LEN))
            return kdf, self._derive(self._passphrase, kdf)
        if self._use_keyring and _keyring_usable():
            user = self._keyring_user()
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
        try:
            # Written whole and linked into place: a crash never leaves a half-written key file behind.
            write_private_file(self.key_file, base64.b64encode(key) + b"\n", replace=False)
        except FileExistsError:
            # A key file without a vault (the vault was removed): keep using it rather than destroy a key.
            return self._read_key_file(self.key_file)
        return key

    # -- rotation ----------------------------------------------------------------------------------

    def _rotate_stored_key(self, doc: _Document, old: bytes) -> Rotation:
        new = secrets.token_bytes(_KEY_LEN)
        rotated = self._rewrapped(doc, old, new, doc.kdf)  # first, so a bad record stops us before any change
        self._stage(doc.kdf, new)
        self._write_document(rotated)
        self._verified = (rotated.header, new, True)
        self._promote_staged(doc.kdf)
        self._verified = (rotated.header, new, False)
        return Rotation(len(rotated.records), rotated.kdf.source, rotated.generation, resumed=False)

    def _rotate_to_passphrase(self, doc: _Document, old: bytes, passphrase: str) -> Rotation:
        kdf = _Kdf("scrypt", os.urandom(_SALT_LEN))
        new = self._derive(passphrase, kdf)
        rotated = self._rewrapped(doc, old, new, kdf)
        self._write_document(rotated)
        self._passphrase = passphrase
        self._verified = (rotated.header, new, False)
        if doc.kdf.source != "scrypt":  # a switch: the key file or keyring entry opened this vault until now
            self._discard_keys_of_other_sources()
        return Rotation(len(rotated.records), "scrypt", rotated.generation, resumed=False)

    def _rewrapped(self, doc: _Document, old: bytes, new: bytes, kdf: _Kdf) -> _Document:
        records = {name: self._rewrap_named(old, new, name, record) for name, record in doc.records.items()}
        generation = doc.generation + 1
        return _Document(VERSION, kdf, generation, _new_check(new, generation), records)

    def _stage(self, kdf: _Kdf, key: bytes) -> None:
        if kdf.source == "keyfile":
            write_private_file(self.staged_key_file, base64.b64encode(key) + b"\n")
            return
        if not _keyring_store(self._keyring_user() + _STAGED_SUFFIX, key):
            raise VaultError(
                f"Could not store the new key of vault file {self.path} in the OS keyring; the vault is "
                "unchanged. Unlock the keyring and run `mcp-connectors vault rotate-key` again."
            )

    def _promote_staged(self, kdf: _Kdf) -> None:
        """Make the staged key the current one; the vault file is already under it."""
        if kdf.source == "keyfile":
            with contextlib.suppress(FileNotFoundError):  # promoted already, by a run killed right after
                os.replace(self.staged_key_file, self.key_file)
            _fsync_dir(self.path.parent)
            return
        user = self._keyring_user()
        staged = _keyring_get(user + _STAGED_SUFFIX)
        if staged is not None and not _keyring_store(user, staged):
            raise VaultError(
                f"Could not store the new key of vault file {self.path} in the OS keyring (the vault still "
                "opens with the staged key). Unlock the keyring and run `mcp-connectors vault rotate-key` again."
            )
        _keyring_delete(user + _STAGED_SUFFIX)

    def _discard_keys_of_other_sources(self) -> None:
        """After a switch to a passphrase, the old key file and keyring entries open nothing any more."""
        for key_file in (self.staged_key_file, self.key_file):
            with contextlib.suppress(FileNotFoundError):
                key_file.unlink()
        if self._use_keyring:
            _keyring_delete(self._keyring_user() + _STAGED_SUFFIX)
            _keyring_delete(self._keyring_user())
        _fsync_dir(self.path.parent)

    def _remove_stale_temp_files(self) -> None:
        """Temporary files of writers killed mid-write; only a lock holder creates them, and we hold it."""
        pattern = re.compile(re.escape(f".{self.path.name}.") + r"(?:key\.(?:next\.)?)?[A-Za-z0-9_]{8}\.tmp")
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path.parent):
                if pattern.fullmatch(entry.name):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    # -- writing -----------------------------------------------------------------------------------

    def _load_for_write(self, *, create: bool) -> tuple[_Document | None, bytes]:
        """The current document and its key, inside the lock; a new empty vault when `create` and none exists."""
        doc = self._load(fresh=True)
        if doc is not None:
            return doc, self._key_for(doc)  # only someone who can open the vault may edit it
        if not create:
            return None, b""
        kdf, key = self._new_key()
        doc = _Document(VERSION, kdf, 1, _new_check(key, 1), {})
        self._verified = (doc.header, key, False)
        return doc, key

    def _write(self, doc: _Document, key: bytes, records: Mapping[str, _Record]) -> None:
        """Replace the file with `records` under `doc`'s master key, as version 2.

        A version-1 `doc` is migrated on the way: its remaining records get data keys, and the check record
        is sealed afresh in the version-2 form.
        """
        current = {n: self._rewrap_named(key, key, n, r) if r.wrapped_key is None else r for n, r in records.items()}
        check = doc.check if doc.version == VERSION else _new_check(key, doc.generation)
        written = _Document(VERSION, doc.kdf, doc.generation, check, current)
        self._write_document(written)
        verified = self._verified
        if verified is not None and verified[0] == doc.header:
            self._verified = (written.header, key, verified[2])

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

    def _write_document(self, doc: _Document) -> None:
        data = _dump(doc)
        write_private_file(self.path, data)
        # Under the lock nobody else replaces the file, so this stat is of what we wrote; the next write by
        # this instance then finds the same bytes and skips parsing them.
        st = os.stat(self.path)
        self._parsed = ((st.st_mtime_ns, st.st_size, st.st_ino), data, doc)
