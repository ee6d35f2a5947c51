"""The HashiCorp Vault secret store against a fake of Vault's KV v2 HTTP API (tests/_fake_hashicorp.py)."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mcp_server._config import HashiCorpSettings, Settings
from mcp_server._errors import VaultError
from mcp_server._secrets import Secret
from mcp_server._vault import Vault
from mcp_server._vault_hashicorp import HashiCorpVault
from mcp_server._vault_store import open_vault
from tests._fake_hashicorp import ROOT_TOKEN, FakeHashiCorpThread, FakeHashiCorpVault
from tests._upstream import free_port
from tests.conftest import run_cli

CANARY = "hvs.CANARY-7f3e9a1b-never-shown"
"""A valid token in the fake: it must never appear in a message, a repr or a log line."""


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeHashiCorpVault]:
    thread = FakeHashiCorpThread()
    yield thread.start()
    thread.stop()


@pytest.fixture
def fake(fake_server: FakeHashiCorpVault) -> FakeHashiCorpVault:
    fake_server.reset()
    fake_server.tokens.add(CANARY)
    return fake_server


def store_for(fake: FakeHashiCorpVault, token: str = CANARY, **changes: object) -> HashiCorpVault:
    settings = HashiCorpSettings(addr=fake.url, token=Secret(token))
    fields = {name: getattr(settings, name) for name in settings.__dataclass_fields__}
    fields.update(changes)
    return HashiCorpVault(HashiCorpSettings(**fields))  # pyright: ignore[reportArgumentType]


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(VaultError) as caught:
        call()
    message = str(caught.value)
    assert CANARY not in message
    return message


# ---------------------------------------------------------------------------------------------- round trips


def test_set_get_round_trip_stores_one_kv2_secret_per_name(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    store.set("github_token", "ghp-first")
    store.set("github_token", "ghp-second")
    store.set("api_key@work", "k-1")
    assert store.get("github_token") == Secret("ghp-second")
    assert store.get("api_key@work") == Secret("k-1")
    # KV v2 layout: <mount>/data/<prefix>NAME holding {"value": ...}, a new version per write.
    assert [v.data for v in fake.store[("secret", "mcp-connectors/github_token")]] == [
        {"value": "ghp-first"},
        {"value": "ghp-second"},
    ]
    assert fake.latest("secret", "mcp-connectors/api_key@work") == {"value": "k-1"}
    writes = [s for s in fake.seen if s.method == "POST"]
    assert writes and all(s.headers["x-vault-token"] == CANARY for s in writes)
    assert all("x-vault-namespace" not in s.headers for s in fake.seen)


def test_missing_secret_is_none_and_delete_of_missing_is_false(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    assert store.get("nope") is None
    assert store.delete("nope") is False
    assert store.names() == []  # the prefix folder does not exist yet: Vault answers 404


def test_names_lists_the_prefix_folder_only(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    for name in ("zeta", "alpha", "m.n@acct"):
        store.set(name, "v")
    fake.put("secret", "mcp-connectors/team/nested", {"value": "in a sub-folder"})
    fake.put("secret", "mcp-connectors/has space", {"value": "not a valid name"})
    fake.put("secret", "elsewhere", {"value": "outside the prefix"})
    assert store.names() == ["alpha", "m.n@acct", "zeta"]


def test_delete_removes_every_version(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    store.set("gone", "v1")
    store.set("gone", "v2")
    store.set("kept", "k")
    assert store.delete("gone") is True
    assert store.get("gone") is None
    assert ("secret", "mcp-connectors/gone") not in fake.store
    assert store.names() == ["kept"]
    assert store.delete("gone") is False
    assert [s.method for s in fake.seen if s.path.endswith("/metadata/mcp-connectors/gone")][-3:] == [
        "GET",
        "DELETE",
        "GET",
    ]


def test_deleted_latest_version_reads_as_missing_but_can_be_deleted(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    store.set("rotated", "old")
    fake.soft_delete("secret", "mcp-connectors/rotated")  # `vault kv delete`: metadata stays
    assert store.get("rotated") is None
    assert store.names() == ["rotated"]
    assert store.delete("rotated") is True
    assert store.names() == []


def test_custom_mount_prefix_and_namespace(fake: FakeHashiCorpVault) -> None:
    fake.mounts["team/kv"] = "kv2"
    fake.namespace = "eng/platform"
    store = store_for(fake, mount="/team/kv/", prefix="apps/mcp", namespace="eng/platform")
    store.set("tok", "t")
    assert fake.latest("team/kv", "apps/mcp/tok") == {"value": "t"}
    assert store.names() == ["tok"]
    assert store.get("tok") == Secret("t")
    assert all(s.headers.get("x-vault-namespace") == "eng/platform" for s in fake.seen)
    assert "namespace 'eng/platform'" in store.describe()
    message = error_of(store_for(fake, mount="team/kv", namespace="eng/other").check)
    assert "VAULT_TOKEN is invalid or expired (or belongs to another namespace than VAULT_NAMESPACE)" in message
    assert "team/kv" in store.describe() and "apps/mcp/" in store.describe()


def test_prefix_slash_means_the_mount_root(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake, prefix="/")
    store.set("top", "t")
    assert fake.latest("secret", "top") == {"value": "t"}
    assert store.names() == ["top"]


def test_strict_http_list_variant_is_served_too(fake: FakeHashiCorpVault) -> None:
    """hvac's strict_http mode sends GET ?list=true instead of LIST; the fake answers both like Vault."""
    import requests

    store_for(fake).set("x", "1")
    answer = requests.get(
        f"{fake.url}/v1/secret/metadata/mcp-connectors/",
        params={"list": "true"},
        headers={"X-Vault-Token": CANARY},
        timeout=5,
    )
    assert answer.json()["data"]["keys"] == ["x"]


