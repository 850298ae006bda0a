"""SQLiteStore: the store contract on one SQLite database in WAL mode.

One connection, used from the event-loop thread (entity operations, reads) and from the
commit worker thread, so it is opened with check_same_thread=False and every use holds
``_db_lock``. Message operations are only buffered (see pending.py); ``commit()`` reduces a
batch to its net effect and writes it with a few executemany calls in one transaction
(sqlite_batch.py): one fsync per scheduling round instead of one per message is what makes
persistent messages fast (3.2k rows/s at one row per commit with fsync, ~100k/s at 100 rows,
PERFORMANCE-NOTES.md).

The schema and its migrations are in sqlite_schema.py (built with sqlite-utils); the hot
path is plain sqlite3 with the SQL as named module constants.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from amqpbroker.store import sqlite_schema
from amqpbroker.store.base import (
    BindingRecord,
    Definitions,
    ExchangeRecord,
    MessageRecord,
    PermissionRecord,
    QueueRecord,
    Store,
    StoreError,
    UserRecord,
)
from amqpbroker.store.datadir import (
    DB_FILE,
    DataDirLock,
    check_db_file,
    prepare_data_dir,
    startup_error,
)
from amqpbroker.store.pending import BufferedMessages, Op, PendingOps
from amqpbroker.store.reserve import DiskReserve
from amqpbroker.store.sqlite_batch import DELETE_QUEUE_MESSAGES, NetEffect
from amqpbroker.store.stored_arguments import decode_arguments, encode_arguments

SYNC_MODES: Final = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
# Startup integrity check: "auto" reads the whole file only up to FULL_CHECK_MAX_BYTES
# (about half a second here), "full" always (see SQLiteStore._integrity_problem).
CHECK_MODES: Final = ("auto", "full")
FULL_CHECK_MAX_BYTES: Final = 256 * 2**20
# Waits for a lock held by some other program reading the file (say, the sqlite3 shell);
# brokers exclude each other with the data dir lock, not with this.
BUSY_TIMEOUT_MS: Final = 5000
# WAL files keep their size after a checkpoint; trim back to this after a burst.
JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024
# Pages an incremental vacuum step frees before a checkpoint (4 MB with 4 KB pages).
RECLAIM_PAGES: Final = 1024

# -- messages: reads (the writes are in sqlite_batch.py) ---------------------------------
SELECT_MESSAGES: Final = (
    "SELECT seq, exchange, routing_key, header, body, redelivered, expires, deliveries"
    " FROM messages"
    " WHERE queue_id = ? AND seq > ? ORDER BY seq LIMIT ?"
)
# length() of a blob comes from the record header, without reading the blob itself.
QUEUE_DEPTH: Final = (
    "SELECT count(*), coalesce(sum(length(body)), 0) FROM messages WHERE queue_id = ?"
)
# Answered from the (queue_id, seq) index alone: the byte sum reads every row.
MESSAGE_COUNT: Final = "SELECT count(*) FROM messages WHERE queue_id = ?"

# -- entities ------------------------------------------------------------------------------
SELECT_META: Final = "SELECT value FROM meta WHERE key = ?"
SET_META: Final = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
NEXT_QUEUE_ID: Final = "UPDATE meta SET value = value + 1 WHERE key = 'last_queue_id'"
INSERT_VHOST: Final = "INSERT OR IGNORE INTO vhosts (name) VALUES (?)"
DELETE_VHOST: Final = "DELETE FROM vhosts WHERE name = ?"
DELETE_VHOST_EXCHANGES: Final = "DELETE FROM exchanges WHERE vhost = ?"
DELETE_VHOST_BINDINGS: Final = "DELETE FROM bindings WHERE vhost = ?"
SELECT_VHOST_QUEUES: Final = "SELECT queue_id FROM queues WHERE vhost = ?"
UPSERT_EXCHANGE: Final = (
    "INSERT OR REPLACE INTO exchanges"
    " (vhost, name, type, durable, auto_delete, internal, arguments)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DELETE_EXCHANGE: Final = "DELETE FROM exchanges WHERE vhost = ? AND name = ?"
DELETE_EXCHANGE_BINDINGS: Final = (
    "DELETE FROM bindings WHERE vhost = ?1"
    " AND (source = ?2 OR (destination_kind = 'exchange' AND destination = ?2))"
)
SELECT_QUEUE_ID: Final = "SELECT queue_id FROM queues WHERE vhost = ? AND name = ?"
INSERT_QUEUE: Final = (
    "INSERT INTO queues (queue_id, vhost, name, durable, auto_delete, arguments)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
UPDATE_QUEUE: Final = (
    "UPDATE queues SET durable = ?, auto_delete = ?, arguments = ? WHERE queue_id = ?"
)
SELECT_QUEUE_NAME: Final = "SELECT vhost, name FROM queues WHERE queue_id = ?"
DELETE_QUEUE: Final = "DELETE FROM queues WHERE queue_id = ?"
DELETE_QUEUE_BINDINGS: Final = (
    "DELETE FROM bindings WHERE vhost = ? AND destination_kind = 'queue' AND destination = ?"
)
INSERT_BINDING: Final = (
    "INSERT OR IGNORE INTO bindings"
    " (vhost, source, destination_kind, destination, routing_key, arguments)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
DELETE_BINDING: Final = (
    "DELETE FROM bindings WHERE vhost = ? AND source = ? AND destination_kind = ?"
    " AND destination = ? AND routing_key = ? AND arguments = ?"
)
SELECT_TRANSIENT_EXCHANGES: Final = "SELECT vhost, name FROM exchanges WHERE NOT durable"
SELECT_TRANSIENT_QUEUES: Final = "SELECT queue_id FROM queues WHERE NOT durable"
SELECT_VHOSTS: Final = "SELECT name FROM vhosts ORDER BY name"
SELECT_EXCHANGES: Final = (
    "SELECT vhost, name, type, durable, auto_delete, internal, arguments FROM exchanges"
    " ORDER BY vhost, name"
)
SELECT_QUEUES: Final = (
    "SELECT vhost, name, durable, auto_delete, arguments, queue_id FROM queues ORDER BY queue_id"
)
# -- users and permissions -------------------------------------------------------------------
USERS_INITIALIZED: Final = (
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('users_initialized', 1)"
)
UPSERT_USER: Final = (
    "INSERT OR REPLACE INTO users (name, password_hash, hashing_algorithm, tags)"
    " VALUES (?, ?, ?, ?)"
)
DELETE_USER: Final = "DELETE FROM users WHERE name = ?"
DELETE_USER_PERMISSIONS: Final = "DELETE FROM permissions WHERE user = ?"
UPSERT_PERMISSION: Final = (
    "INSERT OR REPLACE INTO permissions (user, vhost, configure, write, read)"
    " VALUES (?, ?, ?, ?, ?)"
)
DELETE_PERMISSION: Final = "DELETE FROM permissions WHERE user = ? AND vhost = ?"
DELETE_VHOST_PERMISSIONS: Final = "DELETE FROM permissions WHERE vhost = ?"
SELECT_USERS: Final = "SELECT name, password_hash, hashing_algorithm, tags FROM users ORDER BY name"
SELECT_PERMISSIONS: Final = (
    "SELECT user, vhost, configure, write, read FROM permissions ORDER BY user, vhost"
)
SELECT_BINDINGS: Final = (
    "SELECT vhost, source, destination_kind, destination, routing_key, arguments"
    " FROM bindings ORDER BY vhost, source, destination_kind, destination, routing_key,"
    " arguments"
)


class SQLiteStore(BufferedMessages, Store):
    """The store for ``data_dir``; ``sync`` is "full" (fsync every commit: survives power
    loss), "normal" (fsync at WAL checkpoints only: survives a process crash, like RabbitMQ's
    classic queues, which confirm after the OS write) or "off" (never fsync)."""

    def __init__(self, data_dir: str | Path, sync: str = "full", check: str = "auto") -> None:
        if sync not in SYNC_MODES:
            raise StoreError(f"invalid sync mode {sync!r}: expected one of {', '.join(SYNC_MODES)}")
        if check not in CHECK_MODES:
            raise StoreError(
                f"invalid store check {check!r}: expected one of {', '.join(CHECK_MODES)}"
            )
        self.check = check
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_FILE
        self.sync = sync
        self._pending = PendingOps()
        self._db_lock = threading.Lock()
        # The operations of a batch write_batch() wrote and sync_batch() has not committed.
        self._batch: list[Op] | None = None
        self._conn: sqlite3.Connection | None = None
        self._dir_lock: DataDirLock | None = None
        # Live queue ids, so a commit can drop operations of deleted queues (contract).
        self._queue_ids: set[int] = set()
        self._state = "new"
        # Opened by amqpbroker ctl: leave the run's clean-shutdown flag as it is.
        self._admin = False
        # Room kept for committing acks on a full disk (store/reserve.py).
        self.reserve = DiskReserve(self.data_dir)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.data_dir)!r}, sync={self.sync!r}, {self._state})"

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, *, admin: bool = False) -> Definitions:
        with self._db_lock:
            if self._state != "new":
                raise StoreError(f"store at {self.data_dir} is {self._state}; open() it once")
            prepare_data_dir(self.data_dir)
            dir_lock = DataDirLock.acquire(self.data_dir)
            try:
                if check_db_file(self.data_dir, self.db_path):
                    self._check_existing_db()
                conn = self._connect()
            except BaseException:
                dir_lock.release(clean=True)
                raise
            self._conn, self._dir_lock, self._state = conn, dir_lock, "open"
            self._admin = admin
            if not admin:
                self.reserve.take()
            try:
                with self._transaction_locked() as tx:
                    if not admin:
                        _drop_transient(tx)
                    return self._load_definitions(tx)
            except BaseException:
                self._shut(clean=True)
                raise

    def _check_existing_db(self) -> None:
        """Integrity and version checks, on a read-only connection: closing a read-write
        one could checkpoint a leftover WAL into a file we are about to refuse. Without a
        WAL file the database file is the whole database, so it is opened immutable: a
        read-only WAL-mode connection would otherwise create -wal and -shm files beside a
        file we may be about to refuse and leave as it is."""
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        mode = "ro" if wal.exists() else "ro&immutable=1"
        uri = f"file:{urllib.parse.quote(str(self.db_path))}?mode={mode}"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise startup_error(self.data_dir, f"{self.db_path}: {exc}") from exc
        try:
            problem = self._integrity_problem(conn)
            if problem is not None:
                raise startup_error(
                    self.data_dir, f"{self.db_path} is corrupt ({problem}); left untouched"
                )
            version = sqlite_schema.schema_version(conn)
            supported = sqlite_schema.supported_version()
            if version > supported:
                raise startup_error(
                    self.data_dir,
                    f"schema version {version} is newer than this broker supports"
                    f" ({supported}); upgrade amqpbroker",
                )
            if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise startup_error(
                    self.data_dir, f"{self.db_path} is not an amqpbroker store; left untouched"
                )
        except sqlite3.DatabaseError as exc:
            raise startup_error(
                self.data_dir,
                f"{self.db_path} is corrupt or not a database ({exc}); left untouched",
            ) from exc
        finally:
            conn.close()

    def _integrity_problem(self, conn: sqlite3.Connection) -> str | None:
        """What PRAGMA quick_check finds wrong, or None.

        The whole file is read when it is small or ``check == "full"``.  A big store is
        mostly message rows, and reading all of them would make startup grow with the
        backlog (10 GB: ~20 s); there every other table (definitions, users: small) is
        checked, and message pages are checked by SQLite as they are read, recovery's
        window now and the rest as queues drain (a read error then leaves the rows on
        disk and is logged; see server/pager.py)."""
        if self.check == "full" or self.db_path.stat().st_size <= FULL_CHECK_MAX_BYTES:
            checks = ["PRAGMA quick_check(1)"]
        else:
            tables = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'messages'"
            ).fetchall()
            checks = [f"PRAGMA quick_check({_quote(name)})" for (name,) in tables]
        for check in checks:
            rows = [row[0] for row in conn.execute(check).fetchall()]
            if rows != ["ok"]:
                # Drop the "*** in database main ***" banner lines; keep what is wrong.
                lines = [x for row in rows for x in row.splitlines() if not x.startswith("***")]
                return "; ".join(lines[:3])
        return None

    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: no implicit transactions, we BEGIN and COMMIT ourselves.
            conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise startup_error(self.data_dir, f"{self.db_path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Pages freed by acked messages can be given back (reclaim()); takes effect
            # only in a database without tables yet, i.e. a new one.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {SYNC_MODES[self.sync]}")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            sqlite_schema.migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise startup_error(self.data_dir, f"{self.db_path}: {exc}") from exc
        return conn

    def _load_definitions(self, tx: sqlite3.Connection) -> Definitions:
        exchanges = [
            ExchangeRecord(v, n, t, bool(d), bool(ad), bool(i), decode_arguments(a))
            for v, n, t, d, ad, i, a in tx.execute(SELECT_EXCHANGES)
        ]
        queues = [
            QueueRecord(v, n, bool(d), bool(ad), decode_arguments(a), qid)
            for v, n, d, ad, a, qid in tx.execute(SELECT_QUEUES)
        ]
        bindings = [
            BindingRecord(v, s, k, d, rk, decode_arguments(a))
            for v, s, k, d, rk, a in tx.execute(SELECT_BINDINGS)
        ]
        self._queue_ids = {q.queue_id for q in queues}
        return Definitions(
            vhosts=[name for (name,) in tx.execute(SELECT_VHOSTS)],
            exchanges=exchanges,
            queues=queues,
            bindings=bindings,
            max_seq=tx.execute(SELECT_META, ("max_seq",)).fetchone()[0],
            clean_shutdown=self._take_clean_flag(tx),
            users=_load_users(tx),
            permissions=[PermissionRecord(*row) for row in tx.execute(SELECT_PERMISSIONS)],
        )

    def _take_clean_flag(self, tx: sqlite3.Connection) -> bool:
        """Whether the last run closed cleanly; from now on we are "running" until
        close() says otherwise (a new store counts as clean). An admin open is no run."""
        row = tx.execute(SELECT_META, ("clean_shutdown",)).fetchone()
        if not self._admin:
            tx.execute(SET_META, ("clean_shutdown", 0))
        return row is None or bool(row[0])

    def close(self) -> None:
        if self._state != "open":
            self._state = "closed"
            return
        try:
            self.commit()
            if not self._admin:
                with self._db_lock, self._transaction_locked() as tx:
                    tx.execute(SET_META, ("clean_shutdown", 1))
        finally:
            with self._db_lock:
                self._shut(clean=True)

    def simulate_crash(self) -> None:
        with self._db_lock:
            self._pending.clear()
            if self._state == "open":
                # Release the data dir but leave the connection open: closing the last
                # connection would checkpoint and delete the WAL, which a killed process never
                # does. It closes when this object is collected.
                assert self._dir_lock is not None
                self._dir_lock.release(clean=False)
                self._dir_lock = None
            self._state = "crashed"

    def _shut(self, *, clean: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._dir_lock is not None:
            self._dir_lock.release(clean=clean)
            self._dir_lock = None
        self._state = "closed"

    # -- plumbing ------------------------------------------------------------------------------

    def _check_open(self) -> sqlite3.Connection:
        if self._state != "open" or self._conn is None:
            raise StoreError(f"store at {self.data_dir} is {self._state}")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock, self._transaction_locked() as tx:
            yield tx

    @contextlib.contextmanager
    def _transaction_locked(self) -> Iterator[sqlite3.Connection]:
        conn = self._check_open()
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"store at {self.data_dir}: {exc}") from exc
            raise

    # -- entities ------------------------------------------------------------------------------

    def put_vhost(self, name: str) -> None:
        with self._transaction() as tx:
            tx.execute(INSERT_VHOST, (name,))

    def delete_vhost(self, name: str) -> None:
        with self._db_lock:
            with self._transaction_locked() as tx:
                queue_ids = [qid for (qid,) in tx.execute(SELECT_VHOST_QUEUES, (name,))]
                tx.executemany(DELETE_QUEUE_MESSAGES, [(qid,) for qid in queue_ids])
                tx.executemany(DELETE_QUEUE, [(qid,) for qid in queue_ids])
                tx.execute(DELETE_VHOST_BINDINGS, (name,))
                tx.execute(DELETE_VHOST_EXCHANGES, (name,))
                tx.execute(DELETE_VHOST_PERMISSIONS, (name,))
                tx.execute(DELETE_VHOST, (name,))
            # Once committed and still under the lock, so no commit sees the queues half gone.
            self._queue_ids.difference_update(queue_ids)

    def put_exchange(self, rec: ExchangeRecord) -> None:
        args = encode_arguments(rec.arguments)
        with self._transaction() as tx:
            tx.execute(
                UPSERT_EXCHANGE,
                (rec.vhost, rec.name, rec.type, rec.durable, rec.auto_delete, rec.internal, args),
            )

    def delete_exchange(self, vhost: str, name: str) -> None:
        with self._transaction() as tx:
            _delete_exchange(tx, vhost, name)

    def put_queue(
        self,
        vhost: str,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> int:
        args = encode_arguments(arguments)
        with self._db_lock:
            with self._transaction_locked() as tx:
                row = tx.execute(SELECT_QUEUE_ID, (vhost, name)).fetchone()
                if row is not None:
                    queue_id: int = row[0]
                    tx.execute(UPDATE_QUEUE, (durable, auto_delete, args, queue_id))
                else:
                    # A counter, not max(queue_id) + 1: ids of deleted queues never come back.
                    tx.execute(NEXT_QUEUE_ID)
                    queue_id = tx.execute(SELECT_META, ("last_queue_id",)).fetchone()[0]
                    tx.execute(INSERT_QUEUE, (queue_id, vhost, name, durable, auto_delete, args))
            self._queue_ids.add(queue_id)
        return queue_id

    def delete_queue(self, queue_id: int) -> None:
        with self._db_lock:
            with self._transaction_locked() as tx:
                _delete_queue(tx, queue_id)
            # Once committed and still under the lock: a commit between the two would write
            # this queue's late operations as orphan rows.
            self._queue_ids.discard(queue_id)

    def put_binding(self, rec: BindingRecord) -> None:
        row = _binding_row(rec)
        with self._transaction() as tx:
            tx.execute(INSERT_BINDING, row)

    def delete_binding(self, rec: BindingRecord) -> None:
        row = _binding_row(rec)
        with self._transaction() as tx:
            tx.execute(DELETE_BINDING, row)

    # -- users and permissions -----------------------------------------------------------------

    def put_user(self, rec: UserRecord) -> None:
        row = (rec.name, rec.password_hash, rec.hashing_algorithm, json.dumps(list(rec.tags)))
        with self._transaction() as tx:
            tx.execute(UPSERT_USER, row)
            tx.execute(USERS_INITIALIZED)

    def delete_user(self, name: str) -> None:
        with self._transaction() as tx:
            tx.execute(DELETE_USER_PERMISSIONS, (name,))
            tx.execute(DELETE_USER, (name,))
            tx.execute(USERS_INITIALIZED)

    def put_permission(self, rec: PermissionRecord) -> None:
        with self._transaction() as tx:
            tx.execute(UPSERT_PERMISSION, (rec.user, rec.vhost, rec.configure, rec.write, rec.read))

    def delete_permission(self, user: str, vhost: str) -> None:
        with self._transaction() as tx:
            tx.execute(DELETE_PERMISSION, (user, vhost))

    # -- messages ------------------------------------------------------------------------------

    def commit(self) -> int:
        taken = self.write_batch()
        if taken:
            self.sync_batch()
        return taken

    # commit() in two halves, for the group committer (server/committer.py): the event-loop
    # thread writes the batch into an open transaction, a worker thread runs only the COMMIT
    # (WAL writes and fsync). A worker that also ran the statements needed the GIL back after
    # every one of them, and with the event loop busy on the other side each such wait could
    # last up to the interpreter's switch interval (5 ms): commits of ~1,000 rows took ~10 ms
    # of wall time for ~2 ms of CPU, and the confirms waited for them. The statements
    # themselves are a millisecond or two of CPU per batch on the loop.

    def write_batch(self) -> int:
        """Take the buffer and write its net effect in a new transaction, left open; return
        how many operations it took. When that is not 0, ``_db_lock`` stays held until
        ``sync_batch()`` (from any thread) or ``abort_batch()`` ends the transaction. On
        ``StoreError`` nothing is written and the operations stay buffered."""
        self._db_lock.acquire()
        ops: list[Op] = []
        try:
            # Taken under _db_lock, so a delete_queue (same lock) is ordered wholly before or
            # after this batch and _queue_ids is exact for it.
            conn = self._check_open()
            ops = self._pending.take()
            if not ops:
                self._db_lock.release()
                return 0
            writes = NetEffect(ops, self._queue_ids)
            conn.execute("BEGIN")
            writes.execute(conn)
        except BaseException as exc:
            self._undo_batch(ops)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"commit to {self.db_path} failed: {exc}") from exc
            raise
        self._batch = ops
        return len(ops)

    def sync_batch(self) -> None:
        """Commit the transaction ``write_batch()`` left open; the batch is durable when this
        returns. On ``StoreError`` the batch is rolled back and its operations buffered again,
        ahead of newer ones."""
        ops, self._batch = self._batch, None
        assert ops is not None, "sync_batch() without a written batch"
        try:
            self._check_open().execute("COMMIT")
        except BaseException as exc:
            self._undo_batch(ops)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"commit to {self.db_path} failed: {exc}") from exc
            raise
        self._db_lock.release()

    def reclaim(self) -> None:
        """Give disk space back to the filesystem: the WAL, checkpointed and truncated to
        nothing, and the database's free pages (those of deleted messages, in a database
        made with auto_vacuum), RECLAIM_PAGES at a time with a checkpoint after each, so
        on a full disk the WAL the vacuum writes never needs more room than the last
        step gave back.  For the disk alarm, once queues drain.  Raises ``StoreError``
        if SQLite fails (what was given back by then stays given back)."""
        with self._db_lock:
            conn = self._check_open()
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                while conn.execute("PRAGMA freelist_count").fetchone()[0]:
                    # As a script: sqlite3's execute() steps this pragma once, which
                    # frees nothing (measured: 10,062 free pages before and after).
                    conn.executescript(f"PRAGMA incremental_vacuum({RECLAIM_PAGES});")
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"reclaiming space in {self.db_path} failed: {exc}") from exc

    def abort_batch(self) -> None:
        """Roll back a batch that ``write_batch()`` wrote and ``sync_batch()`` never ran for
        (its caller was cancelled first); its operations are buffered again. Otherwise a
        no-op."""
        ops, self._batch = self._batch, None
        if ops is not None:
            self._undo_batch(ops)

    def _undo_batch(self, ops: list[Op]) -> None:
        """Roll back, buffer ``ops`` again, release ``_db_lock`` (held by the caller)."""
        try:
            conn = self._conn
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._pending.restore(ops)
        finally:
            self._db_lock.release()

    # -- reading -------------------------------------------------------------------------------

    def read_messages(self, queue_id: int, after_seq: int, limit: int) -> list[MessageRecord]:
        with self._db_lock:
            rows = self._read(SELECT_MESSAGES, (queue_id, after_seq, limit))
        return [MessageRecord(s, e, rk, h, b, bool(r), x, d) for s, e, rk, h, b, r, x, d in rows]

    def queue_depth(self, queue_id: int) -> tuple[int, int]:
        with self._db_lock:
            ((count, size),) = self._read(QUEUE_DEPTH, (queue_id,))
        return count, size

    def message_count(self, queue_id: int) -> int:
        with self._db_lock:
            ((count,),) = self._read(MESSAGE_COUNT, (queue_id,))
        return int(count)

    def _read(self, sql: str, params: tuple[int, ...]) -> list[Any]:
        try:
            return self._check_open().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"read from {self.db_path} failed: {exc}") from exc


def _quote(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _binding_row(rec: BindingRecord) -> tuple[str, str, str, str, str, str]:
    return (
        rec.vhost,
        rec.source,
        rec.destination_kind,
        rec.destination,
        rec.routing_key,
        encode_arguments(rec.arguments),
    )


def _delete_exchange(tx: sqlite3.Connection, vhost: str, name: str) -> None:
    tx.execute(DELETE_EXCHANGE_BINDINGS, (vhost, name))
    tx.execute(DELETE_EXCHANGE, (vhost, name))


def _delete_queue(tx: sqlite3.Connection, queue_id: int) -> None:
    row = tx.execute(SELECT_QUEUE_NAME, (queue_id,)).fetchone()
    if row is not None:
        tx.execute(DELETE_QUEUE_BINDINGS, row)
    tx.execute(DELETE_QUEUE_MESSAGES, (queue_id,))
    tx.execute(DELETE_QUEUE, (queue_id,))


def _load_users(tx: sqlite3.Connection) -> list[UserRecord] | None:
    if tx.execute(SELECT_META, ("users_initialized",)).fetchone() is None:
        return None
    return [
        UserRecord(name, password_hash, algorithm, tuple(json.loads(tags)))
        for name, password_hash, algorithm, tags in tx.execute(SELECT_USERS)
    ]


def _drop_transient(tx: sqlite3.Connection) -> None:
    """Non-durable exchanges and queues do not survive a restart (RabbitMQ semantics)."""
    for vhost, name in tx.execute(SELECT_TRANSIENT_EXCHANGES).fetchall():
        _delete_exchange(tx, vhost, name)
    for (queue_id,) in tx.execute(SELECT_TRANSIENT_QUEUES).fetchall():
        _delete_queue(tx, queue_id)
