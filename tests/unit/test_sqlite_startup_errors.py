"""SQLiteStore startup: every way a data dir can be unusable, and schema upgrades.

Each failure must be a StoreError whose text is one line naming the path and the cause (the
CLI prints it and stops), and a database file the store refuses must be left byte for byte
as it was.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from amqpbroker.store import (
    MemoryStore,
    MessageRecord,
    SQLiteStore,
    StoreError,
    default_data_dir,
    open_store,
    sqlite_schema,
)
from amqpbroker.store import sqlite as sqlite_store
from amqpbroker.store.datadir import DB_FILE, LOCK_FILE

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def open_error(data_dir: Path) -> str:
    """Open a store on ``data_dir`` and return the StoreError's text."""
    with pytest.raises(StoreError) as err:
        SQLiteStore(data_dir).open()
    return str(err.value)


def assert_one_line(text: str, *parts: str) -> None:
    assert "\n" not in text and "\r" not in text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"


def make_store(data_dir: Path, messages: int = 0) -> None:
    store = SQLiteStore(data_dir, sync="off")
    store.open()
    q = store.put_queue("/", "q", True, False, {})
    for seq in range(1, messages + 1):
        store.enqueue(q, MessageRecord(seq, "", "q", b"h", b"x" * 300, False))
    store.commit()
    store.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the data dir itself -------------------------------------------------------------------


def test_missing_data_dir_is_created(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a" / "b")
    store.open()
    store.close()
    assert (tmp_path / "a" / "b" / DB_FILE).is_file()


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("not a dir")
    assert_one_line(open_error(path), str(path), "is a file, not a directory")
    assert path.read_text() == "not a dir"


def test_data_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "data"
    text = open_error(path)
    assert_one_line(text, str(path), f"{tmp_path / 'file'} is a file, not a directory")


def test_database_path_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).mkdir()
    assert_one_line(open_error(tmp_path), str(tmp_path), "is a directory")


# -- locked by another broker ------------------------------------------------------------------


def test_locked_by_another_store_in_this_process(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path)
    first.open()
    text = open_error(tmp_path)
    assert_one_line(text, str(tmp_path), "locked by another broker", f"pid {os.getpid()}")
    first.close()
    second = SQLiteStore(tmp_path)
    second.open()
    second.close()


def test_locked_by_another_process_names_its_pid(tmp_path: Path) -> None:
    holder = textwrap.dedent(
        """
        import sys, time
        from amqpbroker.store import SQLiteStore
        SQLiteStore(sys.argv[1]).open()
        print("open", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"open\n"
        text = open_error(tmp_path)
    finally:
        child.kill()
        child.wait()
    assert_one_line(text, str(tmp_path), "locked by another broker", f"pid {child.pid}")


# -- permissions ---------------------------------------------------------------------------


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp dir that an unprivileged user can enter (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="store-perm-"))
    path.chmod(0o755)
    yield path
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def open_error_without_privileges(data_dir: Path) -> str:
    """open_error, but root bypasses file permissions: run it as 'nobody' in a forked child
    (forked, not exec'd, since the interpreter itself may be unreadable to nobody)."""
    if os.geteuid() != 0:
        return open_error(data_dir)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, try, report through the pipe, never return
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                SQLiteStore(data_dir).open()
                result = "opened"
            except StoreError as exc:
                result = str(exc)
            except BaseException as exc:
                result = f"unexpected {exc!r}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(pid, 0)
    return result


def test_unreadable_data_dir(shared_tmp: Path) -> None:
    data = shared_tmp / "data"
    data.mkdir(mode=0o000)
    data.chmod(0o000)
    assert_one_line(open_error_without_privileges(data), str(data), "permission denied")


def test_read_only_data_dir(shared_tmp: Path) -> None:
    data = shared_tmp / "data"
    make_store(data)
    (data / LOCK_FILE).chmod(0o666)  # the lock file alone would not tell
    (data / DB_FILE).chmod(0o666)
    data.chmod(0o555)
    text = open_error_without_privileges(data)
    assert_one_line(text, str(data), "permission denied", "cannot create files")


def test_unreadable_database_file(shared_tmp: Path) -> None:
    data = shared_tmp / "data"
    make_store(data)
    (data / LOCK_FILE).unlink()  # let the unprivileged user take the lock
    data.chmod(0o777)
    (data / DB_FILE).chmod(0o000)
    before = digest(data / DB_FILE)
    text = open_error_without_privileges(data)
    assert_one_line(text, str(data), "permission denied", DB_FILE)
    assert digest(data / DB_FILE) == before


# -- damaged or foreign files --------------------------------------------------------------


def test_file_that_is_not_a_database_is_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / DB_FILE
    db.write_bytes(b"definitely not SQLite\n" * 500)
    before = digest(db)
    assert_one_line(open_error(tmp_path), str(tmp_path), "not an SQLite database")
    assert digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, DB_FILE]


def test_corrupt_database_is_left_untouched(tmp_path: Path) -> None:
    make_store(tmp_path, messages=300)
    db = tmp_path / DB_FILE
    with db.open("r+b") as f:  # overwrite page 5, a b-tree page of the messages table
        f.seek(4 * 4096)
        f.write(b"\x55" * 4096)
    before = digest(db)
    assert_one_line(open_error(tmp_path), str(tmp_path), "is corrupt", "left untouched")
    assert digest(db) == before
    # Refusing it released the lock: the next attempt fails the same way, not as "locked".
    assert "is corrupt" in open_error(tmp_path)


def scribble_page(db: Path, table: str) -> None:
    """Overwrite the root page of ``table`` (an interior page: the table has many)."""
    conn = sqlite3.connect(db)
    try:
        ((root,),) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    with db.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\x55" * page_size)


def test_big_store_checks_every_table_but_the_messages_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Big": every store, so the bounded check runs on a small file.
    monkeypatch.setattr(sqlite_store, "FULL_CHECK_MAX_BYTES", 0)
    make_store(tmp_path, messages=300)
    for _ in range(40):  # enough queues for a queues table deeper than one page
        make_queue_rows(tmp_path, 10)
    store = SQLiteStore(tmp_path)
    assert len(store.open().queues) == 401
    store.close()
    db = tmp_path / DB_FILE
    scribble_page(db, "queues")
    before = digest(db)
    assert_one_line(open_error(tmp_path), str(tmp_path), "is corrupt", "left untouched")
    assert digest(db) == before


def test_store_check_full_reads_the_message_rows_of_a_big_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "FULL_CHECK_MAX_BYTES", 0)
    make_store(tmp_path, messages=300)
    db = tmp_path / DB_FILE
    scribble_page(db, "messages")
    before = digest(db)
    with pytest.raises(StoreError) as err:
        SQLiteStore(tmp_path, check="full").open()
    assert_one_line(str(err.value), str(tmp_path), "is corrupt", "left untouched")
    assert digest(db) == before
    # The bounded check leaves message pages to be checked as they are read: recovery's
    # first read of this queue meets the damaged page and fails with one line.
    store = SQLiteStore(tmp_path)
    definitions = store.open()
    try:
        with pytest.raises(StoreError) as err:
            store.read_messages(definitions.queues[0].queue_id, 0, 1000)
        assert_one_line(str(err.value), str(db))
    finally:
        store.close()