def test_invalid_names_are_refused_before_any_request(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    for name in ("a/b", "..", ".", "", "has space"):
        with pytest.raises(ValueError, match="Invalid secret name"):
            store.get(name)
        with pytest.raises(ValueError, match="Invalid secret name"):
            store.set(name, "v")
    assert fake.seen == []


def test_check_confirms_a_kv2_mount_each_time(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    store.check()
    store.check()
    preflights = [s for s in fake.seen if s.path == "/v1/sys/internal/ui/mounts/secret"]
    assert len(preflights) == 2
    # Ordinary operations run the preflight once per store.
    store.get("a")
    store.get("b")
    assert len([s for s in fake.seen if s.path.startswith("/v1/sys/")]) == 2


# ---------------------------------------------------------------------------------------------- failures


def test_wrong_token_is_permission_denied_naming_url_and_mount(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake, token="hvs.not-a-valid-token")
    message = error_of(lambda: store.get("github_token"))
    assert fake.url in message and "'secret'" in message
    assert "VAULT_TOKEN is invalid or expired" in message
    assert "hvs.not-a-valid-token" not in message
    assert fake.seen[0].headers["x-vault-token"] == "hvs.not-a-valid-token"


def test_token_without_a_policy_for_the_path_names_the_path(fake: FakeHashiCorpVault) -> None:
    fake.limited_tokens[CANARY] = ("secret/data/mcp-connectors/allowed",)
    fake.tokens.discard(CANARY)
    fake.put("secret", "mcp-connectors/allowed", {"value": "ok"})
    store = store_for(fake)
    assert store.get("allowed") == Secret("ok")
    message = error_of(lambda: store.get("other"))
    assert "permission denied to read secret/data/mcp-connectors/other" in message
    assert '`path "secret/data/mcp-connectors/*" { capabilities = ["read"] }`' in message
    message = error_of(store.names)
    assert "permission denied to list secret/metadata/mcp-connectors/" in message
    assert '"secret/metadata/mcp-connectors/*" { capabilities = ["list"] }' in message


def test_unreachable_vault() -> None:
    store = HashiCorpVault(HashiCorpSettings(addr=f"http://127.0.0.1:{free_port()}", token=Secret(CANARY)))
    message = error_of(lambda: store.get("x"))
    assert message.startswith("Cannot reach HashiCorp Vault at http://127.0.0.1:")
    assert "Connection refused" in message and "mount 'secret'" in message and "VAULT_ADDR" in message


def test_timeout(fake: FakeHashiCorpVault) -> None:
    fake.delay = 1.0
    message = error_of(lambda: store_for(fake, timeout=0.2).get("x"))
    assert f"HashiCorp Vault at {fake.url}" in message and "did not answer within 0.2 s" in message


def test_sealed_vault(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    store.set("x", "1")
    fake.sealed = True
    for call in (lambda: store.get("x"), lambda: store.set("x", "2"), store.names, store.check):
        message = error_of(call)
        assert f"HashiCorp Vault at {fake.url}" in message and "mount 'secret'" in message
        assert "is sealed" in message and "vault operator unseal" in message


@pytest.mark.parametrize(
    ("data", "fields"),
    [({"password": "hunter2"}, "password"), ({"value": 42, "note": "n"}, "note, value"), ({}, "none")],
)
def test_secret_without_a_string_value_field(fake: FakeHashiCorpVault, data: dict[str, object], fields: str) -> None:
    fake.put("secret", "mcp-connectors/odd", data)
    message = error_of(lambda: store_for(fake).get("odd"))
    assert f'secret/data/mcp-connectors/odd has no string "value" field (its fields: {fields})' in message
    values = message.replace(fake.url, "")  # the fake's random port may itself contain "42"
    assert "hunter2" not in values and "42" not in values
    assert "mcp-connectors vault set odd" in message


@pytest.mark.parametrize(
    ("engine", "expected"),
    [("kv1", "is a KV version 1 mount, not KV version 2"), ("pki", "is a pki secrets engine, not KV version 2")],
)
def test_mount_that_is_not_kv2(fake: FakeHashiCorpVault, engine: str, expected: str) -> None:
    fake.mounts["legacy"] = engine
    store = store_for(fake, mount="legacy")
    for call in (lambda: store.set("x", "1"), lambda: store.get("x"), store.check):
        message = error_of(call)
        assert expected in message and "MCP_CONNECTORS_VAULT_MOUNT" in message and fake.url in message
    assert fake.store == {}  # nothing was written into the wrong layout


def test_missing_mount(fake: FakeHashiCorpVault) -> None:
    message = error_of(lambda: store_for(fake, mount="nosuch").get("x"))
    assert "cannot confirm that nosuch/ is a KV version 2 mount" in message
    assert "MCP_CONNECTORS_VAULT_MOUNT" in message and fake.url in message


def test_mount_inside_a_mount_suggests_mount_and_prefix(fake: FakeHashiCorpVault) -> None:
    message = error_of(lambda: store_for(fake, mount="secret/team").get("x"))
    assert "MCP_CONNECTORS_VAULT_MOUNT=secret and MCP_CONNECTORS_VAULT_PREFIX=team/mcp-connectors/" in message


def test_route_without_a_handler_is_a_mount_error_not_a_missing_secret(fake: FakeHashiCorpVault) -> None:
    store = store_for(fake)
    store.check()
    del fake.mounts["secret"]  # unmounted after the preflight passed
    message = error_of(lambda: store.get("x"))
    assert "no secrets engine answers for secret/data/mcp-connectors/x" in message
    assert "no handler for route" in message


def test_redirect_is_not_followed(fake: FakeHashiCorpVault) -> None:
    fake.redirect_to = "http://127.0.0.1:9"
    message = error_of(lambda: store_for(fake).get("x"))
    assert "redirected" in message and "http://127.0.0.1:9/v1/sys/internal/ui/mounts/secret" in message
    assert len(fake.seen) == 1


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (HashiCorpSettings(token=Secret(CANARY)), "VAULT_ADDR is not set (mount 'secret')"),
        (HashiCorpSettings(addr="http://127.0.0.1:1"), "VAULT_TOKEN is not set for HashiCorp Vault at http://127"),
        (HashiCorpSettings(addr="vault:8200", token=Secret(CANARY)), "VAULT_ADDR='vault:8200' is not an http(s) URL"),
        (HashiCorpSettings(addr="https://u:pw@vault", token=Secret(CANARY)), "contains a user name or password"),
        (HashiCorpSettings(addr="http://v", token=Secret(CANARY), mount="/"), "MCP_CONNECTORS_VAULT_MOUNT='/'"),
        (HashiCorpSettings(addr="http://v", token=Secret(CANARY), prefix="a/../b"), "MCP_CONNECTORS_VAULT_PREFIX="),
        (
            HashiCorpSettings(addr="http://v", token=Secret(CANARY), ca_cert=Path("/nonexistent/ca.pem")),
            "VAULT_CACERT='/nonexistent/ca.pem' is not a file",
        ),
    ],
)
def test_configuration_problems_surface_on_use_not_construction(settings: HashiCorpSettings, expected: str) -> None:
    store = HashiCorpVault(settings)  # never raises: `serve` starts and reports it like an unreadable vault
    for call in (store.check, lambda: store.get("x"), lambda: store.set("x", "v"), store.names):
        message = error_of(call)
        assert expected in message
    for text in (repr(store), store.describe(), *[error_of(c) for c in (store.check, store.names)]):
        assert ":pw@" not in text


def test_missing_hvac_asks_for_the_extra(fake: FakeHashiCorpVault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)  # makes `import hvac` raise ImportError
    message = error_of(lambda: store_for(fake).get("x"))
    assert "install mcp-connectors[hashicorp]" in message


def test_token_never_in_messages_reprs_or_logs(fake: FakeHashiCorpVault, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = store_for(fake)
    store.set("x", "1")
    store.get("x")
    messages: list[str] = []
    fake.sealed = True
    messages.append(error_of(store.check))
    fake.sealed = False
    fake.tokens.discard(CANARY)
    messages.append(error_of(lambda: store.get("x")))
    fake.tokens.add(CANARY)
    fake.put("secret", "mcp-connectors/odd", {"nope": CANARY})  # even a field value equal to the token
    messages.append(error_of(lambda: store.get("odd")))
    settings = Settings.resolve(environ={"VAULT_ADDR": fake.url, "VAULT_TOKEN": CANARY})
    texts = [*messages, repr(store), str(store), store.describe(), repr(settings), repr(settings.hashicorp)]
    assert caplog.records, "expected debug logging from the store and urllib3"
    texts += [record.getMessage() for record in caplog.records]
    for text in texts:
        assert CANARY not in text


# ---------------------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake vault")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "vault.pem", directory / "vault.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_fake(tls_files: tuple[Path, Path]) -> Iterator[FakeHashiCorpVault]:
    thread = FakeHashiCorpThread(certfile=str(tls_files[0]), keyfile=str(tls_files[1]))
    fake = thread.start()
    fake.tokens.add(CANARY)
    yield fake
    thread.stop()


def test_tls_is_verified_by_default(tls_fake: FakeHashiCorpVault, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    message = error_of(lambda: store_for(tls_fake).get("x"))
    assert f"HashiCorp Vault at {tls_fake.url}" in message and "TLS connection failed" in message
    assert "VAULT_CACERT" in message


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_tls_with_vault_cacert_or_skip_verify(tls_fake: FakeHashiCorpVault, tls_files: tuple[Path, Path]) -> None:
    store_for(tls_fake, ca_cert=tls_files[0]).set("x", "over tls")
    assert store_for(tls_fake, skip_verify=True).get("x") == Secret("over tls")


# ---------------------------------------------------------------------------------------------- settings


def test_settings_resolve_reads_the_vault_variables(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = Settings.resolve(
        environ={
            "MCP_CONNECTORS_VAULT_BACKEND": " HashiCorp ",
            "VAULT_ADDR": "https://vault.example.com:8200",
            "VAULT_TOKEN": CANARY,
            "VAULT_NAMESPACE": "eng",
            "MCP_CONNECTORS_VAULT_MOUNT": "kv",
            "MCP_CONNECTORS_VAULT_PREFIX": "apps/",
            "VAULT_CACERT": str(ca),
            "VAULT_SKIP_VERIFY": "true",
        }
    )
    assert settings.vault_backend == "hashicorp"
    assert settings.hashicorp == HashiCorpSettings(
        addr="https://vault.example.com:8200",
        token=Secret(CANARY),
        namespace="eng",
        mount="kv",
        prefix="apps/",
        ca_cert=ca,
        skip_verify=True,
    )


def test_settings_resolve_defaults_and_empty_values() -> None:
    settings = Settings.resolve(
        environ={"VAULT_TOKEN": "", "VAULT_ADDR": "", "MCP_CONNECTORS_VAULT_MOUNT": "", "VAULT_CACERT": ""}
    )
    assert settings.vault_backend == "file"
    assert settings.hashicorp == HashiCorpSettings()
    assert settings.hashicorp.mount == "secret" and settings.hashicorp.prefix == "mcp-connectors/"
    assert settings.hashicorp.timeout == 10.0 and settings.hashicorp.skip_verify is False


@pytest.mark.parametrize(
    ("raw", "skip"), [("1", True), ("TRUE", True), ("t", True), ("0", False), ("false", False), ("yes please", False)]
)
def test_vault_skip_verify_only_when_explicitly_true(raw: str, skip: bool) -> None:
    assert Settings.resolve(environ={"VAULT_SKIP_VERIFY": raw}).hashicorp.skip_verify is skip


def test_open_vault_chooses_the_backend(tmp_path: Path) -> None:
    environ = {"MCP_CONNECTORS_VAULT": str(tmp_path / "v.json"), "VAULT_ADDR": "http://v", "VAULT_TOKEN": CANARY}
    assert isinstance(open_vault(Settings.resolve(environ=environ)), Vault)
    store = open_vault(Settings.resolve(environ={**environ, "MCP_CONNECTORS_VAULT_BACKEND": "hashicorp"}))
    assert isinstance(store, HashiCorpVault) and store.remote is True
    assert store.describe() == "HashiCorp Vault at http://v, mount 'secret', prefix 'mcp-connectors/'"
    with pytest.raises(VaultError, match=r"MCP_CONNECTORS_VAULT_BACKEND='consul' is not a vault backend: use one of"):
        open_vault(Settings.resolve(environ={**environ, "MCP_CONNECTORS_VAULT_BACKEND": "consul"}))


# ---------------------------------------------------------------------------------------------- end to end


def cli_env(fake: FakeHashiCorpVault, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "MCP_CONNECTORS_"))}
    env.update(
        {
            "MCP_CONNECTORS_VAULT_BACKEND": "hashicorp",
            "VAULT_ADDR": fake.url,
            "VAULT_TOKEN": CANARY,
            "MCP_CONNECTORS_VAULT": str(tmp_path / "unused-vault.json"),
        }
    )
    return env


def test_cli_vault_set_and_list_through_hashicorp(fake: FakeHashiCorpVault, tmp_path: Path) -> None:
    env = cli_env(fake, tmp_path)
    stored = run_cli(env, "vault", "set", "ci_token", stdin="s3cret-from-stdin\n")
    assert fake.latest("secret", "mcp-connectors/ci_token") == {"value": "s3cret-from-stdin"}
    listed = run_cli(env, "vault", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["ci_token"]
    assert not (tmp_path / "unused-vault.json").exists()
    for output in (stored.stdout, stored.stderr, listed.stdout, listed.stderr):
        assert CANARY not in output

    env["VAULT_TOKEN"] = ROOT_TOKEN + "-wrong"
    refused = run_cli(env, "vault", "list")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: HashiCorp Vault at ") and "VAULT_TOKEN" in refused.stderr


def test_cli_vault_set_exits_cleanly_with_hashicorp(fake: FakeHashiCorpVault, tmp_path: Path) -> None:
    stored = run_cli(cli_env(fake, tmp_path), "vault", "set", "ci_token", stdin="value\n")
    assert stored.returncode == 0, stored.stderr
    assert "Traceback" not in stored.stderr
