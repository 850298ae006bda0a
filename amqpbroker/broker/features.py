"""Queues with RabbitMQ's extensions: TTLs, x-expires, length limits, dead lettering,
priorities, single active consumer, and quorum-style delivery limits.

A queue declared without such arguments stays a plain :class:`Queue`, whose publish
and delivery paths know nothing of any of this.  The vhost decides once, when the
queue is created (``queue_arguments.options_from``), and makes it a
:class:`FeatureQueue`, which overrides the queue's operations and keeps its state in
``queue.ext`` (a :class:`FeatureState`).  Both classes have the same slots, so a
plain queue becomes a FeatureQueue in place (:func:`enable_features`) the first time
a message with an ``expiration`` property reaches it: per-message TTL needs no
declare argument.

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

from typing import TYPE_CHECKING, Any

from ..protocol import properties as props
from ..store.base import MessageRecord
from . import queue as _queue
from .deadletter import DELIVERY_LIMIT, EXPIRED, MAXLEN, REJECTED, dead_letter
from .message import Message, QueuedMessage
from .queue import Queue
from .queue_arguments import DROP_HEAD, REJECT_PUBLISH_DLX, QueueOptions
from .ready import FifoReady, PriorityReady

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .consumer import Consumer
    from .timers import TimerHandle
    from .vhost import VirtualHost

# High byte of the property flags (offset 12 of the header).
_EXPIRATION_FLAG = props.FLAGS["expiration"] >> 8


class _Refused:
    """What :meth:`FeatureQueue.publish` returns when its length limit refused the
    message (reject-publish): the publisher gets basic.nack."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED = _Refused()


def message_ttl(message: Message) -> int | None:
    """The ``expiration`` property in ms (validated at publish), or None."""
    header = message.header
    if len(header) <= 13 or not header[12] & _EXPIRATION_FLAG:
        return None
    text = message.properties.expiration
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return None if value is None or value < 0 else value


def with_delivery_count(message: Message, count: int) -> Message:
    """The message as a quorum queue delivers it: headers sorted by key, as RabbitMQ
    writes them, with ``x-delivery-count`` (a long) set to ``count``."""
    properties = props.decode_properties(message.header)
    headers = dict(properties.headers or {})
    headers["x-delivery-count"] = count
    properties.headers = dict(sorted(headers.items(), key=lambda item: item[0].encode()))
    header = props.encode_header_payload(properties, len(message.body))
    return Message(message.exchange, message.routing_key, header, message.body)


class FeatureMessage(QueuedMessage):
    """A queued message with what the queue features track for it."""

    __slots__ = ("deliveries", "expires", "original")

    def __init__(
        self,
        seq: int,
        message: Message,
        redelivered: bool = False,
        persisted: bool = False,
        expires: float | None = None,
        deliveries: int = 0,
    ) -> None:
        super().__init__(seq, message, redelivered, persisted)
        self.expires = expires  # the broker clock's time it expires at; None: never
        self.deliveries = deliveries  # quorum: times returned
        # Quorum: the message as published, when ``message`` carries x-delivery-count.
        self.original: Message | None = None

    @property
    def published(self) -> Message:
        return self.original or self.message


def featured(qm: QueuedMessage) -> FeatureMessage:
    if isinstance(qm, FeatureMessage):
        return qm
    return FeatureMessage(qm.seq, qm.message, qm.redelivered, qm.persisted)


class FeatureState:
    """A FeatureQueue's options and bookkeeping (``queue.ext``)."""

    __slots__ = (
        "active",
        "draining",
        "expires_handle",
        "host",
        "last_used",
        "options",
        "ready_bytes",
        "timed",
        "ttl_deadline",
        "ttl_handle",
    )

    def __init__(self, host: VirtualHost, options: QueueOptions, now: float) -> None:
        self.host = host
        self.options = options
        self.ready_bytes = 0
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


def enable_features(queue: Queue, host: VirtualHost, options: QueueOptions) -> None:
    """Make ``queue`` a FeatureQueue with ``options`` (at creation, or in place; a
    paged queue keeps its tail on disk and becomes a PagedFeatureQueue)."""
    from .paging import PagedFeatureQueue, PagedQueue

    queue.__class__ = PagedFeatureQueue if type(queue) is PagedQueue else FeatureQueue
    state = FeatureState(host, options, host.timers.clock())
    queue.ext = state
    maximum = options.max_priority
    ready = FifoReady() if maximum is None else PriorityReady(maximum)
    for qm in queue.ready:
        ready.append(featured(qm))
        state.ready_bytes += len(qm.message.body)
    queue.ready = ready  # type: ignore[assignment]
    if queue.consumers and options.single_active:
        state.active = queue.consumers[0]
    assert isinstance(queue, FeatureQueue)
    queue.touch()


def make_queue(host: VirtualHost, name: str, options: QueueOptions, **kwargs: Any) -> Queue:
    queue = Queue(host.name, name, **kwargs)
    queue.host = host
    if options.needs_features:
        enable_features(queue, host, options)
    return queue


