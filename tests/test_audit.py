"""`AuditLog` on its own: whole lines, a rotated file followed, fingerprints that match `audit hash`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

from mcp_server._audit import AuditLog


def _record(log: AuditLog, n: int) -> None:
    use = log.credential_use("token", "secret", "value-of-the-token")
    log.record(
        tool=f"t{n}",
        connector="c",
        account=None,
        client="stdio",
        outcome="ok",
        status=200,
        credentials=[use],
        duration_ms=1,
    )


def _tools(path: Path) -> list[str]:
    return [json.loads(line)["tool"] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_renamed_log_is_followed_and_no_line_is_lost(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", reopen_after_s=0.05)
    log.open()
    for n in range(3):
        _record(log, n)
    (tmp_path / "audit.jsonl").rename(tmp_path / "audit.jsonl.1")  # what logrotate does
    _record(log, 3)  # within the reopen interval: still the renamed file
    time.sleep(0.1)
    for n in range(4, 6):
        _record(log, n)
    rotated, current = _tools(tmp_path / "audit.jsonl.1"), _tools(tmp_path / "audit.jsonl")
    assert rotated + current == [f"t{n}" for n in range(6)]
    assert current == ["t4", "t5"]
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_deleted_log_is_recreated(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", reopen_after_s=0)
    log.open()
    _record(log, 0)
    (tmp_path / "audit.jsonl").unlink()
    _record(log, 1)
    assert _tools(tmp_path / "audit.jsonl") == ["t1"]


def test_lines_from_many_threads_stay_whole(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", reopen_after_s=0.001)
    log.open()
    threads = [threading.Thread(target=lambda k=k: [_record(log, k * 1000 + i) for i in range(200)]) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(_tools(tmp_path / "audit.jsonl")) == sorted(f"t{k * 1000 + i}" for k in range(8) for i in range(200))


def test_the_fingerprint_is_hmac_sha256_under_the_key_file(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.open()
    key = base64.b64decode(log.key_file.read_bytes().strip())
    expected = hmac.new(key, b"value-of-the-token", hashlib.sha256).hexdigest()[:32]
    assert log.fingerprint("value-of-the-token") == f"hmac-sha256:{expected}"
