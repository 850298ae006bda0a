"""A data dir the broker cannot use stops ``amqpbroker`` at startup the way an operator
wants: one line on stderr naming the path and the cause, no traceback, a non-zero exit,
nothing on stdout (no ready line), and the files left exactly as they were."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
from pathlib import Path

import pytest
import rawflow
from brokerproc import BrokerProcesses, run_cli

from amqpbroker.store.datadir import DB_FILE, LOCK_FILE

EXIT_FAILURE = 1


def snapshot(path: Path) -> dict[str, str]:
    """Name -> sha256 of every file under ``path`` (or of ``path`` itself, if a file)."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def assert_refused(data_dir: Path, *causes: str) -> str:
    """Run the CLI on ``data_dir``; it must fail with one clean line. Returns the line."""
    result = run_cli("--port", "0", "--data-dir", str(data_dir))
    assert result.returncode == EXIT_FAILURE, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    line = lines[0]
    assert line.startswith("amqpbroker: error: cannot open data dir "), line
    assert str(data_dir) in line
    for cause in causes:
        assert cause in line, line
    return line


def test_data_dir_locked_by_a_running_broker(brokers: BrokerProcesses, tmp_path: Path) -> None:
    data = tmp_path / "data"
    running = brokers.start(data)
    before = snapshot(data)
    assert_refused(data, f"locked by another broker process (pid {running.pid})")
    assert snapshot(data) == before
    # The broker holding the lock never noticed.
    assert running.running
    with rawflow.connect(running.port) as client:
        rawflow.declare_durable(client, "still-serving")


def test_garbage_database_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / DB_FILE).write_bytes(random.Random(7).randbytes(64 * 1024))
    before = snapshot(data)
    assert_refused(data, f"{data / DB_FILE} is not an SQLite database; left untouched")
    # Nothing written beside it either (no -wal or -shm); only the lock file is new.
    after = snapshot(data)
    assert after.pop(LOCK_FILE) is not None
    assert after == before


def test_corrupt_sqlite_database_is_refused_and_left_untouched(
    brokers: BrokerProcesses, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    # A real store with some messages in it, cleanly shut down...
    broker = brokers.start(data, "off")
    with rawflow.connect(broker.port) as client:
        rawflow.declare_durable(client, "q")
        head = rawflow.persistent(4000)
        client.send_bytes(rawflow.publish_frames("", "q", head, b"m" * 4000) * 50)
        assert rawflow.message_count(client, "q") == 50
    assert broker.terminate() == 0
    db = data / DB_FILE
    assert not (data / f"{DB_FILE}-wal").exists()
    # ...then its pages past the header scribbled over: the file still says SQLite.
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 8 * page
    noise = random.Random(11).randbytes(len(raw) - 2 * page)
    raw[2 * page :] = noise
    db.write_bytes(bytes(raw))
    before = snapshot(data)
    line = assert_refused(data, str(db), "left untouched")
    assert "corrupt" in line or "malformed" in line, line
    assert snapshot(data) == before


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"not a directory\n")
    before = snapshot(data)
    assert_refused(data, "it is a file, not a directory")
    assert snapshot(data) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes everything")
def test_data_dir_without_permission(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o500)
    assert_refused(data, "permission denied")


def test_readable_database_of_another_program_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / DB_FILE) as other:
        other.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)")
        other.execute("INSERT INTO accounts (owner) VALUES ('someone')")
    other.close()
    before = snapshot(data)
    assert_refused(data, "is not an amqpbroker store; left untouched")
    after = snapshot(data)
    after.pop(LOCK_FILE)
    assert after == before
