"""The write path of SQLiteStore.commit(): a batch of buffered message operations reduced to
its net effect, and the SQL that writes it (a few multi-row statements, one transaction)."""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Final

import attrs

from amqpbroker.store.base import MessageRecord
from amqpbroker.store.pending import DELIVERED, ENQUEUE, PURGE, REMOVE, Op

# OR REPLACE: enqueuing a seq the queue holds replaces it, as the contract says.
INSERT_MESSAGES: Final = (
    "INSERT OR REPLACE INTO messages"
    " (queue_id, seq, exchange, routing_key, header, body, redelivered, expires, deliveries)"
    " VALUES "
)
INSERT_ROW: Final = "(?,?,?,?,?,?,?,?,?)"
# A message as published (not redelivered, no TTL deadline, never returned): most of them.
INSERT_PLAIN_ROW: Final = "(?,?,?,?,?,?,0,0,0)"
DELETE_MESSAGES: Final = "DELETE FROM messages WHERE queue_id = ? AND seq IN "
DELETE_MESSAGE_RANGE: Final = "DELETE FROM messages WHERE queue_id = ? AND seq BETWEEN ? AND ?"
MARK_DELIVERED: Final = "UPDATE messages SET redelivered = 1 WHERE queue_id = ? AND seq = ?"
DELETE_QUEUE_MESSAGES: Final = "DELETE FROM messages WHERE queue_id = ?"
DELETE_QUEUE_MESSAGES_FROM: Final = "DELETE FROM messages WHERE queue_id = ? AND seq >= ?"
RAISE_MAX_SEQ: Final = "UPDATE meta SET value = max(value, ?) WHERE key = 'max_seq'"

# Inserts and deletes go out as multi-row statements of up to CHUNK rows, not executemany,
# which steps once per row (and, when commits ran on a worker thread, gave up the GIL and
# waited for it once per row). A chunk is bound in C and stepped once. Chunk sizes are
# powers of two, so at most log2(CHUNK) + 1 statement texts per kind exist (the
# connection's statement cache holds them all), and 256 rows x 9 columns stays far below
# SQLite's bound on parameters (32,766).
CHUNK: Final = 256
# Deleted seqs that form a run of consecutive numbers at least this long are deleted with
# one BETWEEN, a range scan of the index, instead of one lookup per seq (acks come in
# order, so a batch's deletes are mostly one run). Only a run with no seq missing may go
# this way: a row inside the range that is not being deleted would go too.
RANGE_MIN: Final = 8


@functools.cache
def _insert_sql(rows: int, row: str = INSERT_ROW) -> str:
    return INSERT_MESSAGES + ",".join(itertools.repeat(row, rows))


@functools.cache
def _delete_sql(seqs: int) -> str:
    return DELETE_MESSAGES + "(" + ",".join(itertools.repeat("?", seqs)) + ")"


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    """(start, size) pieces covering range(n): CHUNK-sized, then the binary digits of the
    remainder, largest first."""
    start = 0
    size = CHUNK
    while start < n:
        while size > n - start:
            size >>= 1
        yield start, size
        start += size


