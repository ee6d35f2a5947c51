"""Export bundles against real files: round trips, every bit flip, truncation, splicing, import semantics."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mcp_server._errors import VaultBundleError, VaultError
from mcp_server._secrets import Secret
from mcp_server._vault import Vault
from mcp_server._vault_bundle import SCRYPT_N, export_bundle, import_bundle, open_bundle, read_bundle, seal_bundle

PASSPHRASE = "bundle passphrase"
FAST_N = 2**4  # the cost is a parameter of the file; tests that open thousands of bundles keep it tiny
VALUES = {"github_token": "ghp-BUNDLED-value-1", "api_key": "key-BUNDLED-value-2", "empty": "", "uni": "ünï ✓ 秘"}


@pytest.fixture
def source(tmp_path: Path) -> Vault:
    vault = Vault(tmp_path / "source" / "vault.json", passphrase="source vault passphrase", use_keyring=False)
    vault.set_many(VALUES)
    return vault


def values_of(vault: Vault) -> dict[str, str]:
    result: dict[str, str] = {}
    for name in vault.names():
        secret = vault.get(name)
        assert secret is not None
        result[name] = secret.reveal()
    return result


def test_round_trip_into_a_vault_with_another_key_source(tmp_path: Path, source: Vault) -> None:
    bundle = tmp_path / "secrets.bundle"
    assert export_bundle(source, bundle, PASSPHRASE, n=FAST_N) == sorted(VALUES)
    text = bundle.read_text()
    for name, value in VALUES.items():
        assert name not in text  # names travel sealed as well
        if value:
            assert value not in text
    doc = json.loads(text)
    assert doc["format"] == "mcp-connectors-vault-bundle" and doc["version"] == 1
    assert set(doc) == {"format", "version", "kdf", "check", "payload"}
    target = Vault(tmp_path / "target" / "vault.json", use_keyring=False)
    result = import_bundle(target, bundle, PASSPHRASE)
    assert (result.imported, result.skipped) == (sorted(VALUES), [])
    assert values_of(target) == VALUES
    assert json.loads(target.path.read_text())["kdf"]["source"] == "keyfile"


def test_default_cost_is_the_documented_one(tmp_path: Path) -> None:
    assert SCRYPT_N == 2**17
    data = seal_bundle({"a": "1"}, PASSPHRASE)
    kdf = json.loads(data)["kdf"]
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"]) == ("scrypt", 2**17, 8, 1)
    assert open_bundle(data, PASSPHRASE, tmp_path / "b") == {"a": "1"}


def test_bundle_file_is_private_and_never_clobbered(tmp_path: Path, source: Vault) -> None:
    bundle = tmp_path / "b.bundle"
    export_bundle(source, bundle, PASSPHRASE, n=FAST_N)
    if os.name == "posix":
        assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    first = bundle.read_bytes()
    with pytest.raises(VaultError, match="already exists; pass --force"):
        export_bundle(source, bundle, PASSPHRASE, n=FAST_N)
    assert bundle.read_bytes() == first
    export_bundle(source, bundle, PASSPHRASE, force=True, n=FAST_N)
    assert bundle.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bundle", "source"]  # no temporary files left
    with pytest.raises(VaultError, match="Could not write the bundle"):
        export_bundle(source, tmp_path / "missing" / "b.bundle", PASSPHRASE, n=FAST_N)


def test_every_bit_flip_anywhere_in_the_bundle_is_refused(tmp_path: Path) -> None:
    data = seal_bundle({"token": "VALUE-under-test", "other": "x"}, PASSPHRASE, n=FAST_N)
    where = tmp_path / "b.bundle"
    refused = 0
    for index in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[index] ^= 1 << bit
            with pytest.raises(VaultBundleError) as info:
                open_bundle(bytes(damaged), PASSPHRASE, where)
            message = str(info.value)
            assert str(where) in message and "VALUE-under-test" not in message
            refused += 1
    assert refused == len(data) * 8
    assert open_bundle(data, PASSPHRASE, where) == {"token": "VALUE-under-test", "other": "x"}


def test_truncation_at_every_length_is_refused(tmp_path: Path) -> None:
    data = seal_bundle(VALUES, PASSPHRASE, n=FAST_N)
    for cut in range(len(data)):
        if data[:cut].strip() == data.strip():
            continue  # only the final newline gone: the same bundle
        with pytest.raises(VaultBundleError):
            open_bundle(data[:cut], PASSPHRASE, tmp_path / "b")


def test_wrong_passphrase_is_told_apart_from_damage(tmp_path: Path) -> None:
    data = seal_bundle(VALUES, PASSPHRASE, n=FAST_N)
    with pytest.raises(VaultBundleError, match="passphrase is not the one it was exported with") as info:
        open_bundle(data, "wrong passphrase", tmp_path / "b")
    assert "wrong passphrase" not in str(info.value) and PASSPHRASE not in str(info.value)
    doc = json.loads(data)
    payload = bytearray(doc["payload"]["ciphertext"].encode())
    payload[10] = ord("A") if payload[10] != ord("A") else ord("B")
    doc["payload"]["ciphertext"] = payload.decode()
    with pytest.raises(VaultBundleError, match="altered or truncated"):
        open_bundle(json.dumps(doc).encode(), PASSPHRASE, tmp_path / "b")


def test_spliced_bundles_are_refused(tmp_path: Path) -> None:
    first = json.loads(seal_bundle({"a": "first"}, PASSPHRASE, n=FAST_N))
    second = json.loads(seal_bundle({"a": "second", "b": "more"}, PASSPHRASE, n=FAST_N))
    splices = {
        "payload of another bundle": {**first, "payload": second["payload"]},
        "check and payload of another bundle": {**first, "check": second["check"], "payload": second["payload"]},
        "check and payload swapped": {**first, "check": first["payload"], "payload": first["check"]},
        "extra field": {**first, "comment": "hi"},
        "cheaper kdf": {**first, "kdf": {**first["kdf"], "n": 2**3}},
        "huge kdf": {**first, "kdf": {**first["kdf"], "n": 2**30}},
        "kdf not scrypt": {**first, "kdf": {**first["kdf"], "name": "pbkdf2"}},
        "version true": {**first, "version": True},
        "version 2": {**first, "version": 2},
    }
    for label, doc in splices.items():
        with pytest.raises(VaultBundleError):
            open_bundle(json.dumps(doc).encode(), PASSPHRASE, tmp_path / label)


def test_garbage_and_unreadable_files(tmp_path: Path) -> None:
    for content in (b"", b"\x00\xff garbage", b"[]", b"{}", b'{"format": "mcp-connectors-vault"}', b"[" * 100_000):
        with pytest.raises(VaultBundleError):
            open_bundle(content, PASSPHRASE, tmp_path / "b")
    with pytest.raises(VaultBundleError, match="Cannot read bundle"):
        read_bundle(tmp_path / "absent.bundle", PASSPHRASE)
    with pytest.raises(VaultBundleError, match="Cannot read bundle"):
        read_bundle(tmp_path, PASSPHRASE)  # a directory


def test_import_keeps_existing_unless_overwrite(tmp_path: Path, source: Vault) -> None:
    bundle = tmp_path / "b.bundle"
    export_bundle(source, bundle, PASSPHRASE, n=FAST_N)
    target = Vault(tmp_path / "target" / "vault.json", use_keyring=False)
    target.set_many({"github_token": "local", "mine": "kept"})
    kept = import_bundle(target, bundle, PASSPHRASE)
    assert kept.imported == ["api_key", "empty", "uni"] and kept.skipped == ["github_token"]
    assert target.get("github_token") == Secret("local")
    replaced = import_bundle(target, bundle, PASSPHRASE, overwrite=True)
    assert replaced.imported == sorted(VALUES) and replaced.skipped == []
    assert values_of(target) == {**VALUES, "mine": "kept"}


def test_import_only_some_names(tmp_path: Path, source: Vault) -> None:
    bundle = tmp_path / "b.bundle"
    export_bundle(source, bundle, PASSPHRASE, n=FAST_N)
    target = Vault(tmp_path / "target" / "vault.json", use_keyring=False)
    result = import_bundle(target, bundle, PASSPHRASE, only=["uni", "api_key", "uni"])
    assert result.imported == ["api_key", "uni"]
    assert target.names() == ["api_key", "uni"]
    before = target.path.read_bytes()
    with pytest.raises(VaultBundleError, match="no secret named nope") as info:
        import_bundle(target, bundle, PASSPHRASE, only=["api_key", "nope"])
    assert "github_token" in str(info.value)  # it says what the bundle does hold (names only)
    assert "ghp-BUNDLED" not in str(info.value)
    assert target.path.read_bytes() == before


def test_failed_import_changes_nothing(tmp_path: Path, source: Vault) -> None:
    bundle = tmp_path / "b.bundle"
    export_bundle(source, bundle, PASSPHRASE, n=FAST_N)
    target = Vault(tmp_path / "target" / "vault.json", use_keyring=False)
    with pytest.raises(VaultBundleError):
        import_bundle(target, bundle, "wrong")
    assert not target.path.exists()  # not even an empty vault was created
    target.set("local", "x")
    before = target.path.read_bytes()
    data = bytearray(bundle.read_bytes())
    data[-5] ^= 0x04
    bundle.write_bytes(bytes(data))
    with pytest.raises(VaultBundleError):
        import_bundle(target, bundle, PASSPHRASE)
    assert target.path.read_bytes() == before


def test_import_refuses_a_wrong_vault_key_without_writing(tmp_path: Path, source: Vault) -> None:
    bundle = tmp_path / "b.bundle"
    export_bundle(source, bundle, PASSPHRASE, n=FAST_N)
    before = source.path.read_bytes()
    wrong = Vault(source.path, passphrase="not the vault passphrase", use_keyring=False)
    with pytest.raises(VaultError, match="cannot be opened"):
        import_bundle(wrong, bundle, PASSPHRASE, overwrite=True)
    assert source.path.read_bytes() == before


def test_seal_refuses_an_empty_passphrase() -> None:
    with pytest.raises(ValueError, match="empty"):
        seal_bundle({"a": "1"}, "")
