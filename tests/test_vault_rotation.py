"""Master-key rotation: what it changes, the states a crash can leave, and `vault rotate-key` killed at random."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mcp_server._errors import VaultCorrupted, VaultError, VaultKeyMismatch
from mcp_server._secrets import Secret
from mcp_server._vault import Vault
from tests.test_vault import MemoryKeyring, write_v1_vault

PASSPHRASE = "the old passphrase"
NEW_PASSPHRASE = "the new passphrase"
VALUES = {f"secret_{i}": f"value-{i}-" + "x" * (i % 7) for i in range(12)}


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / "vault" / "vault.json"


def keyfile_vault(path: Path) -> Vault:
    return Vault(path, use_keyring=False)


def read_doc(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def key_text(path: Path) -> str:
    return path.read_text().strip()


def assert_values(vault: Vault, expected: dict[str, str]) -> None:
    assert vault.names() == sorted(expected)
    for name, value in expected.items():
        assert vault.get(name) == Secret(value), name


def assert_old_key_opens_nothing(vault_path: Path, old_key: str) -> None:
    key_file = vault_path.with_name(vault_path.name + ".key")
    current = key_file.read_text()
    key_file.write_text(old_key + "\n")
    try:
        with pytest.raises(VaultKeyMismatch):
            keyfile_vault(vault_path).check()
    finally:
        key_file.write_text(current)


# ------------------------------------------------------------------------------------------ what it changes


def test_rotation_rewraps_data_keys_and_leaves_values_alone(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set_many(VALUES)
    old_key = key_text(vault.key_file)
    before = read_doc(vault_path)
    rotation = vault.rotate_key()
    assert (rotation.records, rotation.source, rotation.generation, rotation.resumed) == (12, "keyfile", 2, False)
    after = read_doc(vault_path)
    assert after["generation"] == before["generation"] + 1
    assert after["check"] != before["check"]
    for name in VALUES:
        assert after["records"][name]["value"] == before["records"][name]["value"]
        assert after["records"][name]["key"]["nonce"] != before["records"][name]["key"]["nonce"]
        assert after["records"][name]["key"]["ciphertext"] != before["records"][name]["key"]["ciphertext"]
    assert key_text(vault.key_file) != old_key
    assert not vault.staged_key_file.exists()
    assert_values(vault, VALUES)  # the same instance carries on
    assert_values(keyfile_vault(vault_path), VALUES)
    assert_old_key_opens_nothing(vault_path, old_key)
    vault.set("after", "rotation")
    assert keyfile_vault(vault_path).get("after") == Secret("rotation")


def test_rotation_twice_and_of_an_empty_vault(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set("only", "one")
    vault.delete("only")
    assert vault.rotate_key().records == 0
    vault.set("a", "1")
    assert vault.rotate_key().generation == 3
    assert keyfile_vault(vault_path).get("a") == Secret("1")


def test_rotation_without_a_vault_file(vault_path: Path) -> None:
    with pytest.raises(VaultError, match="no key to rotate"):
        keyfile_vault(vault_path).rotate_key()
    assert not vault_path.exists()


def test_passphrase_vault_rotates_to_a_new_passphrase(vault_path: Path) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set_many(VALUES)
    old_salt = read_doc(vault_path)["kdf"]["salt"]
    vault = Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False)
    with pytest.raises(ValueError, match="needs the new passphrase"):
        vault.rotate_key()
    with pytest.raises(ValueError, match="empty"):
        vault.rotate_key(new_passphrase="")
    rotation = vault.rotate_key(new_passphrase=NEW_PASSPHRASE)
    assert (rotation.source, rotation.resumed) == ("scrypt", False)
    assert read_doc(vault_path)["kdf"]["salt"] != old_salt
    assert_values(vault, VALUES)
    assert_values(Vault(vault_path, passphrase=NEW_PASSPHRASE, use_keyring=False), VALUES)
    with pytest.raises(VaultKeyMismatch, match="MCP_CONNECTORS_VAULT_KEY"):
        Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).check()


def test_same_passphrase_still_gives_a_new_master_key(vault_path: Path) -> None:
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).set("a", "1")
    unrelated = vault_path.with_name("vault.json.key")
    unrelated.write_text("a key file this passphrase vault never used\n")
    before = read_doc(vault_path)
    Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).rotate_key(new_passphrase=PASSPHRASE)
    after = read_doc(vault_path)
    assert after["kdf"]["salt"] != before["kdf"]["salt"]  # new salt, so a new derived key
    assert after["records"]["a"]["key"] != before["records"]["a"]["key"]
    assert Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).get("a") == Secret("1")
    assert unrelated.exists()  # only a switch from a key file deletes the key file


def test_key_file_vault_moves_to_a_passphrase(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set_many(VALUES)
    rotation = vault.rotate_key(new_passphrase=NEW_PASSPHRASE)
    assert rotation.source == "scrypt"
    assert read_doc(vault_path)["kdf"]["source"] == "scrypt"
    assert not vault.key_file.exists()
    assert_values(vault, VALUES)
    assert_values(Vault(vault_path, passphrase=NEW_PASSPHRASE, use_keyring=False), VALUES)
    with pytest.raises(VaultKeyMismatch, match="protected by a passphrase"):
        keyfile_vault(vault_path).check()


def test_version_1_vault_rotates_into_version_2(vault_path: Path) -> None:
    write_v1_vault(vault_path, VALUES)
    old_key = key_text(vault_path.with_name("vault.json.key"))
    rotation = keyfile_vault(vault_path).rotate_key()
    assert rotation.generation == 2
    doc = read_doc(vault_path)
    assert doc["version"] == 2
    assert all(set(record) == {"key", "value"} for record in doc["records"].values())
    assert_values(keyfile_vault(vault_path), VALUES)
    assert_old_key_opens_nothing(vault_path, old_key)


def test_a_record_that_does_not_decrypt_stops_rotation_before_any_change(vault_path: Path) -> None:
    keyfile_vault(vault_path).set_many(VALUES)
    doc = read_doc(vault_path)
    wrapped = bytearray(base64.b64decode(doc["records"]["secret_3"]["key"]["ciphertext"]))
    wrapped[0] ^= 1
    doc["records"]["secret_3"]["key"]["ciphertext"] = base64.b64encode(bytes(wrapped)).decode()
    vault_path.write_text(json.dumps(doc))
    before, key_before = vault_path.read_bytes(), key_text(vault_path.with_name("vault.json.key"))
    with pytest.raises(VaultCorrupted, match="'secret_3'"):
        keyfile_vault(vault_path).rotate_key()
    assert vault_path.read_bytes() == before
    assert key_text(vault_path.with_name("vault.json.key")) == key_before
    assert not vault_path.with_name("vault.json.key.next").exists()


# ------------------------------------------------------------------------------------------ crash states


def interrupted_before_promotion(vault_path: Path) -> tuple[str, str]:
    """The state a kill between writing the file and promoting the key leaves: (old key, new key)."""
    vault = keyfile_vault(vault_path)
    old = key_text(vault.key_file)
    vault.rotate_key()
    new = key_text(vault.key_file)
    vault.staged_key_file.write_text(new + "\n")
    vault.key_file.write_text(old + "\n")
    return old, new


def test_crash_after_staging_leaves_the_vault_under_the_old_key(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set_many(VALUES)
    old = key_text(vault.key_file)
    stale = base64.b64encode(os.urandom(32)).decode()
    vault.staged_key_file.write_text(stale + "\n")  # staged, then killed before the file was written
    assert_values(keyfile_vault(vault_path), VALUES)
    rotation = keyfile_vault(vault_path).rotate_key()
    assert rotation.resumed is False  # nothing had changed yet: this is a whole new rotation
    assert key_text(vault.key_file) not in (old, stale)
    assert not vault.staged_key_file.exists()
    assert_values(keyfile_vault(vault_path), VALUES)


def test_crash_before_promotion_still_opens_and_rerun_completes(vault_path: Path) -> None:
    keyfile_vault(vault_path).set_many(VALUES)
    old, new = interrupted_before_promotion(vault_path)
    vault = keyfile_vault(vault_path)
    assert_values(vault, VALUES)  # the staged key matches the file's check
    vault.set("written_meanwhile", "w")  # writers work in this state too, under the staged key
    expected = {**VALUES, "written_meanwhile": "w"}
    assert_values(keyfile_vault(vault_path), expected)
    rotation = keyfile_vault(vault_path).rotate_key()
    assert rotation.resumed is True
    assert rotation.records == len(expected)
    assert key_text(vault.key_file) == new
    assert not vault.staged_key_file.exists()
    assert_values(keyfile_vault(vault_path), expected)
    assert_old_key_opens_nothing(vault_path, old)


def test_crash_before_promotion_and_a_lost_staged_key_is_a_clear_error(vault_path: Path) -> None:
    keyfile_vault(vault_path).set_many(VALUES)
    interrupted_before_promotion(vault_path)
    vault_path.with_name("vault.json.key.next").unlink()
    with pytest.raises(VaultKeyMismatch, match="is not the key it was created with") as info:
        keyfile_vault(vault_path).check()
    assert str(vault_path) in str(info.value)


def test_crash_after_switching_to_a_passphrase_leaves_a_stale_key_file(vault_path: Path) -> None:
    vault = keyfile_vault(vault_path)
    vault.set_many(VALUES)
    key_file_text = vault.key_file.read_text()
    vault.rotate_key(new_passphrase=NEW_PASSPHRASE)
    vault.key_file.write_text(key_file_text)  # killed before the old key file was deleted
    # Re-run as the CLI does: the current configuration (no passphrase) no longer opens the vault, but
    # the new passphrase does, so the rotation is complete and only the leftover goes.
    rotation = keyfile_vault(vault_path).rotate_key(new_passphrase=NEW_PASSPHRASE)
    assert (rotation.resumed, rotation.source) == (True, "scrypt")
    assert not vault.key_file.exists()
    assert_values(Vault(vault_path, passphrase=NEW_PASSPHRASE, use_keyring=False), VALUES)
    with pytest.raises(VaultKeyMismatch):  # a wrong new passphrase is not mistaken for completion
        Vault(vault_path, passphrase=PASSPHRASE, use_keyring=False).rotate_key(new_passphrase="something else")


def test_rotation_removes_temporary_files_of_killed_writers(vault_path: Path) -> None:
    keyfile_vault(vault_path).set("a", "1")
    leftovers = [".vault.json.abcd1234.tmp", ".vault.json.key.efgh5678.tmp", ".vault.json.key.next.ijkl9012.tmp"]
    unrelated = [".vault.json.bundle.mnop3456.tmp", "notes.tmp"]
    for name in leftovers + unrelated:
        (vault_path.parent / name).write_text("partial")
    keyfile_vault(vault_path).rotate_key()
    remaining = sorted(p.name for p in vault_path.parent.iterdir())
    assert remaining == sorted(["vault.json", "vault.json.key", "vault.json.lock", *unrelated])


def _rotate_repeatedly(path: str, times: int, started: Any) -> None:
    vault = Vault(Path(path), use_keyring=False)
    started.set()
    for _ in range(times):
        vault.rotate_key()


def test_readers_never_fail_while_another_process_rotates(vault_path: Path) -> None:
    keyfile_vault(vault_path).set_many(VALUES)
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    rotator = ctx.Process(target=_rotate_repeatedly, args=(str(vault_path), 30, started))
    rotator.start()
    assert started.wait(60)
    reader = keyfile_vault(vault_path)  # one long-lived reader (a server) and fresh ones (CLI calls)
    reads = 0
    while rotator.is_alive():
        for vault in (reader, keyfile_vault(vault_path)):
            assert vault.get("secret_5") == Secret(VALUES["secret_5"])
            vault.check()
            reads += 1
    rotator.join(60)
    assert rotator.exitcode == 0
    assert read_doc(vault_path)["generation"] == 31
    assert reads > 0
    assert_values(keyfile_vault(vault_path), VALUES)


# ------------------------------------------------------------------------------------------ keyring


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    backend = memory.backend()
    keyring.set_keyring(backend)
    try:
        yield memory
    finally:
        keyring.set_keyring(previous)
        keyring.backend.KeyringBackend._classes.discard(type(backend))  # type: ignore[attr-defined]


def test_keyring_vault_rotation_and_its_crash_state(vault_path: Path, memory_keyring: MemoryKeyring) -> None:
    Vault(vault_path).set_many(VALUES)
    user = str(vault_path.resolve())
    primary, staged = ("mcp-connectors", user), ("mcp-connectors", user + "#next")
    old = memory_keyring.store[primary]
    rotation = Vault(vault_path).rotate_key()
    assert (rotation.source, rotation.resumed) == ("keyring", False)
    new = memory_keyring.store[primary]
    assert new != old
    assert staged not in memory_keyring.store
    assert_values(Vault(vault_path), VALUES)

    # Killed between writing the file and promoting: the primary entry still holds the old key.
    memory_keyring.store[primary], memory_keyring.store[staged] = old, new
    assert_values(Vault(vault_path), VALUES)
    assert Vault(vault_path).rotate_key().resumed is True
    assert memory_keyring.store[primary] == new
    assert staged not in memory_keyring.store
    memory_keyring.store[primary] = old
    with pytest.raises(VaultKeyMismatch, match="keyring"):
        Vault(vault_path).check()


# ------------------------------------------------------------------------------------------ killed for real

RECORDS = 2000
KILLS = 20


def cli_env(vault_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_CONNECTORS_")}
    env.update({"MCP_CONNECTORS_VAULT": str(vault_path), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    return env


def rotate_key_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "vault", "rotate-key"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def wait_for_change(process: subprocess.Popen[bytes], *paths: Path) -> float | None:
    """Seconds until one of `paths` is created, replaced or removed; None if the process ends first."""
    start = time.monotonic()
    before = [stamp(path) for path in paths]
    while process.poll() is None:
        if [stamp(path) for path in paths] != before:
            return time.monotonic() - start
        time.sleep(0.0002)
    return None


def watch_one_rotation(env: dict[str, str], vault_path: Path) -> tuple[float, float]:
    """Run rotate-key to the end; return when it staged the new key and how long it took to promote it."""
    staged = vault_path.with_name("vault.json.key.next")
    start = time.monotonic()
    process = rotate_key_process(env)
    staged_after = wait_for_change(process, staged)
    assert staged_after is not None, "the rotation never staged a key"
    promoted_after = wait_for_change(process, staged)  # renamed over the key file
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert f"rotated the master key of {RECORDS} records".encode() in stderr
    window = promoted_after if promoted_after is not None else time.monotonic() - start - staged_after
    return staged_after, window


def state_of(vault_path: Path) -> str:
    """Which crash window a kill left the vault in, read from the files (for the summary; all must open)."""
    if not vault_path.with_name("vault.json.key.next").exists():
        return "no staged key"
    primary = base64.b64decode(key_text(vault_path.with_name("vault.json.key")))
    doc = read_doc(vault_path)
    try:
        AESGCM(primary).decrypt(
            base64.b64decode(doc["check"]["nonce"]),
            base64.b64decode(doc["check"]["ciphertext"]),
            b"mcp-connectors-vault/v2/check/generation=" + str(doc["generation"]).encode(),
        )
    except InvalidTag:
        return "file under the staged key"
    return "key staged, file unchanged"


def test_rotate_key_killed_at_random_points_loses_nothing(vault_path: Path) -> None:
    values = {f"record_{i:04d}": f"value {i} " + "v" * (i % 40) for i in range(RECORDS)}
    keyfile_vault(vault_path).set_many(values)
    env = cli_env(vault_path)
    original_key = key_text(vault_path.with_name("vault.json.key"))

    # A watched rotation says when the key gets staged and how long staging -> file written -> promoted takes
    # (milliseconds, against a second of interpreter start-up). A quarter of the kills fall at random before
    # staging; the others follow the first change on disk (a key staged or promoted, the vault replaced)
    # after a random delay spanning that window, so they land in each of the crash windows in turn.
    staged_after, window = watch_one_rotation(env, vault_path)
    staged, key_file = vault_path.with_name("vault.json.key.next"), vault_path.with_name("vault.json.key")
    rng = random.Random(20240607)
    outcomes: Counter[str] = Counter()
    early = KILLS // 4
    for i in range(KILLS):
        process = rotate_key_process(env)
        if i < early:
            time.sleep(staged_after * (0.5 + 0.5 * (i + rng.random()) / early))
        elif wait_for_change(process, staged, key_file, vault_path) is not None:
            time.sleep(rng.uniform(0, 1.5 * window))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        outcomes["killed" if process.returncode == -signal.SIGKILL else f"finished ({process.returncode})"] += 1
        outcomes[state_of(vault_path)] += 1
        # Whatever the moment, the vault opens and every secret is there, unchanged.
        assert_values(keyfile_vault(vault_path), values)

    print(f"\nstaged after {staged_after:.3f}s, promoted {window * 1000:.1f} ms later; {dict(outcomes)}")
    assert outcomes["killed"] >= KILLS // 2
    assert outcomes["file under the staged key"] + outcomes["key staged, file unchanged"] > 0

    before_final = key_text(vault_path.with_name("vault.json.key"))
    staged = vault_path.with_name("vault.json.key.next")
    staged_before_final = key_text(staged) if staged.exists() else None
    final = subprocess.run(
        [sys.executable, "-m", "mcp_server", "vault", "rotate-key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr
    assert "completed an interrupted rotation" in final.stderr or "rotated the master key" in final.stderr
    assert not staged.exists()
    assert_values(keyfile_vault(vault_path), values)
    leftovers = sorted(p.name for p in vault_path.parent.iterdir())
    assert leftovers == ["vault.json", "vault.json.key", "vault.json.lock"]
    for old in {original_key, before_final, staged_before_final} - {key_text(vault_path.with_name("vault.json.key"))}:
        if old is not None:
            assert_old_key_opens_nothing(vault_path, old)
