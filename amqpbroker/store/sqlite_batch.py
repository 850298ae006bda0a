"""The write path of SQLiteStore.commit(): a batch of buffered message operations reduced to
its net effect, and the SQL that writes it (executemany per kind, in one transaction)."""

from __future__ import annotations

import sqlite3
from typing import Final

import attrs

from amqpbroker.store.base import MessageRecord
from amqpbroker.store.pending import DELIVERED, ENQUEUE, PURGE, REMOVE, Op

# OR REPLACE: enqueuing a seq the queue holds replaces it, as the contract says.
INSERT_MESSAGE: Final = (
    "INSERT OR REPLACE INTO messages"
    " (queue_id, seq, exchange, routing_key, header, body, redelivered, expires, deliveries)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
DELETE_MESSAGE: Final = "DELETE FROM messages WHERE queue_id = ? AND seq = ?"
MARK_DELIVERED: Final = "UPDATE messages SET redelivered = 1 WHERE queue_id = ? AND seq = ?"
DELETE_QUEUE_MESSAGES: Final = "DELETE FROM messages WHERE queue_id = ?"
DELETE_QUEUE_MESSAGES_FROM: Final = "DELETE FROM messages WHERE queue_id = ? AND seq >= ?"
RAISE_MAX_SEQ: Final = "UPDATE meta SET value = max(value, ?) WHERE key = 'max_seq'"


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
        deletes: set[tuple[int, int]] = set()
        delivered: set[tuple[int, int]] = set()
        purges: dict[int, int] = {}  # queue_id -> lowest from_seq purged in this batch
        max_seq = 0
        for kind, queue_id, seq, rec in ops:
            if kind == ENQUEUE:
                # Counted even for a deleted queue: the broker has used the number either way.
                max_seq = max(max_seq, seq)
            if queue_id not in live_queues:  # deleted queue: its late operations are void
                continue
            key = (queue_id, seq)
            if kind == ENQUEUE:
                assert rec is not None
                inserts[key] = rec
            elif kind == REMOVE:
                if inserts.pop(key, None) is None:
                    deletes.add(key)
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
                deletes = {k for k in deletes if k[0] != queue_id or k[1] < seq}
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
            conn.executemany(DELETE_MESSAGE, self.deletes)
        if self.delivered:
            conn.executemany(MARK_DELIVERED, self.delivered)
        if self.inserts:
            conn.executemany(
                INSERT_MESSAGE,
                [
                    (
                        q,
                        s,
                        r.exchange,
                        r.routing_key,
                        r.header,
                        r.body,
                        r.redelivered,
                        r.expires,
                        r.deliveries,
                    )
                    for (q, s), r in self.inserts.items()
                ],
            )
        if self.max_seq:
            conn.execute(RAISE_MAX_SEQ, (self.max_seq,))
