"""The buffer of message operations waiting for the next commit, shared by every store.

Hot path: the broker appends here for every persistent publish, delivery and ack, from its
event-loop thread, while a commit may be taking a batch in a worker thread. An append is a
tuple and a plain list append, with no lock: appends only ever add at the end of the one list,
and a take removes a prefix by index (``ops[:n]``, then ``del ops[:n]``, each one call that
the GIL makes atomic), so an append that lands between the two is past ``n`` and stays for
the next take. A lock here cost ~0.2 us per operation, three operations per persistent
message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from amqpbroker.store.base import MessageRecord

# Operation kinds; small ints so an operation is a plain tuple, cheap to build and to test.
ENQUEUE: Final = 0
REMOVE: Final = 1
DELIVERED: Final = 2
PURGE: Final = 3

# (kind, queue_id, seq, record): record is set for ENQUEUE only, seq is 0 for PURGE.
Op = tuple[int, int, int, MessageRecord | None]
# What one buffered operation costs beyond its record's header and body: the tuple
# (72 bytes), a MessageRecord (~100) and a list slot, rounded up.
OP_OVERHEAD = 192


class PendingOps:
    """Message operations in call order, taken as a whole by each commit. The list is never
    replaced, so ``add`` can be its bound ``append``."""

    __slots__ = ("_ops", "add")

    def __init__(self) -> None:
        self._ops: list[Op] = []
        self.add: Callable[[Op], None] = self._ops.append

    def take(self) -> list[Op]:
        """Remove and return everything buffered so far."""
        ops = self._ops
        n = len(ops)
        taken = ops[:n]
        del ops[:n]
        return taken

    def restore(self, ops: list[Op]) -> None:
        """Put back a batch whose write failed, ahead of what was buffered since, so that a
        retry still applies operations in call order."""
        self._ops[:0] = ops

    def clear(self) -> None:
        self._ops.clear()

    def held_bytes(self) -> int:
        """The memory the buffered operations hold (for the memory alarm: called once
        a second, not per operation; a snapshot, since a commit may take some)."""
        total = 0
        for _kind, _queue, _seq, rec in self._ops[:]:
            total += OP_OVERHEAD
            if rec is not None:
                total += len(rec.header) + len(rec.body)
        return total

    def __bool__(self) -> bool:
        # Reading a list's length is atomic under the GIL; no lock needed for a snapshot.
        return bool(self._ops)


class BufferedMessages:
    """The buffering half of the Store contract, the same for every store: each message
    operation appends one tuple to ``self._pending`` (the store's PendingOps), and the
    store's own ``commit()`` applies them. Listed before ``Store`` in a store's bases."""

    __slots__ = ()
    _pending: PendingOps

    def enqueue(self, queue_id: int, rec: MessageRecord) -> None:
        self._pending.add((ENQUEUE, queue_id, rec.seq, rec))

    def remove(self, queue_id: int, seq: int) -> None:
        self._pending.add((REMOVE, queue_id, seq, None))

    def mark_delivered(self, queue_id: int, seq: int) -> None:
        self._pending.add((DELIVERED, queue_id, seq, None))

    def purge(self, queue_id: int, from_seq: int = 0) -> None:
        self._pending.add((PURGE, queue_id, from_seq, None))

    def pending_bytes(self) -> int:
        """Memory held by operations waiting for a commit (PendingOps.held_bytes)."""
        return self._pending.held_bytes()

    def has_pending(self) -> bool:
        return bool(self._pending)
