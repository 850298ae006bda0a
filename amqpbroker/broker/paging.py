"""Durable queues larger than memory: the tail of a long queue lives only on disk.

A durable queue on a persistent broker has a paging part, :class:`Paging`, and
keeps at most ``PAGE_OUT_AT`` ready messages in memory.  Past that it pages out
(``queue.page_out()``, whatever its rules): ``queue.tail`` becomes a
:class:`~.ready.Tail`, new persistent messages are written to the store and *not*
kept in memory; they form the tail, in publish order, together with any transient
messages published meanwhile (those cannot go to the store, since they must not
survive a restart, so they wait in memory, in their place).  Once the tail is gone
and the head below the window, ``queue.tail`` is None again and a plain queue is
back on its fast path.  When the in-memory head runs low,
the next messages are read back from the store (``page in``) by the server's pager
task in a worker thread, so the event loop never waits for the disk; ``basic.get``
on an empty head reads synchronously, so it never answers get-empty while messages
exist.

Why sequence ranges work: seqs grow with every publish to the queue, the tail
holds the newest messages, and everything delivered (unacked) or requeued has a
lower seq than any tail message (a quorum queue's returned message gets a new seq
and joins the end of the tail).  So the stored rows with ``seq > after`` are exactly
the tail's on-disk messages, in order; a page-in reads ``limit`` of them.  A read
that returns fewer rows than the run holds means the rest is not committed yet: it
is retried after the next group commit.

Queue features on a paged queue act on the head, as RabbitMQ's classic queues do:
a message expires when it reaches the head (head-only expiry: one on disk is read
in, found expired, and dropped or dead-lettered), drop-head drops from the head,
and the length limits count the tail too (its message count and body bytes).

Not paged: priority queues (x-max-priority: each level would need its own tail)
and non-durable queues (nothing of theirs is on disk).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..store.base import MessageRecord
from . import queue as _queue
from .features import enable_rules
from .message import Message, QueuedMessage
from .queue import Queue
from .queue_arguments import PLAIN
from .ready import DiskRun, PriorityReady, Tail


def page_in_below() -> int:
    """Page in when the head falls below half the window (read at run time, so a
    test can shrink the window)."""
    return _queue.PAGE_OUT_AT // 2


def pageable(queue: Queue) -> bool:
    """Whether this queue may page out (it has a paging part; priority queues never
    do)."""
    return queue.paging is not None and not isinstance(queue.ready, PriorityReady)


def resume_paged(queue: Queue, after: int, count: int, size: int | None, redelivered: bool) -> None:
    """Recovery: the first messages are in memory, ``count`` more are on disk
    (``size`` body bytes, None when not counted)."""
    tail = Tail(sized=size is not None)
    tail.runs.append(DiskRun(after, count, redelivered))
    tail.count = count
    tail.bytes = size or 0
    queue.tail = tail
    queue.parts_changed()


class Paging:
    """A durable queue's paging part (queue.PagingPart): ``request`` asks the broker's
    pager to read the queue's next messages in (Broker.request_page_in)."""

    __slots__ = ("request",)

    def __init__(self, request: Callable[[Queue], None]) -> None:
        self.request = request

    def page_out(self, queue: Queue) -> None:
        assert queue.tail is None and not isinstance(queue.ready, PriorityReady)
        queue.tail = Tail()
        queue.parts_changed()

    def unpage(self, queue: Queue) -> None:
        tail = queue.tail
        if tail is not None and not tail.runs and len(queue.ready) < _queue.PAGE_OUT_AT:
            queue.tail = None
            queue.parts_changed()

    # ------------------------------------------------------- what goes in

    def publish(self, queue: Queue, message: Message) -> bool:
        """A plain paged queue: every new message joins the tail."""
        tail = queue.tail
        assert tail is not None
        seq = queue.next_seq
        queue.next_seq = seq + 1
        if message.persistent:
            assert queue.store is not None
            queue.store_new(queue.store, seq, message)
            tail.add_stored(seq, len(message.body))
            return True
        tail.add_transient(QueuedMessage(seq, message))
        return False

    def to_tail(self, queue: Queue, qm: QueuedMessage) -> None:
        """A new message joins the end of the queue: on disk only when it is stored."""
        tail = queue.tail
        assert tail is not None
        if qm.persisted:
            tail.add_stored(qm.seq, len(qm.message.body))
        else:
            tail.add_transient(qm)

    # ---------------------------------------------------- what comes out

    def get(self, queue: Queue) -> QueuedMessage | None:
        qm = None
        while True:
            tail = queue.tail
            if (
                tail is not None
                and not queue.ready
                and tail.count
                and not self.fill_head_now(queue)
            ):
                break  # the next rows are not committed yet
            qm = queue.take_head()
            # Rules drop expired messages at the head: go on reading.
            tail = queue.tail
            if qm is not None or tail is None or not tail.count:
                break
        self.keep_head_filled(queue)
        return qm

    def purge_tail(self, queue: Queue) -> None:
        tail = queue.tail
        assert tail is not None
        if tail.count and queue.store is not None:
            # Everything stored from the tail's first seq on is tail (lower seqs are
            # the head or unacked); unacked messages stay stored.
            queue.store.purge(queue.store_id, tail.first_seq())
        tail.clear()

    # ------------------------------------------------------------ paging in

    def keep_head_filled(self, queue: Queue) -> None:
        if queue.tail is not None and len(queue.ready) < page_in_below():
            self._refill(queue)

    def _move_transient(self, queue: Queue, tail: Tail) -> None:
        """Transient runs at the front of the tail go to the head (no I/O)."""
        runs = tail.runs
        while runs:
            moved = runs[0]
            if not isinstance(moved, deque):
                return
            runs.popleft()
            tail.taken(len(moved), sum(len(qm.message.body) for qm in moved))
            if queue.rules is not None:
                queue.rules.take_moved(moved)
            else:
                ready = queue.ready
                assert not isinstance(ready, PriorityReady)
                ready.extend(moved)

    def fill_head_now(self, queue: Queue) -> bool:
        """Move or read (synchronously) the next tail messages to the head.  False
        when nothing could be: the next stored rows are not committed yet, and the
        pager reads them after the next group commit (which then goes on with what
        waited for them: see ``RulesPart.after_page_in``)."""
        tail = queue.tail
        if tail is None:
            return False
        count = tail.count
        self._move_transient(queue, tail)
        if not queue.ready:
            queue.page_in_now()
        if tail.count != count:
            return True
        self._refill(queue)
        return False

    def _refill(self, queue: Queue) -> None:
        tail = queue.tail
        if tail is None:
            return
        self._move_transient(queue, tail)
        if not tail.runs:
            self.unpage(queue)
        else:
            self.request(queue)

    def page_in_plan(self, queue: Queue) -> tuple[int, int, int] | None:
        tail = queue.tail
        if queue.deleted or tail is None or len(queue.ready) >= _queue.PAGE_OUT_AT:
            return None
        self._move_transient(queue, tail)
        runs = tail.runs
        if not runs:
            self.unpage(queue)
            return None
        run = runs[0]
        assert isinstance(run, DiskRun)
        return run.after, min(page_in_below(), run.count), tail.generation

    def paged_in(
        self, queue: Queue, records: list[MessageRecord], after: int, generation: int
    ) -> bool:
        tail = queue.tail
        if queue.deleted or tail is None or generation != tail.generation:
            return True
        runs = tail.runs
        run = runs[0] if runs else None
        if not isinstance(run, DiskRun) or run.after != after:
            return True
        count = min(len(records), run.count)
        size = 0
        for rec in records[:count]:
            if rec.expires and queue.rules is None:
                # Stored with a per-message TTL by an earlier run of the broker.
                enable_rules(queue, PLAIN)
            message = Message(rec.exchange, rec.routing_key, rec.header, rec.body)
            queue.restore(rec, message, rec.redelivered or run.redelivered)
            size += len(rec.body)
        if count:
            run.after = records[count - 1].seq
            run.count -= count
            tail.taken(count, size)
        if not run.count:
            runs.popleft()
        queue.deliver_ready()
        if count and queue.rules is not None:
            queue.rules.after_page_in()
        if not tail.runs:
            self.unpage(queue)
        return count > 0