def _by_queue(keys: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    seqs: dict[int, list[int]] = {}
    for queue_id, seq in keys:
        seqs.setdefault(queue_id, []).append(seq)
    return seqs


def _runs(seqs: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Distinct ``seqs`` split into runs of at least RANGE_MIN consecutive numbers, as (first,
    last), and the rest."""
    runs: list[tuple[int, int]] = []
    rest: list[int] = []
    ordered = sorted(seqs)
    start = 0
    n = len(ordered)
    for i in range(1, n + 1):
        if i == n or ordered[i] != ordered[i - 1] + 1:
            if i - start >= RANGE_MIN:
                runs.append((ordered[start], ordered[i - 1]))
            else:
                rest.extend(ordered[start:i])
            start = i
    return runs, rest


def _write_rows(conn: sqlite3.Connection, row: str, width: int, values: list[object]) -> None:
    """Insert ``values`` (``width`` per row) in chunks."""
    for start, size in _chunks(len(values) // width):
        conn.execute(_insert_sql(size, row), values[width * start : width * (start + size)])


class NetEffect:
    """A batch of message operations reduced to what it changes on disk.

    Applying operations one statement at a time would keep call order trivially, but costs a
    statement per operation and, worse, writes messages that the same batch removes again (a
    consumer that keeps up acks most messages in the round they were published). Instead
    every operation is folded, in call order, into four sets whose statements commute:
    purged queues, then deletes and redelivered-updates of rows from earlier batches, then
    inserts of rows from this batch. An enqueue followed by a remove of the same seq cancels
    out; a mark_delivered of a row from this batch just sets its flag before the insert.
    """

    __slots__ = ("deletes", "delivered", "inserts", "max_seq", "purges")

    def __init__(self, ops: list[Op], live_queues: set[int]) -> None:
        inserts: dict[tuple[int, int], MessageRecord] = {}
        # A dict used as an ordered set: acks come roughly in seq order, and deleting in that
        # order walks the index forward.
        deletes: dict[tuple[int, int], None] = {}
        delivered: set[tuple[int, int]] = set()
        purges: dict[int, int] = {}  # queue_id -> lowest from_seq purged in this batch
        max_seq = 0
        # Hot loop (~1,000 operations a commit under load): the common kinds first, and
        # nothing done per operation that a rarer kind needs.
        for kind, queue_id, seq, rec in ops:
            if queue_id not in live_queues:  # deleted queue: its late operations are void
                if kind == ENQUEUE and seq > max_seq:
                    # Counted even so: the broker has used the number either way.
                    max_seq = seq
                continue
            key = (queue_id, seq)
            if kind == ENQUEUE:
                if seq > max_seq:
                    max_seq = seq
                inserts[key] = rec  # type: ignore[assignment]  # set for ENQUEUE
            elif kind == REMOVE:
                if inserts.pop(key, None) is None:
                    deletes[key] = None
                if delivered:
                    delivered.discard(key)
            elif kind == DELIVERED:
                pending = inserts.get(key)
                if pending is None:
                    delivered.add(key)
                elif not pending.redelivered:
                    inserts[key] = attrs.evolve(pending, redelivered=True)
            elif kind == PURGE:
                # Rare, so a scan of the batch is fine. The purge statement removes every
                # earlier row of the queue from seq on (seq 0: all), so earlier-batch
                # deletes and updates of those rows are moot.
                purges[queue_id] = min(seq, purges.get(queue_id, seq))
                inserts = {k: r for k, r in inserts.items() if k[0] != queue_id or k[1] < seq}
                deletes = {k: None for k in deletes if k[0] != queue_id or k[1] < seq}
                delivered = {k for k in delivered if k[0] != queue_id or k[1] < seq}
        self.inserts = inserts
        self.deletes = deletes
        self.delivered = delivered
        self.purges = purges
        self.max_seq = max_seq

    def execute(self, conn: sqlite3.Connection) -> None:
        if self.purges:
            conn.executemany(DELETE_QUEUE_MESSAGES_FROM, list(self.purges.items()))
        if self.deletes:
            for queue_id, seqs in _by_queue(self.deletes).items():
                runs, rest = _runs(seqs)
                for first, last in runs:
                    conn.execute(DELETE_MESSAGE_RANGE, (queue_id, first, last))
                for start, size in _chunks(len(rest)):
                    conn.execute(_delete_sql(size), (queue_id, *rest[start : start + size]))
        if self.delivered:
            conn.executemany(MARK_DELIVERED, self.delivered)
        if self.inserts:
            # Flat parameter lists, sliced per chunk; the last three columns of plain rows
            # are literals in the statement (three binds fewer per row).
            plain: list[object] = []
            full: list[object] = []
            for (q, s), r in self.inserts.items():
                if r.redelivered or r.expires or r.deliveries:
                    full += (q, s, r.exchange, r.routing_key, r.header, r.body)
                    full += (r.redelivered, r.expires, r.deliveries)
                else:
                    plain += (q, s, r.exchange, r.routing_key, r.header, r.body)
            _write_rows(conn, INSERT_PLAIN_ROW, 6, plain)
            _write_rows(conn, INSERT_ROW, 9, full)
        if self.max_seq:
            conn.execute(RAISE_MAX_SEQ, (self.max_seq,))
