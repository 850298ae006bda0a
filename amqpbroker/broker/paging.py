"""Durable queues larger than memory: the tail of a long queue lives only on disk.

A plain durable queue on a persistent broker keeps at most ``PAGE_OUT_AT`` ready
messages in memory.  Past that it becomes a :class:`PagedQueue` (same object,
class swapped, as feature queues do): new persistent messages are written to the
store and *not* kept in memory; they form the queue's :class:`Tail`, in publish
order, together with any transient messages published meanwhile (those cannot go
to the store, since they must not survive a restart, so they wait in memory, in
their place).  When the in-memory head runs low, the next messages are read back
from the store (``page in``) by the server's pager task in a worker thread, so
the event loop never waits for the disk; ``basic.get`` on an empty head reads
synchronously, so it never answers get-empty while messages exist.

Why sequence ranges work: seqs grow with every publish to the queue, the tail
holds the newest messages, and everything delivered (unacked) or requeued has a
lower seq than any tail message.  So the stored rows with ``seq > after`` are
exactly the tail's on-disk messages, in order; a page-in reads ``limit`` of them.
A read that returns fewer rows than the run holds means the rest is not committed
yet: it is retried after the next group commit.

Not paged (documented limitation): queues with TTLs, length limits, priorities,
dead lettering or other features (``FeatureQueue``), and non-durable queues.
"""

from __future__ import annotations

from collections import deque

from ..store.base import MessageRecord
from . import queue as _queue
from .message import Message, QueuedMessage
from .queue import Queue


def page_in_below() -> int:
    """Page in when the head falls below half the window (read at run time, so a
    test can shrink the window)."""
    return _queue.PAGE_OUT_AT // 2


class _DiskRun:
    """Consecutive tail messages that are only in the store: the ``count`` rows
    after seq ``after`` (of this queue)."""

    __slots__ = ("after", "count", "redelivered")

    def __init__(self, after: int, count: int, redelivered: bool = False) -> None:
        self.after = after
        self.count = count
        self.redelivered = redelivered  # recovered after a crash: may have been delivered


class Tail:
    """The messages behind a paged queue's in-memory head, oldest first."""

    __slots__ = ("count", "generation", "runs")

    def __init__(self) -> None:
        self.runs: deque[_DiskRun | deque[QueuedMessage]] = deque()
        self.count = 0
        # Bumped when the tail is dropped (purge, delete), so a page-in read that
        # was under way when it happened is discarded.
        self.generation = 0

    def add_stored(self, seq: int) -> None:
        last = self.runs[-1] if self.runs else None
        if isinstance(last, _DiskRun):
            last.count += 1
        else:
            self.runs.append(_DiskRun(seq - 1, 1))
        self.count += 1

    def add_transient(self, qm: QueuedMessage) -> None:
        last = self.runs[-1] if self.runs else None
        if isinstance(last, deque):
            last.append(qm)
        else:
            self.runs.append(deque((qm,)))
        self.count += 1

    def first_seq(self) -> int:
        first = self.runs[0]
        return first.after + 1 if isinstance(first, _DiskRun) else first[0].seq

    def clear(self) -> None:
        self.runs.clear()
        self.count = 0
        self.generation += 1


class PagedQueue(Queue):
    """A durable plain queue whose tail is on disk (see the module docstring)."""

    __slots__ = ()
    tail: Tail

    @property
    def message_count(self) -> int:
        return len(self.ready) + self.tail.count

    def publish(self, message: Message) -> bool:
        seq = self.next_seq
        self.next_seq = seq + 1
        if message.persistent:
            assert self.store is not None
            self._store(self.store, seq, message)
            self.tail.add_stored(seq)
            return True
        self.tail.add_transient(QueuedMessage(seq, message))
        return False

    def dispatch(self) -> None:
        Queue.dispatch(self)
        if len(self.ready) < page_in_below():
            self._refill()

    def get(self) -> QueuedMessage | None:
        if not self.ready and self.tail.count:
            self._move_transient()
            if not self.ready:
                self.page_in_now()  # basic.get must not say "empty" while messages exist
        qm = Queue.get(self)
        if len(self.ready) < page_in_below():
            self._refill()
        return qm

    def purge(self) -> int:
        count = len(self.ready) + self.tail.count
        if self.tail.count and self.store is not None:
            # Everything stored from the tail's first seq on is tail (lower seqs are
            # the head or unacked); unacked messages stay stored.
            self.store.purge(self.store_id, self.tail.first_seq())
        self.tail.clear()
        Queue.purge(self)
        _become_plain(self)
        return count

    # ------------------------------------------------------------ paging in

    def _move_transient(self) -> None:
        """Transient runs at the front of the tail go to the head (no I/O)."""
        runs = self.tail.runs
        while runs:
            moved = runs[0]
            if not isinstance(moved, deque):
                return
            runs.popleft()
            self.tail.count -= len(moved)
            self.ready.extend(moved)

    def _refill(self) -> None:
        self._move_transient()
        if not self.tail.runs:
            _become_plain(self)
        elif self.pager is not None:
            self.pager(self)

    def page_in_plan(self) -> tuple[int, int, int] | None:
        """What to read next: (after_seq, limit, generation), or None."""
        if self.deleted or type(self) is not PagedQueue or len(self.ready) >= _queue.PAGE_OUT_AT:
            return None
        self._move_transient()
        runs = self.tail.runs
        if not runs:
            _become_plain(self)
            return None
        run = runs[0]
        assert isinstance(run, _DiskRun)
        return run.after, min(page_in_below(), run.count), self.tail.generation

    def paged_in(self, records: list[MessageRecord], after: int, generation: int) -> bool:
        """Apply a read made from a plan; False when the rest is not committed yet."""
        if self.deleted or type(self) is not PagedQueue or generation != self.tail.generation:
            return True
        runs = self.tail.runs
        run = runs[0] if runs else None
        if not isinstance(run, _DiskRun) or run.after != after:
            return True
        count = min(len(records), run.count)
        for rec in records[:count]:
            message = Message(rec.exchange, rec.routing_key, rec.header, rec.body)
            self.ready.append(
                QueuedMessage(rec.seq, message, rec.redelivered or run.redelivered, True)
            )
        if count:
            run.after = records[count - 1].seq
            run.count -= count
            self.tail.count -= count
        if not run.count:
            runs.popleft()
        complete = count > 0
        Queue.dispatch(self)
        if not self.tail.runs:
            _become_plain(self)
        return complete

    def page_in_now(self) -> None:
        """Synchronous page-in (basic.get on an empty head, brokers without a pager)."""
        plan = self.page_in_plan()
        if plan is None or self.store is None:
            return
        after, limit, generation = plan
        self.paged_in(self.store.read_messages(self.store_id, after, limit), after, generation)


def start_paging(queue: Queue) -> None:
    """The queue's head is full: from now on its tail goes to disk."""
    queue.__class__ = PagedQueue
    queue.tail = Tail()


def resume_paged(queue: Queue, after: int, count: int, redelivered: bool) -> None:
    """Recovery: the first messages are in memory, ``count`` more are on disk."""
    start_paging(queue)
    assert isinstance(queue, PagedQueue)
    queue.tail.runs.append(_DiskRun(after, count, redelivered))
    queue.tail.count = count


def _become_plain(queue: PagedQueue) -> None:
    if not queue.tail.runs and len(queue.ready) < _queue.PAGE_OUT_AT:
        plain: Queue = queue
        plain.__class__ = Queue
