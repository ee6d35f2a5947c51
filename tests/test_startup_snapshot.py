"""The start-up snapshot file: its key, its inputs check, and what happens to damaged or excess files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mcp_server._startup_snapshot import (
    ENV_STARTUP_CACHE,
    Handshake,
    Inputs,
    Snapshot,
    _salt,
    read_snapshot,
    snapshot_path,
    tree_stats,
    write_snapshot,
)


def sample(tmp_path: Path) -> Snapshot:
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    (tools / "a.yaml").write_text("name: a\n")
    document = tmp_path / "doc.json"
    document.write_text("{}")
    stats = tree_stats([tools])
    stats[str(document)] = (document.stat().st_mtime_ns, document.stat().st_size)
    inputs = Inputs((str(tools),), (str(document),), stats)
    pages = {None: b'{"tools":[],"nextCursor":"c\\u00e9"}', "cé": b'{"tools":[{"name":"x"}]}'}
    return Snapshot(inputs, Handshake('{"protocolVersion":"2025-11-25"}', "2025-11-25", b'{"x":1}'), pages)


def test_written_and_read_back_owner_only(tmp_path: Path) -> None:
    snapshot = sample(tmp_path)
    path = tmp_path / "cache" / "k.snapshot"
    write_snapshot(path, snapshot)
    assert read_snapshot(path) == snapshot
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert snapshot.inputs.unchanged()


@pytest.mark.parametrize("cut", [1, 10, -1, -5])
def test_a_truncated_or_padded_file_is_not_used(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "k.snapshot"
    write_snapshot(path, sample(tmp_path))
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut > 0 else data + b"x" * -cut)
    assert read_snapshot(path) is None


@pytest.mark.parametrize(
    "header",
    [
        b"[]",
        b'{"format": 2}',
        b'{"format": 1, "inputs": {"directories": "x", "documents": [], "stats": {}}, "handshake": {}, "pages": []}',
        b'{"format": 1, "inputs": {"directories": [], "documents": [], "stats": {"p": [1, "2"]}},'
        b' "handshake": {"params": "", "version": "v", "length": 0}, "pages": []}',
        b'{"format": 1, "inputs": {"directories": [], "documents": [], "stats": {}},'
        b' "handshake": {"params": "", "version": "v", "length": 0}, "pages": [[1, 0]]}',
    ],
)
def test_a_malformed_header_is_not_used(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "k.snapshot"
    path.write_bytes(header + b"\n")
    assert read_snapshot(path) is None


def test_no_file_is_no_snapshot(tmp_path: Path) -> None:
    assert read_snapshot(tmp_path / "none.snapshot") is None


def test_inputs_see_a_new_file_an_edit_and_a_removed_document(tmp_path: Path) -> None:
    snapshot = sample(tmp_path)
    (tmp_path / "tools" / "b.yaml").write_text("name: b\n")
    assert not snapshot.inputs.unchanged()
    snapshot = sample(tmp_path)
    (tmp_path / "tools" / "a.yaml").write_text("name: aa\n")
    assert not snapshot.inputs.unchanged()
    snapshot = sample(tmp_path)
    (tmp_path / "doc.json").unlink()
    assert not snapshot.inputs.unchanged()


def test_only_the_newest_snapshots_are_kept_and_only_ours_removed(tmp_path: Path) -> None:
    snapshot = sample(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / "mine.snapshot").write_text("a file of the user's, in a directory they chose")
    os.utime(cache / "mine.snapshot", ns=(0, 0))
    names = [f"{n:040x}.snapshot" for n in range(20)]
    for n, name in enumerate(names):
        write_snapshot(cache / name, snapshot)
        os.utime(cache / name, ns=((n + 1) * 10**9, (n + 1) * 10**9))
    kept = sorted(p.name for p in cache.glob("*.snapshot"))
    assert kept == sorted([*names[4:], "mine.snapshot"])
    assert not list(cache.glob(".*"))  # no temporary file left behind


def test_a_damaged_body_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "k.snapshot"
    write_snapshot(path, sample(tmp_path))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of the last page
    path.write_bytes(bytes(data))
    assert read_snapshot(path) is None


def test_a_result_that_is_not_one_line_of_json_is_not_used(tmp_path: Path) -> None:
    snapshot = sample(tmp_path)
    injected = Handshake(snapshot.handshake.params, "2025-11-25", b'{"x":1}\n{"jsonrpc":"2.0","method":"x"}')
    path = tmp_path / "k.snapshot"
    write_snapshot(path, Snapshot(snapshot.inputs, injected, snapshot.pages))  # a correct digest
    assert read_snapshot(path) is None


def test_only_a_private_regular_file_of_this_user_is_read(tmp_path: Path) -> None:
    snapshot = sample(tmp_path)
    path = tmp_path / "cache" / "k.snapshot"
    write_snapshot(path, snapshot)
    assert read_snapshot(path) == snapshot
    path.chmod(0o620)  # others may write it
    assert read_snapshot(path) is None
    path.chmod(0o600)
    path.parent.chmod(0o770)  # others may write the directory
    assert read_snapshot(path) is None
    with pytest.raises(PermissionError):
        write_snapshot(path, snapshot)
    path.parent.chmod(0o700)
    link = tmp_path / "cache" / "link.snapshot"
    link.symlink_to(path)
    assert read_snapshot(link) is None
    fifo = tmp_path / "cache" / "fifo.snapshot"
    os.mkfifo(fifo)
    assert read_snapshot(fifo) is None  # at once: opening a FIFO must not wait for a writer
    if os.getuid() == 0:  # only root can give a file away
        os.chown(path, 4242, -1)
        assert read_snapshot(path) is None


def test_a_planted_link_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / "k.snapshot").symlink_to(victim)
    write_snapshot(cache / "k.snapshot", sample(tmp_path))
    assert victim.read_text() == "keep me"
    assert not (cache / "k.snapshot").is_symlink()


def test_the_key_follows_the_command_line_environment_and_directory(tmp_path: Path) -> None:
    environ = {ENV_STARTUP_CACHE: str(tmp_path / "c"), "A": "1"}
    one = snapshot_path(["serve"], environ, "/x")
    assert one is not None and one.parent == tmp_path / "c"
    assert snapshot_path(["serve"], dict(environ), "/x") == one
    assert snapshot_path(["serve", "--read-only"], environ, "/x") != one
    assert snapshot_path(["serve"], {**environ, "A": "2"}, "/x") != one
    assert snapshot_path(["serve"], {**environ, "OLDPWD": "/z", "SHLVL": "3", "_": "/bin/env"}, "/x") == one
    assert snapshot_path(["serve"], environ, "/y") != one
    # The name is keyed by a random secret of the directory: the same start elsewhere has another name.
    assert (tmp_path / "c" / ".key").stat().st_mode & 0o777 == 0o600
    elsewhere = snapshot_path(["serve"], {**environ, ENV_STARTUP_CACHE: str(tmp_path / "d")}, "/x")
    assert elsewhere is not None and elsewhere.name != one.name


def test_no_snapshots_in_a_directory_others_may_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert snapshot_path(["serve"], {ENV_STARTUP_CACHE: str(shared)}, "/") is None


def test_where_snapshots_go(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    default = snapshot_path(["serve"], home, "/")
    assert default is not None and default.parent == tmp_path / ".cache" / "mcp-connectors" / "startup"
    xdg = snapshot_path(["serve"], {**home, "XDG_CACHE_HOME": str(tmp_path / "x")}, "/")
    assert xdg is not None and xdg.parent == tmp_path / "x" / "mcp-connectors" / "startup"
    for off in ("off", "OFF", "0", "false", "no"):
        assert snapshot_path(["serve"], {**home, ENV_STARTUP_CACHE: off}, "/") is None


def test_an_upgrade_changes_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {ENV_STARTUP_CACHE: str(tmp_path / "c")}
    site = tmp_path / "site"
    (site / "mcp_connectors-0.1.0.dist-info").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    before = snapshot_path(["serve"], environ, "/")
    (site / "mcp_connectors-0.1.0.dist-info").rename(site / "mcp_connectors-0.2.0.dist-info")
    assert snapshot_path(["serve"], environ, "/") != before


def test_a_damaged_key_is_replaced(tmp_path: Path) -> None:
    environ = {ENV_STARTUP_CACHE: str(tmp_path / "c")}
    (tmp_path / "c").mkdir(mode=0o700)
    (tmp_path / "c" / ".key").write_bytes(b"")  # a crash between creating and writing it
    first = snapshot_path(["serve"], environ, "/")
    assert first is not None and len((tmp_path / "c" / ".key").read_bytes()) == 32
    assert snapshot_path(["serve"], environ, "/") == first


def test_servers_starting_at_once_agree_on_the_key(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    barrier = threading.Barrier(8)
    keys: list[bytes | None] = []

    def make() -> None:
        barrier.wait()
        keys.append(_salt(directory))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and keys[0] is not None and len(keys[0]) == 32
    assert [p.name for p in directory.iterdir()] == [".key"]  # no temporary file left
