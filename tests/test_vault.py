"""The encrypted vault, against real files: round trips, key sources, corruption, concurrency, failures."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.backends.fail
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mcp_server import _vault
from mcp_server._errors import VaultCorrupted, VaultError, VaultKeyMismatch
from mcp_server._secrets import Secret
from mcp_server._vault import Vault, validate_secret_name

SECRET_VALUE = "s3cr3t-VALUE-never-shown"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / "vault" / "vault.json"


def keyfile_vault(path: Path) -> Vault:
    return Vault(path, use_keyring=False)


def read_doc(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def write_doc(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc))


def flip_byte_b64(value: str, index: int = 0) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def assert_safe_message(exc: BaseException, path: Path, *forbidden: str) -> None:
    message = str(exc)
    assert str(path) in message
    for text in forbidden:
        assert text not in message


# ------------------------------------------------------------------------------------------ round trips


def test_set_get_delete_names_round_trip(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    assert vault.names() == []
    assert vault.get("missing") is None
    vault.set("b_token", "two")
    vault.set("a.key@host-1", "one")
    assert vault.names() == ["a.key@host-1", "b_token"]
    assert vault.get("a.key@host-1") == Secret("one")
    assert vault.get("missing") is None
    vault.set("b_token", "two again")
    assert vault.get("b_token") == Secret("two again")
    assert vault.delete("b_token") is True
    assert vault.delete("b_token") is False
    assert vault.names() == ["a.key@host-1"]
    assert vault.get("b_token") is None


@pytest.mark.parametrize("value", ["", "line one\nline two\n", "ünïcødé ✓ 秘密 🔑", "x" * 100_000, "\x00\t\r"])
def test_values_round_trip_exactly(vault_path: Path, value: str) -> None:
    keyfile_vault(vault_path).set("v", value)
    got = keyfile_vault(vault_path).get("v")
    assert got is not None
    assert got.reveal() == value


def test_missing_vault_file_is_empty_and_not_created_by_reads(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    assert vault.get("x") is None
    assert vault.names() == []
    vault.check()
    assert vault.delete("x") is False
    assert not vault_path.exists()


def test_persists_across_instances_and_sees_other_writers(vault_path: Path) -> None:
    first = keyfile_vault(vault_path)
    first.set("token", "v1")
    second = keyfile_vault(vault_path)
    assert second.get("token") == Secret("v1")
    first.set("token", "v2")
    first.set("other", "o")
    assert second.get("token") == Secret("v2")  # second's parse cache must notice the new file
    assert second.names() == ["other", "token"]


def test_get_reflects_set_from_another_process(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set("token", "before")
    assert vault.get("token") == Secret("before")
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_set_in_child, args=(str(vault_path), "token", "after"))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert vault.get("token") == Secret("after")


def _set_in_child(path: str, name: str, value: str) -> None:
    Vault(Path(path), use_keyring=False).set(name, value)


def test_only_ciphertext_on_disk(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    raw = vault_path.read_text()
    assert SECRET_VALUE not in raw
    doc = read_doc(vault_path)
    assert doc["format"] == "mcp-connectors-vault"
    assert doc["version"] == 2
    assert doc["generation"] == 1
    assert doc["kdf"] == {"source": "keyfile"}
    assert set(doc["check"]) == {"nonce", "ciphertext"}
    assert set(doc["records"]) == {"token"}
    record = doc["records"]["token"]
    assert set(record) == {"key", "value"}
    assert len(base64.b64decode(record["key"]["nonce"])) == 12
    assert len(base64.b64decode(record["key"]["ciphertext"])) == 32 + 16  # a wrapped 256-bit data key
    assert len(base64.b64decode(record["value"]["nonce"])) == 12


def test_envelope_decrypts_by_hand_as_documented(vault_path: Path) -> None:
    """An independent reading of the documented format: unwrap the data key, then open the value."""
    vault = keyfile_vault(vault_path)
    vault.set("token", SECRET_VALUE)
    vault.set("other", SECRET_VALUE)
    master = base64.b64decode(vault_path.with_name("vault.json.key").read_text())
    records = read_doc(vault_path)["records"]
    data_keys = []
    for name in ("token", "other"):
        wrapped, value = records[name]["key"], records[name]["value"]
        data_key = AESGCM(master).decrypt(
            base64.b64decode(wrapped["nonce"]),
            base64.b64decode(wrapped["ciphertext"]),
            b"mcp-connectors-vault/v2/data-key/" + name.encode(),
        )
        plaintext = AESGCM(data_key).decrypt(
            base64.b64decode(value["nonce"]),
            base64.b64decode(value["ciphertext"]),
            b"mcp-connectors-vault/v2/value/" + name.encode(),
        )
        assert plaintext.decode() == SECRET_VALUE
        data_keys.append(data_key)
    assert data_keys[0] != data_keys[1]  # every record has a data key of its own
    assert records["token"]["value"]["ciphertext"] != records["other"]["value"]["ciphertext"]


def test_each_write_uses_a_fresh_data_key_and_nonces(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set("a", "same")
    first = read_doc(vault_path)["records"]["a"]
    vault.set("a", "same")
    second = read_doc(vault_path)["records"]["a"]
    for part in ("key", "value"):
        assert first[part]["nonce"] != second[part]["nonce"]
        assert first[part]["ciphertext"] != second[part]["ciphertext"]


def test_describe_and_remote(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    assert vault.describe() == f"vault file {vault_path}"
    assert Vault.remote is False
    assert vault.remote is False
    assert vault.key_source() is None
    vault.set("a", "x")
    assert vault.key_source() == "keyfile"


def test_set_many_is_one_write_and_can_keep_existing(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set("keep", "old")
    written = vault.set_many({"keep": "new", "fresh": "f", "also": "a"}, overwrite=False)
    assert written == ["also", "fresh"]
    assert vault.get("keep") == Secret("old")
    assert vault.get("fresh") == Secret("f")
    assert vault.set_many({"keep": "new"}) == ["keep"]
    assert vault.get("keep") == Secret("new")
    assert vault.set_many({}) == []
    with pytest.raises(ValueError, match="Invalid secret name"):
        vault.set_many({"ok": "1", "bad name": "2"})
    assert vault.get("ok") is None  # nothing of a rejected batch is written


def test_secret_repr_is_masked(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set("token", SECRET_VALUE)
    secret = vault.get("token")
    assert secret is not None
    assert SECRET_VALUE not in repr(secret)
    assert SECRET_VALUE not in str(secret)
    assert SECRET_VALUE not in repr([secret, vault])


# ------------------------------------------------------------------------------------------ key sources


def test_keyfile_mode_creates_private_files(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set("token", "v")
    key_file = vault_path.with_name("vault.json.key")
    assert key_file.exists()
    assert len(base64.b64decode(key_file.read_text().strip())) == 32
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(vault_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(vault_path.parent.stat().st_mode) == 0o700


def test_missing_key_file_is_key_mismatch(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    vault_path.with_name("vault.json.key").unlink()
    with pytest.raises(VaultKeyMismatch, match="missing") as info:
        keyfile_vault(vault_path).get("token")
    assert_safe_message(info.value, vault_path, SECRET_VALUE)


def test_replaced_key_file_is_key_mismatch(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    key_file = vault_path.with_name("vault.json.key")
    old_key = key_file.read_text().strip()
    new_key = base64.b64encode(os.urandom(32)).decode()
    key_file.write_text(new_key + "\n")
    with pytest.raises(VaultKeyMismatch) as info:
        keyfile_vault(vault_path).check()
    assert_safe_message(info.value, vault_path, SECRET_VALUE, old_key, new_key)


def test_passphrase_mode_round_trip(vault_path: Path) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("token", SECRET_VALUE)
    doc = read_doc(vault_path)
    assert doc["kdf"]["source"] == "scrypt"
    assert (doc["kdf"]["n"], doc["kdf"]["r"], doc["kdf"]["p"]) == (2**15, 8, 1)
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert not vault_path.with_name("vault.json.key").exists()
    got = Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).get("token")
    assert got == Secret(SECRET_VALUE)


def test_scrypt_key_cached_without_the_passphrase(vault_path: Path) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("token", "v")
    salt = base64.b64decode(read_doc(vault_path)["kdf"]["salt"])
    entries = [key for key in _vault._derived_keys if key[1] == salt]
    assert len(entries) == 1
    assert PASSPHRASE not in entries[0]
    assert PASSPHRASE.encode() not in entries[0]
    for _ in range(3):
        Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).get("token")
    assert [key for key in _vault._derived_keys if key[1] == salt] == entries


def test_wrong_passphrase_is_key_mismatch_naming_the_file(vault_path: Path) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("token", SECRET_VALUE)
    wrong = "Wr0ng-Passphrase-zq9"
    with pytest.raises(VaultKeyMismatch, match="MCP_CONNECTORS_VAULT_KEY") as info:
        Vault(vault_path, passphrase=wrong, use_keyring=False).get("token")
    assert_safe_message(info.value, vault_path, SECRET_VALUE, PASSPHRASE, wrong)
    # A wrong key must not be able to write either.
    with pytest.raises(VaultKeyMismatch):
        Vault(vault_path, passphrase=wrong, use_keyring=False).set("other", "x")
    with pytest.raises(VaultKeyMismatch):
        Vault(vault_path, passphrase=wrong, use_keyring=False).delete("token")
    assert Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).names() == ["token"]


def test_missing_passphrase_for_scrypt_vault(vault_path: Path) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("token", SECRET_VALUE)
    for passphrase in (None, ""):
        with pytest.raises(VaultKeyMismatch, match="set MCP_CONNECTORS_VAULT_KEY") as info:
            Vault(vault_path, passphrase=passphrase, use_keyring=False).get("token")
        assert_safe_message(info.value, vault_path, SECRET_VALUE, PASSPHRASE)


def test_passphrase_given_for_keyfile_vault(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    with pytest.raises(VaultKeyMismatch, match="key file") as info:
        Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).get("token")
    assert "Unset MCP_CONNECTORS_VAULT_KEY" in str(info.value)
    assert_safe_message(info.value, vault_path, SECRET_VALUE, PASSPHRASE)


def test_wrong_key_detected_with_zero_records(vault_path: Path) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("token", "v")
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).delete("token")
    assert read_doc(vault_path)["records"] == {}
    wrong = Vault(vault_path, passphrase="wrong passphrase", use_keyring=False)
    with pytest.raises(VaultKeyMismatch):
        wrong.check()
    with pytest.raises(VaultKeyMismatch):
        wrong.get("token")
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).check()


@pytest.fixture
def fail_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


class MemoryKeyring:
    """A working keyring backend that lives in memory, so the test never touches the user's keyring."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], str] = {}

    def backend(self) -> keyring.backend.KeyringBackend:
        store = self.store

        class Backend(keyring.backend.KeyringBackend):
            priority = 1  # type: ignore[assignment]

            def get_password(self, service: str, username: str) -> str | None:
                return store.get((service, username))

            def set_password(self, service: str, username: str, password: str) -> None:
                store[(service, username)] = password

            def delete_password(self, service: str, username: str) -> None:
                store.pop((service, username), None)

        return Backend()


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()  # before defining the backend, so it cannot become the session default
    memory = MemoryKeyring()
    backend = memory.backend()
    keyring.set_keyring(backend)
    try:
        yield memory
    finally:
        keyring.set_keyring(previous)
        # Subclasses register themselves as viable backends; unregister so later discovery never picks it.
        keyring.backend.KeyringBackend._classes.discard(type(backend))  # type: ignore[attr-defined]