class FeatureQueue(Queue):
    __slots__ = ()  # same layout as Queue: a queue can switch class in place
    ext: FeatureState
    ready: FifoReady | PriorityReady  # type: ignore[assignment]

    # ------------------------------------------------------------ publishing

    def publish(self, message: Message) -> bool | _Refused:  # type: ignore[override]
        state = self.ext
        options = state.options
        clock = state.host.timers.clock
        ttl = options.message_ttl
        own_ttl = message_ttl(message)
        if own_ttl is not None:
            ttl = own_ttl if ttl is None else min(ttl, own_ttl)
            state.timed = True
        now = clock() if ttl is not None else 0.0
        if options.limited and options.overflow != DROP_HEAD and self._would_overflow(message):
            if options.overflow == REJECT_PUBLISH_DLX:
                self._dead_letter(message, MAXLEN)
            return REFUSED
        seq = self.next_seq
        self.next_seq = seq + 1
        qm = FeatureMessage(seq, message, expires=now + ttl / 1000 if ttl is not None else None)
        stored = self._persist(qm)
        if self._admit(qm):
            return stored
        if options.limited and options.overflow == DROP_HEAD:
            self._drop_over_limit()
        if state.timed:
            self._expire(clock())
        return stored

    def _admit(self, qm: FeatureMessage) -> bool:
        """A new message: straight to a consumer with room (True), or queued."""
        if not self.ready and self.consumers:
            consumer = self._next_consumer()
            if consumer is not None:
                consumer.deliver(self, qm)
                return True
        if (
            self.pager is not None
            and len(self.ready) >= _queue.PAGE_OUT_AT
            and isinstance(self.ready, FifoReady)
        ):
            from .paging import start_paging

            start_paging(self)  # the tail goes to disk from now on (paging.py)
            return self._admit(qm)
        self._push(qm)
        return False

    def _append(self, qm: FeatureMessage) -> None:
        """A returned message (quorum) joins the back of the queue."""
        self._push(qm)

    def tail_bytes(self) -> int:
        """Body bytes of the messages behind the in-memory ready list (paging.py)."""
        return 0

    def _fill_head_now(self) -> bool:
        """Bring the next messages into the ready list; False when there are none
        (all of a queue that is not paged is in memory)."""
        return False

    def _would_overflow(self, message: Message) -> bool:
        options = self.ext.options
        count, size = self.message_count, self.ext.ready_bytes + self.tail_bytes()
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
        store = self.store
        message = qm.published
        if store is None or not (message.persistent or self.ext.options.quorum):
            return False
        store.enqueue(
            self.store_id,
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
            self.ext.timed = True
        if rec.deliveries and self.ext.options.quorum:
            qm.original = message
            qm.message = with_delivery_count(message, rec.deliveries)
        self._push(qm)
        self._arm_ttl()

    # ------------------------------------------------------------ ready list

    def _push(self, qm: FeatureMessage) -> None:
        self.ready.append(qm)
        self.ext.ready_bytes += len(qm.message.body)

    def _pop(self) -> FeatureMessage:
        qm = self.ready.popleft()
        self.ext.ready_bytes -= len(qm.message.body)
        return qm  # type: ignore[return-value]

    def _drop_over_limit(self) -> None:
        options = self.ext.options
        max_length, max_bytes = options.max_length, options.max_length_bytes
        ready = self.ready
        while (max_length is not None and self.message_count > max_length) or (
            max_bytes is not None and self.ext.ready_bytes + self.tail_bytes() > max_bytes
        ):
            if not ready:
                # A paged queue reads its next messages in (which may itself drop
                # some: look again before dropping another).
                if not self._fill_head_now():
                    break
                continue
            self._discard(self._pop(), MAXLEN)

    def _discard(self, qm: FeatureMessage, reason: str) -> None:
        """A message leaves the queue for good: forget it, dead-letter it."""
        if qm.persisted:
            self.settled(qm)
        self._dead_letter(qm.published, reason)

    def _dead_letter(self, message: Message, reason: str) -> None:
        state = self.ext
        exchange = state.options.dead_letter_exchange
        if exchange is None or self.deleted:
            return
        dead_letter(
            state.host,
            exchange,
            state.options.dead_letter_routing_key,
            self.name,
            message,
            reason,
            state.host.timers.clock(),
        )

    # ------------------------------------------------------------------- TTL

    def _drop_expired(self, now: float) -> None:
        ready = self.ready
        while ready:
            expires = ready[0].expires  # type: ignore[attr-defined]
            if expires is None or expires > now:
                return
            self._discard(self._pop(), EXPIRED)

    def _arm_ttl(self) -> None:
        """Keep one timer, at the head's deadline (RabbitMQ's head-only expiry)."""
        state = self.ext
        ready = self.ready
        deadline = ready[0].expires if ready else None  # type: ignore[attr-defined]
        if deadline == state.ttl_deadline:
            return
        if state.ttl_handle is not None:
            state.ttl_handle.cancel()
            state.ttl_handle = None
        state.ttl_deadline = deadline
        if deadline is not None:
            state.ttl_handle = state.host.timers.call_at(deadline, self._ttl_due)

    def _expire(self, now: float) -> None:
        self._drop_expired(now)
        self._arm_ttl()

    def _ttl_due(self) -> None:
        state = self.ext
        state.ttl_handle = None
        state.ttl_deadline = None
        if not self.deleted:
            self._expire(state.host.timers.clock())

    # -------------------------------------------------------------- x-expires

    def touch(self) -> None:
        state = self.ext
        expires = state.options.expires
        if expires is None:
            return
        state.last_used = now = state.host.timers.clock()
        if state.expires_handle is None and not self.consumers:
            state.expires_handle = state.host.timers.call_at(now + expires / 1000, self._unused)

    def _unused(self) -> None:
        state = self.ext
        state.expires_handle = None
        expires = state.options.expires
        if self.deleted or self.consumers or expires is None:
            return  # the last consumer to leave arms it again
        deadline = state.last_used + expires / 1000
        if state.host.timers.clock() < deadline:
            state.expires_handle = state.host.timers.call_at(deadline, self._unused)
            return
        state.host.remove_queue(self)

    # --------------------------------------------------------------- delivery

    def _next_consumer(self) -> Consumer | None:
        state = self.ext
        if state.options.single_active:
            active = state.active
            if state.draining:
                assert active is not None
                if active.unacked:
                    return None
                active = state.active = self.consumers[0] if self.consumers else None
                state.draining = False
            return active if active is not None and active.can_take() else None
        return super()._next_consumer()

    def dispatch(self) -> None:
        ready = self.ready
        if not ready or not self.consumers:
            if self.ext.draining and not self.consumers:
                self._next_consumer()  # the cancelled active consumer is done
            return
        timed = self.ext.timed
        now = self.ext.host.timers.clock() if timed else 0.0
        while ready and self.consumers:
            if timed:
                self._drop_expired(now)
                if not ready:
                    break
            consumer = self._next_consumer()
            if consumer is None:
                break
            consumer.deliver(self, self._pop())
        if timed:
            self._arm_ttl()

    def get(self) -> QueuedMessage | None:
        state = self.ext
        self.touch()
        timed = state.timed
        now = state.host.timers.clock() if timed else 0.0
        if timed:
            self._drop_expired(now)
        if not self.ready:
            if timed:
                self._arm_ttl()
            return None
        qm = self._pop()
        if state.options.quorum:
            # basic.get always shows the delivery count (0 the first time).
            qm.original = qm.published
            qm.message = with_delivery_count(qm.original, qm.deliveries)
        if timed:
            self._expire(now)  # so get-ok's message count leaves expired ones out
        return qm

    def requeue(self, messages: Iterable[QueuedMessage]) -> None:
        if self.deleted:
            return
        if self.ext.options.quorum:
            self._return(messages)
        else:
            ready = self.ready
            for qm in sorted(messages, key=_seq, reverse=True):
                fm = featured(qm)
                fm.redelivered = True
                ready.reinsert(fm)
                self.ext.ready_bytes += len(fm.message.body)
        self._after_requeue()

    def _return(self, messages: Iterable[QueuedMessage]) -> None:
        """Quorum: returned messages go to the back, counted, up to the limit."""
        limit = self.ext.options.delivery_limit
        store = self.store
        for qm in messages:
            fm = featured(qm)
            fm.deliveries += 1
            if limit is not None and fm.deliveries > limit:
                self._discard(fm, DELIVERY_LIMIT)
                continue
            if fm.persisted and store is not None:
                store.remove(self.store_id, fm.seq)
            fm.seq = self.next_seq
            self.next_seq += 1
            fm.redelivered = True
            fm.original = fm.published
            fm.message = with_delivery_count(fm.original, fm.deliveries)
            if fm.persisted:
                self._persist(fm)
            self._append(fm)

    def _after_requeue(self) -> None:
        options = self.ext.options
        if options.limited and options.overflow == DROP_HEAD:
            self._drop_over_limit()
        if self.ext.timed:
            self._expire(self.ext.host.timers.clock())
        self.dispatch()

    def rejected(self, qm: QueuedMessage) -> None:
        fm = featured(qm)
        if fm.persisted:
            self.settled(fm)
        self._dead_letter(fm.published, REJECTED)

    def purge(self) -> int:
        count = super().purge()
        self.ext.ready_bytes = 0
        self._arm_ttl()
        return count

    # ------------------------------------------------------------ consumers

    def add_consumer(self, consumer: Consumer) -> None:
        state = self.ext
        if state.options.single_active and state.active is None:
            state.active = consumer
        self.touch()
        super().add_consumer(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        super().remove_consumer(consumer)
        state = self.ext
        if state.active is consumer:
            # The next one takes over once this one has settled what it holds
            # (RabbitMQ 3.10): a closing channel's messages are requeued first.
            state.draining = True
            if not consumer.unacked:
                self.dispatch()
        if not self.consumers:
            self.touch()


def _seq(qm: QueuedMessage) -> int:
    return qm.seq