def test_invalid_store_check_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid store check 'fast'"):
        SQLiteStore(tmp_path, check="fast")


def make_queue_rows(data_dir: Path, count: int) -> None:
    store = SQLiteStore(data_dir, sync="off")
    definitions = store.open()
    start = len(definitions.queues)
    for n in range(count):
        store.put_queue("/", f"queue-with-a-long-name-{start + n:06}" + "x" * 200, True, False, {})
    store.close()


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("CREATE TABLE something_else (x)")
    conn.close()
    before = digest(tmp_path / DB_FILE)
    assert_one_line(open_error(tmp_path), str(tmp_path), "not an amqpbroker store")
    assert digest(tmp_path / DB_FILE) == before


def test_empty_database_file_is_a_new_store(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"")
    store = SQLiteStore(tmp_path)
    assert store.open().queues == []
    store.close()


# -- schema versions -----------------------------------------------------------------------


def user_version(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / DB_FILE)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_schema_newer_than_this_broker_is_refused(tmp_path: Path) -> None:
    make_store(tmp_path)
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = digest(tmp_path / DB_FILE)
    text = open_error(tmp_path)
    assert_one_line(text, str(tmp_path), "schema version 99", "newer than this broker")
    assert digest(tmp_path / DB_FILE) == before


def test_new_store_gets_the_current_schema_version(tmp_path: Path) -> None:
    make_store(tmp_path)
    assert user_version(tmp_path) == sqlite_schema.supported_version()


def test_older_schema_is_migrated_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_store(tmp_path, messages=3)
    old = user_version(tmp_path)
    runs = []

    def add_priority(db: Database) -> None:
        runs.append(1)
        db.table("messages").add_column("priority", int, not_null_default=0)

    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", [*sqlite_schema.MIGRATIONS, add_priority])
    for _ in range(2):  # the second open finds nothing to do
        store = SQLiteStore(tmp_path)
        [queue] = store.open().queues
        assert [m.seq for m in store.read_messages(queue.queue_id, 0, 10)] == [1, 2, 3]
        store.close()
    assert runs == [1]
    assert user_version(tmp_path) == old + 1
    assert "priority" in Database(tmp_path / DB_FILE).table("messages").columns_dict


def test_failed_migration_keeps_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store(tmp_path)
    old = user_version(tmp_path)

    def broken(db: Database) -> None:
        db.execute("CREATE TABLE half_done (x)")
        db.execute("THIS IS NOT SQL")

    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", [*sqlite_schema.MIGRATIONS, broken])
    assert_one_line(open_error(tmp_path), str(tmp_path), "syntax error")
    assert user_version(tmp_path) == old
    assert "half_done" not in Database(tmp_path / DB_FILE).table_names()
    monkeypatch.undo()
    store = SQLiteStore(tmp_path)  # unlocked, and still usable by this version
    store.open()
    store.close()


# -- choosing a store ----------------------------------------------------------------------


def test_open_store_picks_the_implementation(tmp_path: Path) -> None:
    assert isinstance(open_store(":memory:", "full"), MemoryStore)
    store = open_store(str(tmp_path), "normal")
    assert isinstance(store, SQLiteStore)
    assert (store.data_dir, store.sync) == (tmp_path, "normal")
    default = open_store(None, "full")
    assert isinstance(default, SQLiteStore)
    assert default.data_dir == default_data_dir()
    assert default_data_dir().name == "amqpbroker"
    with pytest.raises(StoreError, match="invalid sync mode"):
        open_store(str(tmp_path), "sometimes")


def test_store_check_flag_reaches_the_store(tmp_path: Path) -> None:
    from amqpbroker import cli
    from amqpbroker.broker.broker import Broker

    args = cli.build_parser().parse_args(["--data-dir", str(tmp_path), "--store-check", "full"])
    broker = Broker.open(cli.settings_from_args(args))
    try:
        assert isinstance(broker.store, SQLiteStore)
        assert broker.store.check == "full"
    finally:
        broker.close()
    default = cli.build_parser().parse_args(["--data-dir", str(tmp_path)])
    assert cli.settings_from_args(default).store_check == "auto"