@pytest.mark.usefixtures("fail_keyring")
def test_keyring_without_backend_falls_back_to_key_file(vault_path: Path) -> None:
    vault = Vault(vault_path)  # use_keyring defaults to True
    vault.set("token", SECRET_VALUE)
    assert read_doc(vault_path)["kdf"]["source"] == "keyfile"
    assert vault_path.with_name("vault.json.key").exists()
    assert Vault(vault_path).get("token") == Secret(SECRET_VALUE)


def test_keyring_backend_stores_key(vault_path: Path, memory_keyring: MemoryKeyring) -> None:
    Vault(vault_path).set("token", SECRET_VALUE)
    assert read_doc(vault_path)["kdf"]["source"] == "keyring"
    assert not vault_path.with_name("vault.json.key").exists()
    assert list(memory_keyring.store) == [("mcp-connectors", str(vault_path.resolve()))]
    assert Vault(vault_path).get("token") == Secret(SECRET_VALUE)
    with pytest.raises(VaultKeyMismatch, match="keyring") as info:
        Vault(vault_path, use_keyring=False).get("token")
    assert_safe_message(info.value, vault_path, SECRET_VALUE, *memory_keyring.store.values())
    with pytest.raises(VaultKeyMismatch, match="keyring"):
        Vault(vault_path, passphrase=PASSPHRASE).get("token")
    memory_keyring.store.clear()
    with pytest.raises(VaultKeyMismatch, match="keyring"):
        Vault(vault_path).get("token")


