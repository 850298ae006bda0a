"""Durable queues larger than memory: the tail of a long queue lives only on disk.

A durable queue on a persistent broker keeps at most ``PAGE_OUT_AT`` ready messages
in memory.  Past that it becomes a paged queue (same object, class swapped, as
feature queues do: :class:`PagedQueue` for a plain queue, :class:`PagedFeatureQueue`
for one with TTLs, limits, dead lettering, single active consumer or quorum type):
new persistent messages are written to the store and *not* kept in memory; they form
the queue's :class:`Tail`, in publish order, together with any transient messages
published meanwhile (those cannot go to the store, since they must not survive a
restart, so they wait in memory, in their place).  When the in-memory head runs low,
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
from typing import ClassVar, cast

from ..store.base import MessageRecord
from . import queue as _queue
from .features import FeatureMessage, FeatureQueue, enable_features, featured
from .message import Message, QueuedMessage
from .queue import Queue
from .queue_arguments import DROP_HEAD, PLAIN
from .ready import FifoReady


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

    __slots__ = ("bytes", "count", "generation", "runs", "sized")

    def __init__(self, sized: bool = True) -> None:
        self.runs: deque[_DiskRun | deque[QueuedMessage]] = deque()
        self.count = 0
        # Body bytes of the tail, for x-max-length-bytes.  A queue recovered without
        # that limit does not know them (summing them would read every stored message
        # at startup) and does not need them: ``sized`` is False and they stay 0.
        self.bytes = 0
        self.sized = sized
        # Bumped when the tail is dropped (purge, delete), so a page-in read that
        # was under way when it happened is discarded.
        self.generation = 0

    def add_stored(self, seq: int, size: int) -> None:
        last = self.runs[-1] if self.runs else None
        if isinstance(last, _DiskRun):
            last.count += 1
        else:
            self.runs.append(_DiskRun(seq - 1, 1))
        self.count += 1
        if self.sized:
            self.bytes += size

    def add_transient(self, qm: QueuedMessage) -> None:
        last = self.runs[-1] if self.runs else None
        if isinstance(last, deque):
            last.append(qm)
        else:
            self.runs.append(deque((qm,)))
        self.count += 1
        if self.sized:
            self.bytes += len(qm.message.body)

    def taken(self, count: int, size: int) -> None:
        """``count`` messages of ``size`` body bytes moved to the head."""
        self.count -= count
        if self.sized:
            self.bytes -= size

    def first_seq(self) -> int:
        first = self.runs[0]
        return first.after + 1 if isinstance(first, _DiskRun) else first[0].seq

    def clear(self) -> None:
        self.runs.clear()
        self.count = 0
        self.bytes = 0
        self.generation += 1


class Paging(Queue):
    """What both paged queue classes share (see the module docstring).

    Methods call the unpaged class's versions through ``_base`` rather than
    ``super()``: a paged queue turns back into its unpaged class (in place) as soon
    as its tail is gone, which can happen half way through one of these methods."""

    __slots__ = ()
    tail: Tail
    _base: ClassVar[type[Queue]]

    @property
    def message_count(self) -> int:
        return len(self.ready) + self.tail.count

    def tail_bytes(self) -> int:
        return self.tail.bytes

    def _to_tail(self, qm: QueuedMessage) -> None:
        """A new message joins the end of the queue: on disk only when it is stored."""
        if qm.persisted:
            self.tail.add_stored(qm.seq, len(qm.message.body))
        else:
            self.tail.add_transient(qm)

    def dispatch(self) -> None:
        self._base.dispatch(self)
        if len(self.ready) < page_in_below():
            self._refill()

    def get(self) -> QueuedMessage | None:
        qm = None
        while True:
            if not self.ready and self.tail.count and not self._fill_head_now():
                break  # the next rows are not committed yet
            qm = self._base.get(self)
            # A feature queue drops expired messages at the head: go on reading.
            if qm is not None or not self.tail.count:
                break
        if len(self.ready) < page_in_below():
            self._refill()
        return qm

    def purge(self) -> int:
        count = self.message_count
        if self.tail.count and self.store is not None:
            # Everything stored from the tail's first seq on is tail (lower seqs are
            # the head or unacked); unacked messages stay stored.
            self.store.purge(self.store_id, self.tail.first_seq())
        self.tail.clear()
        self._base.purge(self)
        _unpage(self)
        return count

    # ------------------------------------------------------------ paging in

    def _take_transient(self, moved: deque[QueuedMessage]) -> None:
        """Transient tail messages join the head (plain queues: as they are)."""
        self.ready.extend(moved)

    def _move_transient(self) -> None:
        """Transient runs at the front of the tail go to the head (no I/O)."""
        runs = self.tail.runs
        while runs:
            moved = runs[0]
            if not isinstance(moved, deque):
                return
            runs.popleft()
            self.tail.taken(len(moved), sum(len(qm.message.body) for qm in moved))
            self._take_transient(moved)

    def _fill_head_now(self) -> bool:
        """Move or read (synchronously) the next tail messages to the head.  False
        when nothing could be: the next stored rows are not committed yet, and the
        pager reads them after the next group commit (which then goes on with what
        waited for them: see ``_after_page_in``)."""
        count = self.tail.count
        self._move_transient()
        if not self.ready:
            self.page_in_now()
        if self.tail.count != count:
            return True
        self._refill()
        return False

    def _refill(self) -> None:
        self._move_transient()
        if not self.tail.runs:
            _unpage(self)
        elif self.pager is not None:
            self.pager(self)

    def page_in_plan(self) -> tuple[int, int, int] | None:
        """What to read next: (after_seq, limit, generation), or None."""
        if self.deleted or not isinstance(self, Paging) or len(self.ready) >= _queue.PAGE_OUT_AT:
            return None
        self._move_transient()
        runs = self.tail.runs
        if not runs:
            _unpage(self)
            return None
        run = runs[0]
        assert isinstance(run, _DiskRun)
        return run.after, min(page_in_below(), run.count), self.tail.generation

    def paged_in(self, records: list[MessageRecord], after: int, generation: int) -> bool:
        """Apply a read made from a plan; False when the rest is not committed yet."""
        if self.deleted or not isinstance(self, Paging) or generation != self.tail.generation:
            return True
        runs = self.tail.runs
        run = runs[0] if runs else None
        if not isinstance(run, _DiskRun) or run.after != after:
            return True
        count = min(len(records), run.count)
        size = 0
        for rec in records[:count]:
            if rec.expires and type(self) is PagedQueue:
                # Stored with a per-message TTL by an earlier run of the broker.
                self._gain_features()
            message = Message(rec.exchange, rec.routing_key, rec.header, rec.body)
            self.restore(rec, message, rec.redelivered or run.redelivered)
            size += len(rec.body)
        if count:
            run.after = records[count - 1].seq
            run.count -= count
            self.tail.taken(count, size)
        if not run.count:
            runs.popleft()
        self._base.dispatch(self)
        if count:
            self._after_page_in()
        if not self.tail.runs:
            _unpage(self)
        return count > 0

    def _after_page_in(self) -> None:
        """Feature queues enforce what waited for these messages."""

    def page_in_now(self) -> None:
        """Synchronous page-in (basic.get on an empty head, brokers without a pager)."""
        plan = self.page_in_plan()
        if plan is None or self.store is None:
            return
        after, limit, generation = plan
        self.paged_in(self.store.read_messages(self.store_id, after, limit), after, generation)

    def _gain_features(self) -> None:
        assert self.host is not None
        enable_features(self, self.host, PLAIN)


class PagedQueue(Paging):
    """A durable plain queue whose tail is on disk."""

    __slots__ = ()
    _base = Queue

    def publish(self, message: Message) -> bool:
        seq = self.next_seq
        self.next_seq = seq + 1
        if message.persistent:
            assert self.store is not None
            self._store(self.store, seq, message)
            self.tail.add_stored(seq, len(message.body))
            return True
        self.tail.add_transient(QueuedMessage(seq, message))
        return False


class PagedFeatureQueue(Paging, FeatureQueue):
    """A durable queue with features (FIFO: no priorities) whose tail is on disk.

    FeatureQueue's operations run unchanged; these hooks send new and returned
    messages to the tail and count it in the length limits."""

    __slots__ = ()
    _base = FeatureQueue
    ready: FifoReady

    def _admit(self, qm: FeatureMessage) -> bool:
        self._to_tail(qm)
        return False

    def _append(self, qm: FeatureMessage) -> None:
        self._to_tail(qm)

    def _take_transient(self, moved: deque[QueuedMessage]) -> None:
        # Published before the queue gained features (per-message TTL): converted
        # as they reach the head.
        for qm in moved:
            self._push(featured(qm))

    def _drop_over_limit(self) -> None:
        FeatureQueue._drop_over_limit(self)
        self._keep_head_filled()

    def _after_page_in(self) -> None:
        # A drop-head limit that found the head empty and the next rows not yet
        # committed (_fill_head_now) drops the oldest ones now.
        options = self.ext.options
        if options.limited and options.overflow == DROP_HEAD:
            FeatureQueue._drop_over_limit(self)

    def _expire(self, now: float) -> None:
        # Expired messages leave from the head; the ones behind it on disk must be
        # read in to expire too, consumers or not (RabbitMQ drops them as well).
        FeatureQueue._expire(self, now)
        self._keep_head_filled()

    def _keep_head_filled(self) -> None:
        if isinstance(self, Paging) and len(self.ready) < page_in_below():
            self._refill()

    def _gain_features(self) -> None:
        pass


def pageable(queue: Queue) -> bool:
    """Whether this queue may page out (priority queues never do)."""
    return type(queue) is Queue or (
        type(queue) is FeatureQueue and isinstance(queue.ready, FifoReady)
    )


def start_paging(queue: Queue, tail: Tail | None = None) -> None:
    """The queue's head is full: from now on its tail goes to disk."""
    if type(queue) is Queue:
        queue.__class__ = PagedQueue
    else:
        assert type(queue) is FeatureQueue
        queue.__class__ = PagedFeatureQueue
    queue.tail = tail or Tail()


def resume_paged(queue: Queue, after: int, count: int, size: int | None, redelivered: bool) -> None:
    """Recovery: the first messages are in memory, ``count`` more are on disk
    (``size`` body bytes, None when not counted)."""
    tail = Tail(sized=size is not None)
    tail.runs.append(_DiskRun(after, count, redelivered))
    tail.count = count
    tail.bytes = size or 0
    start_paging(queue, tail)


def _unpage(queue: Queue) -> None:
    if isinstance(queue, Paging) and not queue.tail.runs and len(queue.ready) < _queue.PAGE_OUT_AT:
        cast(Queue, queue).__class__ = queue._base
