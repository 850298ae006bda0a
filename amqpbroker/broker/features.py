"""Queues with RabbitMQ's extensions: TTLs, x-expires, length limits, dead lettering,
priorities, single active consumer, and quorum-style delivery limits.

A queue declared without such arguments is plain (``queue.rules`` is None), and its
publish and delivery paths know nothing of any of this.  The declare decides once,
when the queue is created (``queue_arguments.options_from``, ``queue_kinds.make_queue``),
whether it gets a :class:`FeatureRules` as its rules part, which takes over the
queue's operations (queue.py hands them over whole) and keeps their state.  A plain
queue gains rules with :func:`enable_rules` (options PLAIN) the first time a message
with an ``expiration`` property reaches it: per-message TTL needs no declare
argument.  The rules work the same whether the queue's tail is in memory or paged
out (paging.py): new and returned messages join the tail when there is one, and
the limits count it.

Semantics follow RabbitMQ 3.10's classic queues (checked on a real broker; the
client tests hold the evidence):

* TTL: a message's deadline is publish time + min(x-message-ttl, expiration).  Only
  the head of the queue expires (rabbit_amqqueue_process drop_expired_msgs): a
  timer at the head's deadline removes it and every expired message behind it that
  has reached the head; a message with a short TTL behind a longer-lived one waits
  for it.  An expired message is never delivered (basic.get drops expired heads
  before and after the fetch, so get-ok's count excludes them), and a requeued one
  whose deadline passed is dropped at once.  Unacked messages do not expire.
  A zero TTL message is delivered only to a consumer ready for it right away.
* x-expires: the queue is deleted once it has had no consumers, and no declare,
  basic.get or consume, for that long; its messages are not dead-lettered.
* Length limits count ready messages (and body bytes), not unacked ones.  drop-head
  drops from the head (the highest priority) after enqueueing, reason ``maxlen``;
  reject-publish refuses a message that would exceed the limit, even with a
  consumer waiting (basic.nack in confirm mode); reject-publish-dlx also
  dead-letters it.
* Priorities (x-max-priority): see ready.py.  Requeue puts a message back at its
  original position; it may push the queue over a drop-head limit again.
* Single active consumer: the first consumer gets everything; when it goes, the
  highest-priority remaining one (earliest registered within a priority) takes
  over.  A new consumer, whatever its priority, does not preempt the active one.
* Quorum queues (RabbitMQ 3.10's rabbit_fifo as clients see it): every message is
  stored, whatever its delivery mode; a returned message (nack/reject with requeue,
  channel closed, recover) goes to the back of the queue with its delivery count
  raised, and is delivered with an ``x-delivery-count`` header (basic.get always
  adds it, 0 the first time); past ``x-delivery-limit`` returns it is dead-lettered
  with reason ``delivery_limit``.  reject-publish starts refusing once the queue is
  over its limit (a soft limit: one more message fits), and reject-publish-dlx acts
  as drop-head.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..store.base import MessageRecord
from . import queue as _queue
from .deadletter import DELIVERY_LIMIT, EXPIRED, MAXLEN, REJECTED, dead_letter
from .message import Message, QueuedMessage
from .queue import REFUSED, Queue, QueueHost, Refused
from .queue_arguments import DROP_HEAD, REJECT_PUBLISH_DLX, QueueOptions
from .ready import PriorityReady, Ready, reinsert
from .rule_messages import FeatureMessage, featured, message_ttl, with_delivery_count

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .ports import Consumer
    from .timers import TimerHandle


def enable_rules(queue: Queue, options: QueueOptions) -> None:
    """Give ``queue`` the rules ``options`` ask for: at creation, or in place (a plain
    queue that gets its first message with its own TTL; a paged queue keeps its tail
    on disk, and its transient tail messages are converted as they reach the head)."""
    assert queue.rules is None
    host = queue.host
    assert host is not None, "make_queue gives every queue its vhost"
    rules = FeatureRules(queue, host, options, host.timers.clock())
    maximum = options.max_priority
    ready: Ready = deque() if maximum is None else PriorityReady(maximum)
    for qm in queue.ready:
        ready.append(featured(qm))
        rules.ready_bytes += len(qm.message.body)
    queue.ready = ready
    if queue.consumers and options.single_active:
        rules.active = queue.consumers[0]
    queue.rules = rules
    queue.parts_changed()
    rules.touch()


class FeatureRules:
    """A queue's rules part (queue.RulesPart): its options and their bookkeeping,
    and the queue operations they change."""

    __slots__ = (
        "active",
        "draining",
        "expires_handle",
        "host",
        "last_used",
        "options",
        "queue",
        "ready_bytes",
        "returns_ahead",
        "timed",
        "ttl_deadline",
        "ttl_handle",
    )

    def __init__(self, queue: Queue, host: QueueHost, options: QueueOptions, now: float) -> None:
        self.queue = queue
        self.host = host
        self.options = options
        self.ready_bytes = 0  # body bytes of the in-memory head
        # Returned messages at the head of the ready list, served before the rest
        # (QueueOptions.returns_first).
        self.returns_ahead = 0
        # Whether any message here may carry a deadline (queue TTL, or one seen).
        self.timed = options.message_ttl is not None
        self.ttl_handle: TimerHandle | None = None
        self.ttl_deadline: float | None = None
        self.expires_handle: TimerHandle | None = None
        self.last_used = now
        # Single active consumer: the active one, and whether it was cancelled and
        # still holds unacked messages (the next one waits for those).
        self.active: Consumer | None = None
        self.draining = False

    # ------------------------------------------------------------ publishing

    def publish(self, message: Message) -> bool | Refused:
        options = self.options
        clock = self.host.timers.clock
        ttl = options.message_ttl
        own_ttl = message_ttl(message)
        if own_ttl is not None:
            ttl = own_ttl if ttl is None else min(ttl, own_ttl)
            self.timed = True
        now = clock() if ttl is not None else 0.0
        if options.limited and options.overflow != DROP_HEAD and self._would_overflow(message):
            if options.overflow == REJECT_PUBLISH_DLX:
                self._dead_letter(message, MAXLEN)
            return REFUSED
        queue = self.queue
        seq = queue.next_seq
        queue.next_seq = seq + 1
        qm = FeatureMessage(seq, message, expires=now + ttl / 1000 if ttl is not None else None)
        stored = self._persist(qm)
        if self._admit(qm):
            return stored
        if options.limited and options.overflow == DROP_HEAD:
            self._drop_over_limit()
        if self.timed:
            self._expire(clock())
        return stored

    def _admit(self, qm: FeatureMessage) -> bool:
        """A new message: straight to a consumer with room (True), or queued: to the
        tail of a paged queue, else to the head."""
        queue = self.queue
        if queue.tail is not None:
            assert queue.paging is not None
            queue.paging.to_tail(queue, qm)
            return False
        if not queue.ready and queue.consumers:
            consumer = self.next_consumer()
            if consumer is not None:
                consumer.deliver(queue, qm)
                return True
        if (
            queue.paging is not None
            and len(queue.ready) >= _queue.PAGE_OUT_AT
            and not isinstance(queue.ready, PriorityReady)
        ):
            queue.page_out()  # the tail goes to disk from now on (paging.py)
            return self._admit(qm)
        self._push(qm)
        return False

    def _append(self, qm: FeatureMessage) -> None:
        """A returned message (quorum) joins the back of the queue."""
        queue = self.queue
        if queue.tail is not None:
            assert queue.paging is not None
            queue.paging.to_tail(queue, qm)
        else:
            self._push(qm)

    def _would_overflow(self, message: Message) -> bool:
        options = self.options
        queue = self.queue
        count = queue.message_count
        size = self.ready_bytes + (queue.tail.bytes if queue.tail is not None else 0)
        if options.quorum:
            # rabbit_fifo refuses once the queue is already over its limit.
            return (options.max_length is not None and count > options.max_length) or (
                options.max_length_bytes is not None and size > options.max_length_bytes
            )
        return (options.max_length is not None and count + 1 > options.max_length) or (
            options.max_length_bytes is not None
            and size + len(message.body) > options.max_length_bytes
        )

    def _persist(self, qm: FeatureMessage) -> bool:
        queue = self.queue
        store = queue.store
        message = qm.published
        if store is None or not (message.persistent or self.options.quorum):
            return False
        store.enqueue(
            queue.store_id,
            MessageRecord(
                qm.seq,
                message.exchange,
                message.routing_key,
                message.header,
                message.body,
                qm.redelivered,
                round(qm.expires * 1000) if qm.expires is not None else 0,
                qm.deliveries,
            ),
        )
        qm.persisted = True
        return True

    def restore(self, rec: MessageRecord, message: Message, redelivered: bool) -> None:
        qm = FeatureMessage(
            rec.seq,
            message,
            redelivered,
            True,
            expires=rec.expires / 1000 if rec.expires else None,
            deliveries=rec.deliveries,
        )
        if rec.expires:
            self.timed = True
        if rec.deliveries and self.options.quorum:
            qm.original = message
            qm.message = with_delivery_count(message, rec.deliveries)
        self._push(qm)
        self._arm_ttl()

    # ------------------------------------------------------------ ready list

    def _push(self, qm: FeatureMessage) -> None:
        self.queue.ready.append(qm)
        self.ready_bytes += len(qm.message.body)

    def _pop(self) -> FeatureMessage:
        qm = self.queue.ready.popleft()
        self.ready_bytes -= len(qm.message.body)
        if self.returns_ahead:
            self.returns_ahead -= 1
        return qm  # type: ignore[return-value]

    def take_moved(self, moved: Iterable[QueuedMessage]) -> None:
        # Published before the queue gained rules (per-message TTL): converted as
        # they reach the head.
        for qm in moved:
            self._push(featured(qm))

    def _keep_head_filled(self) -> None:
        queue = self.queue
        if queue.tail is not None:
            assert queue.paging is not None
            queue.paging.keep_head_filled(queue)

    def _drop_over_limit(self) -> None:
        self._drop_head_over_limit()
        self._keep_head_filled()

    def _drop_head_over_limit(self) -> None:
        options = self.options
        max_length, max_bytes = options.max_length, options.max_length_bytes
        queue = self.queue
        ready = queue.ready
        while (max_length is not None and queue.message_count > max_length) or (
            max_bytes is not None
            and self.ready_bytes + (queue.tail.bytes if queue.tail is not None else 0) > max_bytes
        ):
            if not ready:
                # A paged queue reads its next messages in (which may itself drop
                # some: look again before dropping another).
                if queue.tail is None or not self._fill_head_now():
                    break
                continue
            self._discard(self._pop(), MAXLEN)

    def _fill_head_now(self) -> bool:
        queue = self.queue
        assert queue.paging is not None
        return queue.paging.fill_head_now(queue)

    def after_page_in(self) -> None:
        # A drop-head limit that found the head empty and the next rows not yet
        # committed (fill_head_now) drops the oldest ones now.
        options = self.options
        if options.limited and options.overflow == DROP_HEAD:
            self._drop_head_over_limit()

    def _discard(self, qm: FeatureMessage, reason: str) -> None:
        """A message leaves the queue for good: forget it, dead-letter it."""
        if qm.persisted:
            self.queue.settled(qm)
        self._dead_letter(qm.published, reason)

    def _dead_letter(self, message: Message, reason: str) -> None:
        exchange = self.options.dead_letter_exchange
        if exchange is None or self.queue.deleted:
            return
        dead_letter(
            self.host,
            exchange,
            self.options.dead_letter_routing_key,
            self.queue.name,
            message,
            reason,
            self.host.timers.clock(),
        )

    # ------------------------------------------------------------------- TTL

    def _drop_expired(self, now: float) -> None:
        ready = self.queue.ready
        while ready:
            expires = ready[0].expires  # type: ignore[attr-defined]
            if expires is None or expires > now:
                return
            self._discard(self._pop(), EXPIRED)

    def _arm_ttl(self) -> None:
        """Keep one timer, at the head's deadline (RabbitMQ's head-only expiry)."""
        ready = self.queue.ready
        deadline = ready[0].expires if ready else None  # type: ignore[attr-defined]
        if deadline == self.ttl_deadline:
            return
        if self.ttl_handle is not None:
            self.ttl_handle.cancel()
            self.ttl_handle = None
        self.ttl_deadline = deadline
        if deadline is not None:
            self.ttl_handle = self.host.timers.call_at(deadline, self._ttl_due)

    def _expire(self, now: float) -> None:
        self._drop_expired(now)
        self._arm_ttl()
        # Expired messages leave from the head; the ones behind it on disk must be
        # read in to expire too, consumers or not (RabbitMQ drops them as well).
        self._keep_head_filled()

    def _ttl_due(self) -> None:
        self.ttl_handle = None
        self.ttl_deadline = None
        if not self.queue.deleted:
            self._expire(self.host.timers.clock())

    # -------------------------------------------------------------- x-expires

    def touch(self) -> None:
        expires = self.options.expires
        if expires is None:
            return
        self.last_used = now = self.host.timers.clock()
        if self.expires_handle is None and not self.queue.consumers:
            self.expires_handle = self.host.timers.call_at(now + expires / 1000, self._unused)

    def _unused(self) -> None:
        self.expires_handle = None
        expires = self.options.expires
        queue = self.queue
        if queue.deleted or queue.consumers or expires is None:
            return  # the last consumer to leave arms it again
        deadline = self.last_used + expires / 1000
        if self.host.timers.clock() < deadline:
            self.expires_handle = self.host.timers.call_at(deadline, self._unused)
            return
        self.host.remove_queue(queue)

    # --------------------------------------------------------------- delivery

    def next_consumer(self) -> Consumer | None:
        if self.options.single_active:
            active = self.active
            if self.draining:
                assert active is not None
                if active.unacked:
                    return None
                consumers = self.queue.consumers
                active = self.active = consumers[0] if consumers else None
                self.draining = False
            return active if active is not None and active.can_take() else None
        return self.queue._round_robin()

    def deliver_ready(self) -> None:
        queue = self.queue
        ready = queue.ready
        if not ready or not queue.consumers:
            if self.draining and not queue.consumers:
                self.next_consumer()  # the cancelled active consumer is done
            return
        timed = self.timed
        now = self.host.timers.clock() if timed else 0.0
        while ready and queue.consumers:
            if timed:
                self._drop_expired(now)
                if not ready:
                    break
            consumer = self.next_consumer()
            if consumer is None:
                break
            consumer.deliver(queue, self._pop())
        if timed:
            self._arm_ttl()

    def get(self) -> QueuedMessage | None:
        self.touch()
        timed = self.timed
        now = self.host.timers.clock() if timed else 0.0
        if timed:
            self._drop_expired(now)
        if not self.queue.ready:
            if timed:
                self._arm_ttl()
            return None
        qm = self._pop()
        if self.options.quorum and (qm.deliveries or self.options.zero_delivery_count):
            # basic.get shows the delivery count (3.10: 0 the first time too).
            qm.original = qm.published
            qm.message = with_delivery_count(qm.original, qm.deliveries)
        if timed:
            self._expire(now)  # so get-ok's message count leaves expired ones out
        return qm

    def requeue(self, messages: Iterable[QueuedMessage]) -> None:
        if self.options.quorum:
            self._return(messages)
        else:
            ready = self.queue.ready
            for qm in sorted(messages, key=_seq, reverse=True):
                fm = featured(qm)
                fm.redelivered = True
                reinsert(ready, fm)
                self.ready_bytes += len(fm.message.body)
        self._after_requeue()

    def _return(self, messages: Iterable[QueuedMessage]) -> None:
        """Quorum: returned messages go to the back (3.10) or before the rest (4.x),
        counted, up to the limit."""
        limit = self.options.delivery_limit
        queue = self.queue
        store = queue.store
        for qm in messages:
            fm = featured(qm)
            fm.deliveries += 1
            if limit is not None and fm.deliveries > limit:
                self._discard(fm, DELIVERY_LIMIT)
                continue
            if fm.persisted and store is not None:
                store.remove(queue.store_id, fm.seq)
            fm.seq = queue.next_seq
            queue.next_seq += 1
            fm.redelivered = True
            fm.original = fm.published
            fm.message = with_delivery_count(fm.original, fm.deliveries)
            if fm.persisted:
                self._persist(fm)
            if self.options.returns_first:
                # After the messages returned before it, ahead of everything else.
                queue.ready.insert(self.returns_ahead, fm)  # type: ignore[union-attr]
                self.returns_ahead += 1
                self.ready_bytes += len(fm.message.body)
            else:
                self._append(fm)

    def _after_requeue(self) -> None:
        options = self.options
        if options.limited and options.overflow == DROP_HEAD:
            self._drop_over_limit()
        if self.timed:
            self._expire(self.host.timers.clock())
        self.queue.dispatch()

    def rejected(self, qm: QueuedMessage) -> None:
        fm = featured(qm)
        if fm.persisted:
            self.queue.settled(fm)
        self._dead_letter(fm.published, REJECTED)

    def purged(self) -> None:
        self.ready_bytes = 0
        self.returns_ahead = 0
        self._arm_ttl()

    # ------------------------------------------------------------ consumers

    def consumer_added(self, consumer: Consumer) -> None:
        if self.options.single_active and self.active is None:
            self.active = consumer
        self.touch()

    def consumer_removed(self, consumer: Consumer) -> None:
        if self.active is consumer:
            # The next one takes over once this one has settled what it holds
            # (RabbitMQ 3.10): a closing channel's messages are requeued first.
            self.draining = True
            if not consumer.unacked:
                self.queue.dispatch()
        if not self.queue.consumers:
            self.touch()


def _seq(qm: QueuedMessage) -> int:
    return qm.seq