# ------------------------------------------------------------------------------------------ corruption


def test_tampered_ciphertext_is_corrupted(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    keyfile_vault(vault_path).set("other", "fine")
    doc = read_doc(vault_path)
    doc["records"]["token"]["value"]["ciphertext"] = flip_byte_b64(doc["records"]["token"]["value"]["ciphertext"], 3)
    write_doc(vault_path, doc)
    vault = keyfile_vault(vault_path)
    with pytest.raises(VaultCorrupted, match="'token'") as info:
        vault.get("token")
    assert_safe_message(info.value, vault_path, SECRET_VALUE)
    assert vault.get("other") == Secret("fine")  # one bad record does not take the others down


def test_tampered_nonce_is_corrupted(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    doc = read_doc(vault_path)
    doc["records"]["token"]["value"]["nonce"] = flip_byte_b64(doc["records"]["token"]["value"]["nonce"])
    write_doc(vault_path, doc)
    with pytest.raises(VaultCorrupted):
        keyfile_vault(vault_path).get("token")


def test_record_copied_under_another_name_is_corrupted(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    doc = read_doc(vault_path)
    doc["records"]["stolen"] = doc["records"]["token"]
    write_doc(vault_path, doc)
    with pytest.raises(VaultCorrupted, match="'stolen'") as info:
        keyfile_vault(vault_path).get("stolen")
    assert_safe_message(info.value, vault_path, SECRET_VALUE)


def test_every_single_byte_flip_is_an_error_never_garbage(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    original = vault_path.read_bytes()
    for index in range(0, len(original), 7):
        damaged = bytearray(original)
        damaged[index] ^= 0x01
        vault_path.write_bytes(bytes(damaged))
        try:
            got = keyfile_vault(vault_path).get("token")
        except VaultError as exc:
            assert_safe_message(exc, vault_path, SECRET_VALUE)
        else:
            # Harmless flips (JSON whitespace, a name's case that is then simply absent) are allowed;
            # a changed value never is.
            assert got is None or got == Secret(SECRET_VALUE)


@pytest.mark.parametrize("keep", [0, 1, 10, 0.5, -2])
def test_truncated_file_is_corrupted(vault_path: Path, keep: float) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    raw = vault_path.read_bytes()
    cut = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    vault_path.write_bytes(raw[:cut])
    with pytest.raises(VaultCorrupted, match="corrupted") as info:
        keyfile_vault(vault_path).get("token")
    assert_safe_message(info.value, vault_path, SECRET_VALUE)


@pytest.mark.parametrize(
    "content",
    [b"\x00\xff\xfe garbage \x80", b"not json at all", b"[" * 100_000, b"\xef\xbb\xbf{"],
    ids=["binary", "text", "deeply-nested", "bom"],
)
def test_non_json_garbage_is_corrupted(vault_path: Path, content: bytes) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    vault_path.write_bytes(content)
    for call in (lambda v: v.get("token"), lambda v: v.names(), lambda v: v.check(), lambda v: v.set("x", "y")):
        with pytest.raises(VaultCorrupted) as info:
            call(keyfile_vault(vault_path))
        assert_safe_message(info.value, vault_path, SECRET_VALUE)
    assert vault_path.read_bytes() == content  # never silently reset


def _mutations() -> list[tuple[str, Any]]:
    def drop(key: str) -> Any:
        return lambda d: d.pop(key)

    def put(path: list[str], value: Any) -> Any:
        def apply(d: dict[str, Any]) -> None:
            for part in path[:-1]:
                d = d[part]
            d[path[-1]] = value

        return apply

    return [
        ("list-top", lambda d: d.clear() or d.update({"format": ["x"]})),
        ("wrong-format", put(["format"], "something-else")),
        ("no-version", drop("version")),
        ("bool-version", put(["version"], True)),
        ("no-kdf", drop("kdf")),
        ("kdf-source", put(["kdf", "source"], "rot13")),
        ("no-check", drop("check")),
        ("check-not-object", put(["check"], "abc")),
        ("records-list", put(["records"], [])),
        ("record-not-object", put(["records", "token"], 5)),
        ("record-v1-shaped", lambda d: d["records"].update({"token": d["records"]["token"]["value"]})),
        ("record-no-key", lambda d: d["records"]["token"].pop("key")),
        ("record-no-value", lambda d: d["records"]["token"].pop("value")),
        ("key-not-object", put(["records", "token", "key"], [])),
        ("record-no-nonce", lambda d: d["records"]["token"]["value"].pop("nonce")),
        ("bad-base64", put(["records", "token", "value", "ciphertext"], "!!!not base64!!!")),
        ("non-canonical-base64", put(["records", "token", "value", "nonce"], "AAAAAAAAAAAAAAAB")),
        ("nonce-not-string", put(["records", "token", "value", "nonce"], 12)),
        ("short-nonce", put(["records", "token", "value", "nonce"], base64.b64encode(b"short").decode())),
        ("short-ciphertext", put(["records", "token", "value", "ciphertext"], base64.b64encode(b"x").decode())),
        ("short-wrapped-key", put(["records", "token", "key", "ciphertext"], base64.b64encode(b"k" * 47).decode())),
        ("long-wrapped-key", put(["records", "token", "key", "ciphertext"], base64.b64encode(b"k" * 49).decode())),
        ("bad-name", lambda d: d["records"].update({"bad name/..": d["records"]["token"]})),
        ("no-generation", drop("generation")),
        ("zero-generation", put(["generation"], 0)),
        ("bool-generation", put(["generation"], True)),
        ("string-generation", put(["generation"], "1")),
    ]


@pytest.mark.parametrize(("label", "mutate"), _mutations(), ids=[label for label, _ in _mutations()])
def test_wrong_shape_is_corrupted(vault_path: Path, label: str, mutate: Any) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    doc = read_doc(vault_path)
    mutate(doc)
    write_doc(vault_path, doc)
    with pytest.raises(VaultCorrupted) as info:
        keyfile_vault(vault_path).get("token")
    assert_safe_message(info.value, vault_path, SECRET_VALUE)


@pytest.mark.parametrize(("param", "value"), [("n", 2**40), ("n", 1000), ("r", 0), ("p", "1"), ("salt", 7)], ids=str)
def test_bad_scrypt_parameters_are_corrupted(vault_path: Path, param: str, value: Any) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("token", "v")
    doc = read_doc(vault_path)
    doc["kdf"][param] = value
    write_doc(vault_path, doc)
    with pytest.raises(VaultCorrupted, match="kdf"):
        Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).get("token")


def test_newer_format_version_says_so(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", "v")
    doc = read_doc(vault_path)
    doc["version"] = 3
    write_doc(vault_path, doc)
    with pytest.raises(VaultCorrupted, match="version 3") as info:
        keyfile_vault(vault_path).names()
    assert str(vault_path) in str(info.value)


def test_tampered_check_record_is_detected(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    doc = read_doc(vault_path)
    doc["check"]["ciphertext"] = flip_byte_b64(doc["check"]["ciphertext"])
    write_doc(vault_path, doc)
    with pytest.raises(VaultKeyMismatch, match="header was altered"):
        keyfile_vault(vault_path).check()


def test_error_messages_never_contain_value_or_key(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    key_text = vault_path.with_name("vault.json.key").read_text().strip()
    doc = read_doc(vault_path)
    good = json.dumps(doc)
    doc["records"]["token"]["value"]["ciphertext"] = flip_byte_b64(doc["records"]["token"]["value"]["ciphertext"])
    write_doc(vault_path, doc)
    messages: list[str] = []
    with pytest.raises(VaultCorrupted) as corrupted:
        keyfile_vault(vault_path).get("token")
    messages.append(str(corrupted.value))
    vault_path.write_text(good)
    with pytest.raises(VaultKeyMismatch) as mismatch:
        Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).get("token")
    messages.append(str(mismatch.value))
    for message in messages:
        assert SECRET_VALUE not in message
        assert key_text not in message
        assert PASSPHRASE not in message
        assert str(vault_path) in message
        assert "Traceback" not in message


def _field_bits(doc: dict[str, Any], path: tuple[str, ...]) -> int:
    node: Any = doc
    for part in path:
        node = node[part]
    return len(base64.b64decode(node)) * 8


def _with_bit_flipped(doc: dict[str, Any], path: tuple[str, ...], bit: int) -> dict[str, Any]:
    damaged = json.loads(json.dumps(doc))
    node = damaged
    for part in path[:-1]:
        node = node[part]
    raw = bytearray(base64.b64decode(node[path[-1]]))
    raw[bit // 8] ^= 1 << (bit % 8)
    node[path[-1]] = base64.b64encode(bytes(raw)).decode()
    return damaged


RECORD_FIELDS = [(part, field) for part in ("key", "value") for field in ("nonce", "ciphertext")]


@pytest.mark.parametrize(("part", "field"), RECORD_FIELDS, ids=[f"{p}.{f}" for p, f in RECORD_FIELDS])
def test_every_bit_flip_of_a_record_field_is_detected(vault_path: Path, part: str, field: str) -> None:
    vault = keyfile_vault(vault_path)
    vault.set_many({"token": SECRET_VALUE, "other": "fine"})
    original = read_doc(vault_path)
    path = ("records", "token", part, field)
    bits = _field_bits(original, path)
    assert bits >= 96
    for bit in range(bits):
        write_doc(vault_path, _with_bit_flipped(original, path, bit))
        fresh = keyfile_vault(vault_path)
        with pytest.raises(VaultCorrupted, match="'token' does not decrypt") as info:
            fresh.get("token")
        assert_safe_message(info.value, vault_path, SECRET_VALUE)
        assert fresh.get("other") == Secret("fine")  # the damage stays with the one record


@pytest.mark.parametrize("field", ["nonce", "ciphertext"])
def test_every_bit_flip_of_the_check_record_is_detected(vault_path: Path, field: str) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    original = read_doc(vault_path)
    path = ("check", field)
    for bit in range(_field_bits(original, path)):
        write_doc(vault_path, _with_bit_flipped(original, path, bit))
        with pytest.raises(VaultKeyMismatch, match="header was altered") as info:
            keyfile_vault(vault_path).get("token")
        assert_safe_message(info.value, vault_path, SECRET_VALUE)


def test_changed_generation_is_detected(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    doc = read_doc(vault_path)
    doc["generation"] = 2  # the check record binds the generation
    write_doc(vault_path, doc)
    with pytest.raises(VaultKeyMismatch, match="header was altered"):
        keyfile_vault(vault_path).check()


def test_truncation_at_every_length_is_detected(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    original = vault_path.read_bytes()
    for cut in range(len(original)):
        vault_path.write_bytes(original[:cut])
        vault = keyfile_vault(vault_path)
        if original[:cut].strip() == original.strip():  # only the final newline is gone: still the same file
            assert vault.get("token") == Secret(SECRET_VALUE)
            continue
        with pytest.raises(VaultCorrupted) as info:
            vault.get("token")
        assert_safe_message(info.value, vault_path, SECRET_VALUE)


@pytest.mark.parametrize("part", ["key", "value"])
def test_swapping_two_records_parts_is_detected(vault_path: Path, part: str) -> None:
    keyfile_vault(vault_path).set_many({"first": "one-" + SECRET_VALUE, "second": "two-" + SECRET_VALUE})
    doc = read_doc(vault_path)
    records = doc["records"]
    records["first"][part], records["second"][part] = records["second"][part], records["first"][part]
    write_doc(vault_path, doc)
    vault = keyfile_vault(vault_path)
    for name in ("first", "second"):
        with pytest.raises(VaultCorrupted, match=f"'{name}'") as info:
            vault.get(name)
        assert_safe_message(info.value, vault_path, SECRET_VALUE)


def test_swapping_two_whole_records_is_detected(vault_path: Path) -> None:
    keyfile_vault(vault_path).set_many({"first": "one", "second": "two"})
    doc = read_doc(vault_path)
    records = doc["records"]
    records["first"], records["second"] = records["second"], records["first"]
    write_doc(vault_path, doc)
    for name in ("first", "second"):
        with pytest.raises(VaultCorrupted):
            keyfile_vault(vault_path).get(name)


def test_renamed_record_is_detected(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("token", SECRET_VALUE)
    doc = read_doc(vault_path)
    doc["records"]["renamed"] = doc["records"].pop("token")
    write_doc(vault_path, doc)
    vault = keyfile_vault(vault_path)
    assert vault.names() == ["renamed"]
    with pytest.raises(VaultCorrupted, match="'renamed'"):
        vault.get("renamed")
    # The damaged record can be replaced or removed; the rest of the vault carries on.
    vault.set("renamed", "new value")
    assert vault.get("renamed") == Secret("new value")


def test_record_from_another_vault_with_another_key_is_detected(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "vault.json", tmp_path / "b" / "vault.json"
    keyfile_vault(first).set("token", SECRET_VALUE)
    keyfile_vault(second).set("token", "other vault")
    doc = read_doc(second)
    doc["records"]["token"] = read_doc(first)["records"]["token"]
    write_doc(second, doc)
    with pytest.raises(VaultCorrupted, match="'token'"):
        keyfile_vault(second).get("token")


# ------------------------------------------------------------------------------------------ version 1


def write_v1_vault(path: Path, records: dict[str, str], *, passphrase: str | None = None) -> bytes:
    """A version-1 vault as earlier releases wrote it (each value sealed directly by the master key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if passphrase is None:
        master = os.urandom(32)
        path.with_name(path.name + ".key").write_text(base64.b64encode(master).decode() + "\n")
        kdf: dict[str, Any] = {"source": "keyfile"}
    else:
        salt = os.urandom(16)
        # A small n keeps the test fast; the header carries the cost parameters.
        master = Scrypt(salt=salt, length=32, n=2**4, r=8, p=1).derive(passphrase.encode())
        kdf = {"source": "scrypt", "salt": base64.b64encode(salt).decode(), "n": 2**4, "r": 8, "p": 1}

    def seal(plaintext: bytes, aad: bytes) -> dict[str, str]:
        nonce = os.urandom(12)
        ciphertext = AESGCM(master).encrypt(nonce, plaintext, aad)
        return {"nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ciphertext).decode()}

    doc = {
        "format": "mcp-connectors-vault",
        "version": 1,
        "kdf": kdf,
        "check": seal(b"mcp-connectors-vault key check v1", b"mcp-connectors-vault/v1/check"),
        "records": {n: seal(v.encode(), b"mcp-connectors-vault/v1/record/" + n.encode()) for n, v in records.items()},
    }
    write_doc(path, doc)
    return master


V1_RECORDS = {"token": SECRET_VALUE, "other": "second value", "unicode": "ünï ✓"}


def test_version_1_vault_is_read_as_it_is(vault_path: Path) -> None:
    write_v1_vault(vault_path, V1_RECORDS)
    before = vault_path.read_bytes()
    vault = keyfile_vault(vault_path)
    vault.check()
    assert vault.names() == sorted(V1_RECORDS)
    for name, value in V1_RECORDS.items():
        assert vault.get(name) == Secret(value)
    assert vault_path.read_bytes() == before  # reading never rewrites


@pytest.mark.parametrize("write", ["set", "delete", "set_many"])
def test_first_write_migrates_version_1_to_2(vault_path: Path, write: str) -> None:
    master = write_v1_vault(vault_path, V1_RECORDS)
    vault = keyfile_vault(vault_path)
    expected = dict(V1_RECORDS)
    if write == "set":
        vault.set("added", "new")
        expected["added"] = "new"
    elif write == "delete":
        assert vault.delete("other") is True
        del expected["other"]
    else:
        vault.set_many({"token": "replaced"})
        expected["token"] = "replaced"
    doc = read_doc(vault_path)
    assert doc["version"] == 2
    assert doc["generation"] == 1
    assert all(set(record) == {"key", "value"} for record in doc["records"].values())
    # Same master key: the key file is untouched and still opens the migrated vault.
    assert base64.b64decode(vault_path.with_name("vault.json.key").read_text()) == master
    fresh = keyfile_vault(vault_path)
    assert fresh.names() == sorted(expected)
    for name, value in expected.items():
        assert fresh.get(name) == Secret(value)


def test_passphrase_version_1_vault_migrates(vault_path: Path) -> None:
    write_v1_vault(vault_path, V1_RECORDS, passphrase=PASSPHRASE)
    vault = Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False)
    assert vault.get("token") == Secret(SECRET_VALUE)
    vault.set("added", "new")
    assert read_doc(vault_path)["version"] == 2
    fresh = Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False)
    assert fresh.get("unicode") == Secret("ünï ✓")
    with pytest.raises(VaultKeyMismatch):
        Vault(vault_path, passphrase="wrong", use_keyring=False).get("token")


def test_version_1_wrong_key_and_tampering_are_still_detected(vault_path: Path) -> None:
    write_v1_vault(vault_path, V1_RECORDS)
    doc = read_doc(vault_path)
    doc["records"]["token"]["ciphertext"] = flip_byte_b64(doc["records"]["token"]["ciphertext"])
    write_doc(vault_path, doc)
    vault = keyfile_vault(vault_path)
    with pytest.raises(VaultCorrupted, match="'token'"):
        vault.get("token")
    before = vault_path.read_bytes()
    # Migrating must not drop or garble the damaged record: the write stops and names it.
    with pytest.raises(VaultCorrupted, match="'token'"):
        vault.set("added", "x")
    assert vault_path.read_bytes() == before
    # Replacing (or deleting) the damaged record is what lets the migration through.
    vault.set("token", "fixed")
    assert read_doc(vault_path)["version"] == 2
    assert keyfile_vault(vault_path).get("token") == Secret("fixed")
    assert keyfile_vault(vault_path).get("other") == Secret("second value")
    vault_path.with_name("vault.json.key").write_text(base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(VaultKeyMismatch):
        keyfile_vault(vault_path).check()


# ------------------------------------------------------------------------------------------ concurrency


def _writer(path: str, worker: int, count: int, start: Any) -> None:
    start.wait()
    vault = Vault(Path(path), use_keyring=False)
    for i in range(count):
        vault.set(f"w{worker}_{i}", f"value {worker}/{i}")


WRITERS, WRITES = 16, 200


def test_concurrent_writers_in_processes_lose_nothing(vault_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WRITERS)  # released only when every process is up, so the writes really overlap
    # No vault yet, so the processes also race to create the vault and its key file.
    procs = [ctx.Process(target=_writer, args=(str(vault_path), w, WRITES, start)) for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(600)
    assert [proc.exitcode for proc in procs] == [0] * WRITERS
    vault = keyfile_vault(vault_path)
    expected = sorted(f"w{w}_{i}" for w in range(WRITERS) for i in range(WRITES))
    assert vault.names() == expected
    for w in range(WRITERS):
        for i in range(WRITES):
            assert vault.get(f"w{w}_{i}") == Secret(f"value {w}/{i}")
    assert sorted(p.name for p in vault_path.parent.iterdir()) == ["vault.json", "vault.json.key", "vault.json.lock"]


# ------------------------------------------------------------------------------------------ failed writes


def _set_with_file_size_limit(path: str, limit: int, queue: Any) -> None:
    import resource
    import signal

    # With SIGXFSZ ignored, writing past RLIMIT_FSIZE fails with EFBIG, a real write error like a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        Vault(Path(path), use_keyring=False).set("big", "x" * (limit * 2))
    except VaultError as exc:
        queue.put(("VaultError", str(exc)))
    except BaseException as exc:
        queue.put((type(exc).__name__, str(exc)))
    else:
        queue.put(("ok", ""))


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_failed_write_leaves_previous_vault_intact(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set("token", SECRET_VALUE)
    before = vault_path.read_bytes()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_set_with_file_size_limit, args=(str(vault_path), len(before) + 4096, queue))
    proc.start()
    kind, message = queue.get(timeout=60)
    proc.join(60)
    assert kind == "VaultError", message
    assert str(vault_path) in message
    assert "unchanged" in message
    assert vault_path.read_bytes() == before
    assert vault.get("token") == Secret(SECRET_VALUE)
    assert vault.names() == ["token"]
    leftovers = [p.name for p in vault_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_write_into_read_only_directory_leaves_vault_intact(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set("token", SECRET_VALUE)
    before = vault_path.read_bytes()
    vault_path.parent.chmod(0o500)
    try:
        with pytest.raises(VaultError, match="unchanged") as info:
            vault.set("other", "x")
        assert_safe_message(info.value, vault_path, SECRET_VALUE, "x" * 2)
    finally:
        vault_path.parent.chmod(0o700)
    assert vault_path.read_bytes() == before
    assert vault.names() == ["token"]


def test_vault_path_that_is_a_directory_is_an_error(vault_path: Path) -> None:
    vault_path.mkdir(parents=True)
    with pytest.raises(VaultError) as info:
        keyfile_vault(vault_path).names()
    assert str(vault_path) in str(info.value)


# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize("name", ["a", "github_token", "A.b-c_d@e", "0", "a" * 128, "user@example.com"])
def test_valid_secret_names(name: str) -> None:
    validate_secret_name(name)


@pytest.mark.parametrize("name", ["", "a" * 129, "a b", "a/b", "../x", "tok\n", "ünï", "a:b", "a\x00"])
def test_invalid_secret_names_rejected(vault_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="Invalid secret name"):
        validate_secret_name(name)
    vault = keyfile_vault(vault_path)
    for call in (lambda: vault.get(name), lambda: vault.set(name, "v"), lambda: vault.delete(name)):
        with pytest.raises(ValueError, match="Invalid secret name"):
            call()
    assert not vault_path.exists()
