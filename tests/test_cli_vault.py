"""`mcp-connectors vault ...` as a user runs it: real subprocesses, real files, never the OS keyring."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from mcp_server._secrets import Secret
from mcp_server._vault import Vault
from tests._scenario import assert_no_secret
from tests.conftest import PASSPHRASE, run_cli

NEW_PASSPHRASE = "a brand new vault passphrase"
BUNDLE_PASSPHRASE = "bundle passphrase for moving secrets"
VALUES = {
    "github_token": "ghp-VALUE-one-never-printed",
    "api_key": "key-VALUE-two-never-printed",
    "x@acct": "VALUE-three-never-printed",
}


def keyfile_env(vault: Path) -> dict[str, str]:
    """A user without MCP_CONNECTORS_VAULT_KEY and without a usable OS keyring: the key-file vault."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_CONNECTORS_")}
    env.update({"MCP_CONNECTORS_VAULT": str(vault), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    return env


@pytest.fixture
def keyfile_vault(tmp_path: Path) -> Path:
    path = tmp_path / "keyfile" / "vault.json"
    Vault(path, use_keyring=False).set_many(VALUES)
    return path


def assert_values(vault: Vault, expected: dict[str, str]) -> None:
    assert vault.names() == sorted(expected)
    for name, value in expected.items():
        assert vault.get(name) == Secret(value)


def assert_quiet(*results: object) -> None:
    """No value of VALUES, and no traceback, in anything a command printed."""
    for result in results:
        text = getattr(result, "stdout", "") + getattr(result, "stderr", "")
        assert "Traceback" not in text
        for value in VALUES.values():
            assert value not in text
        assert_no_secret(text)


# ------------------------------------------------------------------------------------------ set / list / delete


def test_vault_set_list_delete(server_env: dict[str, str]) -> None:
    stored = run_cli(server_env, "vault", "set", "new_secret", stdin="value-with-newline\n\n")
    assert stored.returncode == 0, stored.stderr
    listed = run_cli(server_env, "vault", "list")
    assert listed.stdout.split() == ["api_key", "echo_token", "new_secret", "password"]
    assert "value-with" not in listed.stdout + listed.stderr + stored.stdout + stored.stderr

    vault = Vault(Path(server_env["MCP_CONNECTORS_VAULT"]), passphrase=server_env["MCP_CONNECTORS_VAULT_KEY"])
    secret = vault.get("new_secret")
    # Exactly one trailing newline is stripped.
    assert secret is not None and secret.reveal() == "value-with-newline\n"

    assert run_cli(server_env, "vault", "delete", "new_secret").returncode == 0
    missing = run_cli(server_env, "vault", "delete", "new_secret")
    assert missing.returncode == 1 and "no secret named" in missing.stderr
    assert run_cli(server_env, "vault", "set", "bad name!", stdin="x").returncode == 2
    assert run_cli(server_env, "vault", "set", "empty", stdin="").returncode == 1


def test_vault_help_lists_every_action(server_env: dict[str, str]) -> None:
    result = run_cli(server_env, "vault", "--help")
    assert result.returncode == 0
    for action in ("set", "list", "delete", "rotate-key", "export", "import"):
        assert action in result.stdout
    for action, words in {
        "rotate-key": ("--new-passphrase", "--passphrase-from-env", "MCP_CONNECTORS_NEW_VAULT_KEY"),
        "export": ("--force", "MCP_CONNECTORS_BUNDLE_KEY"),
        "import": ("--overwrite", "--only", "MCP_CONNECTORS_BUNDLE_KEY"),
    }.items():
        shown = run_cli(server_env, "vault", action, "--help")
        assert shown.returncode == 0
        for word in words:
            assert word in shown.stdout, (action, word)


@pytest.mark.parametrize("damage", ["tamper", "truncate", "garbage"])
def test_damaged_vault_is_a_clear_error(server_env: dict[str, str], damage: str) -> None:
    vault_file = Path(server_env["MCP_CONNECTORS_VAULT"])
    data = vault_file.read_bytes()
    if damage == "tamper":
        document = json.loads(data)
        sealed = document["records"]["echo_token"]["value"]
        flipped = "A" if sealed["ciphertext"][5] != "A" else "B"
        sealed["ciphertext"] = sealed["ciphertext"][:5] + flipped + sealed["ciphertext"][6:]
        vault_file.write_text(json.dumps(document))
    elif damage == "truncate":
        vault_file.write_bytes(data[: len(data) // 2])
    else:
        vault_file.write_bytes(b"\x00\x01garbage")
    listed = run_cli(server_env, "vault", "list")
    called = run_cli(server_env, "call", "echo_get_item", "--args", '{"item_id": "1"}')
    if damage != "tamper":  # a tampered record is only found when it is decrypted
        assert listed.returncode == 1 and str(vault_file) in listed.stderr
        assert "Traceback" not in listed.stderr
    assert called.returncode == 1
    body = json.loads(called.stdout)
    assert body["error_code"] == "AUTH_MISSING"
    assert str(vault_file) in body["error"]
    assert vault_file.exists()  # never silently reset
    assert_no_secret(called.stdout + called.stderr)


def test_wrong_vault_key(server_env: dict[str, str]) -> None:
    env = {**server_env, "MCP_CONNECTORS_VAULT_KEY": "not the passphrase"}
    listed = run_cli(env, "vault", "list")
    assert listed.returncode == 1
    assert str(Path(server_env["MCP_CONNECTORS_VAULT"])) in listed.stderr
    assert "Traceback" not in listed.stderr
    called = run_cli(env, "call", "echo_get_item", "--args", '{"item_id": "1"}')
    assert json.loads(called.stdout)["error_code"] == "AUTH_MISSING"
    stored = run_cli(env, "vault", "set", "other", stdin="x-value")
    assert stored.returncode == 1  # a wrong key never overwrites the vault


# ------------------------------------------------------------------------------------------ rotate-key


def test_rotate_key_of_a_key_file_vault(keyfile_vault: Path) -> None:
    env = keyfile_env(keyfile_vault)
    key_file = keyfile_vault.with_name("vault.json.key")
    old_key = key_file.read_text()
    before = json.loads(keyfile_vault.read_text())
    rotated = run_cli(env, "vault", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "rotated the master key of 3 records" in rotated.stderr
    assert str(key_file) in rotated.stderr  # where the new key is, to back it up
    assert_quiet(rotated)
    after = json.loads(keyfile_vault.read_text())
    assert after["generation"] == before["generation"] + 1
    for name in VALUES:
        assert after["records"][name]["value"] == before["records"][name]["value"]  # values untouched
        assert after["records"][name]["key"] != before["records"][name]["key"]  # data keys re-wrapped
    assert key_file.read_text() != old_key
    assert not keyfile_vault.with_name("vault.json.key.next").exists()
    assert_values(Vault(keyfile_vault, use_keyring=False), VALUES)
    listed = run_cli(env, "vault", "list")
    assert listed.returncode == 0 and listed.stdout.split() == sorted(VALUES)
    key_file.write_text(old_key)
    stale = run_cli(env, "vault", "list")
    assert stale.returncode == 1 and "is not the key it was created with" in stale.stderr


def test_rotate_key_of_a_passphrase_vault_needs_the_new_passphrase(server_env: dict[str, str]) -> None:
    vault_file = Path(server_env["MCP_CONNECTORS_VAULT"])
    before = vault_file.read_bytes()
    refused = run_cli(server_env, "vault", "rotate-key")  # stdin is not a terminal: no prompt possible
    assert refused.returncode == 2
    assert "MCP_CONNECTORS_NEW_VAULT_KEY" in refused.stderr
    assert vault_file.read_bytes() == before

    rotated = run_cli({**server_env, "MCP_CONNECTORS_NEW_VAULT_KEY": NEW_PASSPHRASE}, "vault", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "rotated the master key of 3 records" in rotated.stderr
    assert "set MCP_CONNECTORS_VAULT_KEY" in rotated.stderr  # the user must switch to the new passphrase
    assert NEW_PASSPHRASE not in rotated.stderr and PASSPHRASE not in rotated.stderr
    old = run_cli(server_env, "vault", "list")
    assert old.returncode == 1 and "MCP_CONNECTORS_VAULT_KEY" in old.stderr
    new_env = {**server_env, "MCP_CONNECTORS_VAULT_KEY": NEW_PASSPHRASE}
    listed = run_cli(new_env, "vault", "list")
    assert listed.returncode == 0 and listed.stdout.split() == ["api_key", "echo_token", "password"]
    called = run_cli(new_env, "call", "echo_get_item", "--args", '{"item_id": "1"}')
    assert called.returncode == 0, called.stdout

    # Run again with the old passphrase still configured: the vault is already under the new one.
    again = run_cli({**server_env, "MCP_CONNECTORS_NEW_VAULT_KEY": NEW_PASSPHRASE}, "vault", "rotate-key")
    assert again.returncode == 0, again.stderr
    assert "completed an interrupted rotation" in again.stderr


def test_rotate_key_moves_a_key_file_vault_to_a_passphrase(keyfile_vault: Path) -> None:
    env = {**keyfile_env(keyfile_vault), "MY_NEW_PASSPHRASE": NEW_PASSPHRASE}
    rotated = run_cli(env, "vault", "rotate-key", "--passphrase-from-env", "MY_NEW_PASSPHRASE")
    assert rotated.returncode == 0, rotated.stderr
    assert "set MCP_CONNECTORS_VAULT_KEY" in rotated.stderr
    assert json.loads(keyfile_vault.read_text())["kdf"]["source"] == "scrypt"
    assert not keyfile_vault.with_name("vault.json.key").exists()  # the old key opens nothing any more
    assert_values(Vault(keyfile_vault, passphrase=NEW_PASSPHRASE, use_keyring=False), VALUES)
    without = run_cli(keyfile_env(keyfile_vault), "vault", "list")
    assert without.returncode == 1 and "protected by a passphrase" in without.stderr


def test_rotate_key_new_passphrase_flag_reads_the_default_variable(keyfile_vault: Path) -> None:
    env = {**keyfile_env(keyfile_vault), "MCP_CONNECTORS_NEW_VAULT_KEY": NEW_PASSPHRASE}
    plain = run_cli(env, "vault", "rotate-key")  # without the flag a key-file vault keeps its key file
    assert plain.returncode == 0, plain.stderr
    assert json.loads(keyfile_vault.read_text())["kdf"]["source"] == "keyfile"
    switched = run_cli(env, "vault", "rotate-key", "--new-passphrase")
    assert switched.returncode == 0, switched.stderr
    assert json.loads(keyfile_vault.read_text())["kdf"]["source"] == "scrypt"
    assert_values(Vault(keyfile_vault, passphrase=NEW_PASSPHRASE, use_keyring=False), VALUES)


def test_rotate_key_without_a_vault_or_with_the_wrong_key(tmp_path: Path, keyfile_vault: Path) -> None:
    missing = run_cli(keyfile_env(tmp_path / "none" / "vault.json"), "vault", "rotate-key")
    assert missing.returncode == 1
    assert "no key to rotate" in missing.stderr
    assert not (tmp_path / "none" / "vault.json").exists()
    key_file = keyfile_vault.with_name("vault.json.key")
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    before = keyfile_vault.read_bytes()
    wrong = run_cli(keyfile_env(keyfile_vault), "vault", "rotate-key")
    assert wrong.returncode == 1 and str(keyfile_vault) in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert keyfile_vault.read_bytes() == before
    assert not keyfile_vault.with_name("vault.json.key.next").exists()


# ------------------------------------------------------------------------------------------ export / import


def bundle_env(env: dict[str, str], passphrase: str = BUNDLE_PASSPHRASE) -> dict[str, str]:
    return {**env, "MCP_CONNECTORS_BUNDLE_KEY": passphrase}


def test_export_import_round_trip_into_a_vault_with_another_key_source(
    tmp_path: Path, server_env: dict[str, str], keyfile_vault: Path
) -> None:
    bundle = tmp_path / "moving" / "secrets.bundle"
    bundle.parent.mkdir()
    exported = run_cli(bundle_env(keyfile_env(keyfile_vault)), "vault", "export", str(bundle))
    assert exported.returncode == 0, exported.stderr
    assert "exported 3 secrets" in exported.stderr
    assert_quiet(exported)
    if os.name == "posix":
        assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    text = bundle.read_text()
    for value in VALUES.values():
        assert value not in text
    assert [p.name for p in bundle.parent.iterdir()] == ["secrets.bundle"]  # no temporary file left

    # Into the passphrase vault of server_env, which already holds three other secrets.
    imported = run_cli(bundle_env(server_env), "vault", "import", str(bundle))
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 secrets" in imported.stderr and "github_token, x@acct" in imported.stderr
    assert "kept 1 secret the vault already held (pass --overwrite to replace them): api_key" in imported.stderr
    assert_quiet(imported)
    target = Vault(Path(server_env["MCP_CONNECTORS_VAULT"]), passphrase=PASSPHRASE, use_keyring=False)
    assert target.names() == ["api_key", "echo_token", "github_token", "password", "x@acct"]
    assert target.get("github_token") == Secret(VALUES["github_token"])
    assert target.get("x@acct") == Secret(VALUES["x@acct"])
    assert target.get("api_key") != Secret(VALUES["api_key"])  # existed in the target already: kept
    imported_again = run_cli(bundle_env(server_env), "vault", "import", str(bundle))
    assert imported_again.returncode == 0
    assert "imported 0 secrets" in imported_again.stderr
    assert "kept 3 secrets" in imported_again.stderr and "--overwrite" in imported_again.stderr


def test_import_into_a_fresh_key_file_vault(tmp_path: Path, server_env: dict[str, str]) -> None:
    bundle = tmp_path / "all.bundle"
    exported = run_cli(bundle_env(server_env), "vault", "export", str(bundle))
    assert exported.returncode == 0, exported.stderr
    fresh = tmp_path / "fresh" / "vault.json"
    imported = run_cli(bundle_env(keyfile_env(fresh)), "vault", "import", str(bundle))
    assert imported.returncode == 0, imported.stderr
    assert json.loads(fresh.read_text())["kdf"]["source"] == "keyfile"
    source = Vault(Path(server_env["MCP_CONNECTORS_VAULT"]), passphrase=PASSPHRASE, use_keyring=False)
    copied = Vault(fresh, use_keyring=False)
    assert copied.names() == source.names()
    for name in source.names():
        assert copied.get(name) == source.get(name)


def test_import_overwrite_and_only(tmp_path: Path, keyfile_vault: Path) -> None:
    bundle = tmp_path / "b.bundle"
    assert run_cli(bundle_env(keyfile_env(keyfile_vault)), "vault", "export", str(bundle)).returncode == 0
    target_path = tmp_path / "target" / "vault.json"
    target = Vault(target_path, use_keyring=False)
    target.set_many({"github_token": "local value", "local_only": "stays"})
    env = bundle_env(keyfile_env(target_path))

    only = run_cli(env, "vault", "import", str(bundle), "--only", "api_key")
    assert only.returncode == 0, only.stderr
    assert target.names() == ["api_key", "github_token", "local_only"]

    kept = run_cli(env, "vault", "import", str(bundle), "--only", "github_token", "--only", "x@acct")
    assert kept.returncode == 0
    assert "kept 1 secret " in kept.stderr and "github_token" in kept.stderr
    assert target.get("github_token") == Secret("local value")
    assert target.get("x@acct") == Secret(VALUES["x@acct"])

    overwritten = run_cli(env, "vault", "import", str(bundle), "--overwrite")
    assert overwritten.returncode == 0
    assert "imported 3 secrets" in overwritten.stderr and "kept" not in overwritten.stderr
    assert_values(target, {**VALUES, "local_only": "stays"})
    assert_quiet(only, kept, overwritten)

    before = target_path.read_bytes()
    unknown = run_cli(env, "vault", "import", str(bundle), "--only", "api_key", "--only", "not_in_bundle")
    assert unknown.returncode == 1 and "not_in_bundle" in unknown.stderr
    assert target_path.read_bytes() == before  # nothing imported, not even api_key
    invalid = run_cli(env, "vault", "import", str(bundle), "--only", "bad name!")
    assert invalid.returncode == 2 and "Invalid secret name" in invalid.stderr


def test_export_refuses_to_overwrite_without_force(tmp_path: Path, keyfile_vault: Path) -> None:
    bundle = tmp_path / "b.bundle"
    bundle.write_text("something precious")
    env = bundle_env(keyfile_env(keyfile_vault))
    refused = run_cli(env, "vault", "export", str(bundle))
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert bundle.read_text() == "something precious"
    forced = run_cli(env, "vault", "export", str(bundle), "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(bundle.read_text())["format"] == "mcp-connectors-vault-bundle"
    if os.name == "posix":
        assert stat.S_IMODE(bundle.stat().st_mode) == 0o600


def test_wrong_or_missing_bundle_passphrase_imports_nothing(tmp_path: Path, keyfile_vault: Path) -> None:
    bundle = tmp_path / "b.bundle"
    assert run_cli(bundle_env(keyfile_env(keyfile_vault)), "vault", "export", str(bundle)).returncode == 0
    target_path = tmp_path / "target" / "vault.json"
    Vault(target_path, use_keyring=False).set("local", "x")
    before = target_path.read_bytes()
    wrong = run_cli(bundle_env(keyfile_env(target_path), "not the bundle passphrase"), "vault", "import", str(bundle))
    assert wrong.returncode == 1
    assert "passphrase is not the one it was exported with" in wrong.stderr
    assert "Nothing was imported" in wrong.stderr
    assert "not the bundle passphrase" not in wrong.stderr
    no_passphrase = run_cli(keyfile_env(target_path), "vault", "import", str(bundle))
    assert no_passphrase.returncode == 2 and "MCP_CONNECTORS_BUNDLE_KEY" in no_passphrase.stderr
    assert target_path.read_bytes() == before
    missing = run_cli(bundle_env(keyfile_env(target_path)), "vault", "import", str(tmp_path / "nope.bundle"))
    assert missing.returncode == 1 and "nope.bundle" in missing.stderr


@pytest.mark.parametrize("where", ["payload", "check", "salt", "truncate"])
def test_damaged_bundle_imports_nothing(tmp_path: Path, keyfile_vault: Path, where: str) -> None:
    bundle = tmp_path / "b.bundle"
    assert run_cli(bundle_env(keyfile_env(keyfile_vault)), "vault", "export", str(bundle)).returncode == 0
    doc = json.loads(bundle.read_text())
    if where == "truncate":
        bundle.write_bytes(bundle.read_bytes()[:-40])
    else:
        node = doc["kdf"] if where == "salt" else doc[where]
        field = "salt" if where == "salt" else "ciphertext"
        raw = bytearray(base64.b64decode(node[field]))
        raw[len(raw) // 2] ^= 0x10
        node[field] = base64.b64encode(bytes(raw)).decode()
        bundle.write_text(json.dumps(doc))
    target_path = tmp_path / "target" / "vault.json"
    result = run_cli(bundle_env(keyfile_env(target_path)), "vault", "import", str(bundle))
    assert result.returncode == 1
    assert str(bundle) in result.stderr and "Nothing was imported" in result.stderr
    assert_quiet(result)
    assert not target_path.exists()


def test_export_failures_write_nothing(tmp_path: Path, keyfile_vault: Path) -> None:
    bundle = tmp_path / "b.bundle"
    env = bundle_env(keyfile_env(keyfile_vault))
    no_dir = run_cli(env, "vault", "export", str(tmp_path / "no" / "b.bundle"))
    assert no_dir.returncode == 1 and "Could not write the bundle" in no_dir.stderr
    assert not (tmp_path / "no").exists()
    empty = run_cli(bundle_env(keyfile_env(tmp_path / "empty" / "vault.json")), "vault", "export", str(bundle))
    assert empty.returncode == 1 and "nothing to export" in empty.stderr
    no_passphrase = run_cli(keyfile_env(keyfile_vault), "vault", "export", str(bundle))
    assert no_passphrase.returncode == 2 and "MCP_CONNECTORS_BUNDLE_KEY" in no_passphrase.stderr
    keyfile_vault.with_name("vault.json.key").write_text(base64.b64encode(os.urandom(32)).decode())
    wrong = run_cli(env, "vault", "export", str(bundle))
    assert wrong.returncode == 1 and str(keyfile_vault) in wrong.stderr
    assert_quiet(no_dir, empty, no_passphrase, wrong)
    assert not bundle.exists()
