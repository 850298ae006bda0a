"""A queue: ready messages in order, the consumers that drain it, and its counts.

One class for every classic and quorum queue.  What varies is held in two parts,
chosen when the queue is declared (queue_kinds.make_queue) and changed only by
explicit calls:

* where the ready messages live: ``ready``, the in-memory head (ready.py), and
  ``tail``: None while they are all in memory, a :class:`~.ready.Tail` once a
  durable queue has paged its tail out to the store (``page_out``; its ``paging``
  part, paging.py, moves messages back as the head drains and drops the tail when
  it is gone);
* which rules apply: ``rules`` is None for a plain queue, or a :class:`RulesPart`
  (features.py: TTLs, x-expires, length limits, dead lettering, priorities, single
  active consumer, quorum delivery) given at declare or gained later
  (features.enable_rules, when a message with its own TTL arrives).

``plain`` (no rules, not paged) is the one attribute the hot path tests: a plain
queue publishes, delivers and dispatches in a few lines below; anything else goes
through the general path, which asks the parts.  tests/unit/test_queue_paths.py
checks that both give what a client sees the same way.

Delivery is synchronous and push-based: a publish that finds the queue empty and a
consumer with room hands the message straight to that consumer's channel, which
encodes the deliver frames into its connection's output buffer.  No task and no
channel hop per message (PERFORMANCE-NOTES: each costs ~10-20 us).

Ordering (RABBITMQ.md): messages keep publish order; a requeued message goes back
to its original position, found by its sequence number.

What the rest of the broker uses of a queue, and so what another kind of queue (a
stream: an append-only log read from offsets, nothing removed) implements to sit
behind the same vhost, channel and consumer code: its identity (``name``, ``vhost``,
``durable``, ``exclusive_owner``, ``auto_delete``, ``arguments``, ``bound_from``,
``deleted``, ``store``), ``touch``, ``message_count``, ``consumer_count``;
``publish`` (truthy when the confirm must wait: True stored, ``REFUSED`` nack);
``add_consumer``, ``remove_consumer``, ``consumers``, ``get``, ``dispatch``,
``ready`` (truthy while messages wait); per delivery ``unacked`` (moved by the
channel), ``settled``, ``rejected``, ``requeue``; for the store and the pager
``next_seq``, ``restore``, ``page_in_plan``, ``paged_in``, ``page_in_now``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ..store.base import MessageRecord, Store
from .message import Message, QueuedMessage
from .ready import Ready, Tail, reinsert

if TYPE_CHECKING:
    from ..versions import Behaviour
    from .ports import Consumer
    from .queue_arguments import QueueOptions
    from .timers import Timers

# Ready messages a durable queue keeps in memory before its tail goes to disk
# (paging.py): ~15 MB of 1 KiB messages.
PAGE_OUT_AT = 10_000


class Refused:
    """What :meth:`Queue.publish` returns when a length limit refused the message
    (reject-publish): the publisher gets basic.nack."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED = Refused()


class QueueHost(Protocol):
    """What a queue and its rules need of the virtual host that holds it
    (vhost.VirtualHost): its name and timers, routing for dead letters, and removal
    (x-expires).  Typed here so that nothing below the vhost imports it."""

    name: str
    timers: Timers
    exchanges: dict[str, Any]
    # The RabbitMQ release's rules (versions.py): dead-letter headers follow them.
    behaviour: Behaviour

    def route(self, exchange: Any, routing_key: str, message: Message) -> Collection[Queue]:
        """The queues ``message`` reaches through ``exchange`` by ``routing_key``."""

    def remove_queue(self, queue: Queue) -> None:
        """Delete ``queue`` (its bindings, its consumers are told)."""


class RulesPart(Protocol):
    """The rules a queue applies beyond plain FIFO delivery (features.FeatureRules).

    The queue hands an operation to its rules whole: the rules read and change the
    queue's ready list, counters and tail (through the queue's paging part) as the
    plain code would, and call ``queue.dispatch()`` when messages may go out."""

    options: QueueOptions

    def publish(self, message: Message) -> bool | Refused:
        """Enqueue or deliver a new message: True when it went to the store."""

    def deliver_ready(self) -> None:
        """Deliver from the in-memory head while the rules and consumers allow."""

    def get(self) -> QueuedMessage | None:
        """basic.get from the in-memory head."""

    def requeue(self, messages: Iterable[QueuedMessage]) -> None:
        """Delivered messages come back (the queue is not deleted)."""

    def rejected(self, qm: QueuedMessage) -> None:
        """Rejected without requeue: settle it, dead-letter it."""

    def purged(self) -> None:
        """The in-memory head was just emptied."""

    def restore(self, rec: MessageRecord, message: Message, redelivered: bool) -> None:
        """A stored message joins the end of the head (recovery, page-in)."""

    def take_moved(self, moved: Iterable[QueuedMessage]) -> None:
        """Transient tail messages join the end of the head (paging)."""

    def after_page_in(self) -> None:
        """Messages were read in from the store: enforce what waited for them."""

    def touch(self) -> None:
        """The queue was used (declare, basic.get, consume): x-expires restarts."""

    def next_consumer(self) -> Consumer | None:
        """The consumer the next message goes to, or None."""

    def consumer_added(self, consumer: Consumer) -> None:
        """Before ``consumer`` joins the queue's list."""

    def consumer_removed(self, consumer: Consumer) -> None:
        """After ``consumer`` left the queue's list."""


class PagingPart(Protocol):
    """How a durable queue's tail goes to disk and comes back (paging.Paging)."""

    def page_out(self, queue: Queue) -> None:
        """The head is full: from now on new messages join ``queue.tail``."""

    def publish(self, queue: Queue, message: Message) -> bool:
        """A paged queue without rules: the message joins the tail."""

    def to_tail(self, queue: Queue, qm: QueuedMessage) -> None:
        """A queued message joins the end of the tail."""

    def get(self, queue: Queue) -> QueuedMessage | None:
        """basic.get reads through to the tail."""

    def keep_head_filled(self, queue: Queue) -> None:
        """The head drained a little: read the next messages in when it runs low."""

    def fill_head_now(self, queue: Queue) -> bool:
        """Bring the next messages to an empty head; False when none could be."""

    def purge_tail(self, queue: Queue) -> None:
        """Drop the tail (before the head is purged)."""

    def page_in_plan(self, queue: Queue) -> tuple[int, int, int] | None:
        """What the pager reads next: (after_seq, limit, generation), or None."""

    def paged_in(
        self, queue: Queue, records: list[MessageRecord], after: int, generation: int
    ) -> bool:
        """Apply a read made from a plan; False when the rest is not committed yet."""

    def unpage(self, queue: Queue) -> None:
        """Drop the tail if it is empty and the head below the window."""


class Queue:
    __slots__ = (
        "arguments",
        "auto_delete",
        "bound_from",
        "consumers",
        "deleted",
        "durable",
        "exclusive_owner",
        "had_consumer",
        "host",
        "name",
        "next_seq",
        "paging",
        "plain",
        "ready",
        "rules",
        "store",
        "store_id",
        "tail",
        "unacked",
        "vhost",
    )

    def __init__(
        self,
        vhost: str,
        name: str,
        *,
        durable: bool = False,
        exclusive_owner: Any = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments or {}
        self.ready: Ready = deque()
        # Consumers ordered by priority (highest first), registration order within a
        # priority; round robin rotates a consumer to the end of its priority group.
        self.consumers: list[Consumer] = []
        self.next_seq = 1
        self.unacked = 0
        self.bound_from: set[Any] = set()  # exchanges holding a binding to this queue
        self.deleted = False
        self.had_consumer = False
        # Durable queues of a persistent broker: the store and this queue's id in it.
        # Persistent messages published here are written there (group-committed).
        self.store: Store | None = None
        self.store_id = 0
        # The virtual host holding it (make_queue sets it): rules dead-letter through
        # it and run their timers on it.
        self.host: QueueHost | None = None
        # The parts (module docstring); ``plain`` is what the hot path tests.
        self.paging: PagingPart | None = None  # durable queues of a persistent broker
        self.tail: Tail | None = None
        self.rules: RulesPart | None = None
        self.plain = True

    def __repr__(self) -> str:
        return f"<Queue {self.vhost!r}/{self.name!r} ready={len(self.ready)}>"

    def parts_changed(self) -> None:
        """Called by whatever sets ``rules`` or ``tail``."""
        self.plain = self.rules is None and self.tail is None

    def page_out(self) -> None:
        """From now on the tail of this queue goes to disk (it has a paging part)."""
        assert self.paging is not None
        self.paging.page_out(self)

    # --------------------------------------------------------------- counts

    @property
    def message_count(self) -> int:
        tail = self.tail
        return len(self.ready) if tail is None else len(self.ready) + tail.count

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    # -------------------------------------------------------------- publish

    def publish(self, message: Message) -> bool | Refused:
        """Enqueue (or deliver at once); True when the message went to the store,
        so its publisher confirm must wait for the next group commit; REFUSED when
        a length limit refused it."""
        if not self.plain:
            return self._publish_general(message)
        if self.paging is not None and len(self.ready) >= PAGE_OUT_AT:
            self.page_out()
            return self._publish_general(message)
        seq = self.next_seq
        self.next_seq = seq + 1
        stored = False
        store = self.store
        if store is not None and message.persistent:
            self.store_new(store, seq, message)
            stored = True
        if not self.ready and self.consumers:
            # Fast path: hand it straight to a consumer with room (a no-ack one
            # needs no QueuedMessage: nothing would keep it).
            consumer = self._round_robin()
            if consumer is not None:
                if consumer.no_ack and not stored:
                    consumer.channel.deliver(consumer, self, None, message)
                else:
                    consumer.channel.deliver(
                        consumer, self, QueuedMessage(seq, message, False, stored)
                    )
                return stored
        self.ready.append(QueuedMessage(seq, message, False, stored))
        return stored

    def _publish_general(self, message: Message) -> bool | Refused:
        if self.rules is not None:
            return self.rules.publish(message)
        assert self.paging is not None and self.tail is not None
        return self.paging.publish(self, message)

    def store_new(self, store: Store, seq: int, message: Message) -> None:
        """Write a newly published persistent message (group-committed later)."""
        store.enqueue(
            self.store_id,
            MessageRecord(
                seq, message.exchange, message.routing_key, message.header, message.body, False
            ),
        )

    def restore(self, rec: MessageRecord, message: Message, redelivered: bool) -> None:
        """Recovery and page-in: a stored message joins the end of the head."""
        if self.rules is not None:
            self.rules.restore(rec, message, redelivered)
        else:
            self.ready.append(QueuedMessage(rec.seq, message, redelivered, True))

    # ---------------------------------------------------------- store hooks

    def settled(self, qm: QueuedMessage) -> None:
        """A message is gone for good (acked, auto-acked, dropped)."""
        if qm.persisted and self.store is not None and not self.deleted:
            self.store.remove(self.store_id, qm.seq)

    def rejected(self, qm: QueuedMessage) -> None:
        """basic.reject / basic.nack with requeue=false (rules may dead-letter it)."""
        if self.rules is not None:
            self.rules.rejected(qm)
        elif qm.persisted:
            self.settled(qm)

    def touch(self) -> None:
        """The queue was declared again (x-expires counts that as a use)."""
        if self.rules is not None:
            self.rules.touch()

    # ------------------------------------------------------------- delivery

    def _round_robin(self) -> Consumer | None:
        """The first consumer with room, by priority; rotated behind its peers."""
        consumers = self.consumers
        if len(consumers) == 1:
            only = consumers[0]
            return only if only.can_take() else None
        for index, consumer in enumerate(consumers):
            if consumer.can_take():
                # Round robin within a priority level: move it behind its peers.
                end = index + 1
                priority = consumer.priority
                while end < len(consumers) and consumers[end].priority == priority:
                    end += 1
                if end - index > 1:
                    del consumers[index]
                    consumers.insert(end - 1, consumer)
                return consumer
        return None

    def next_consumer(self) -> Consumer | None:
        """The consumer the next message goes to (the rules may choose), or None."""
        if self.rules is not None:
            return self.rules.next_consumer()
        return self._round_robin()

    def dispatch(self) -> None:
        """Deliver ready messages while some consumer has room."""
        if self.plain:
            consumers = self.consumers
            if len(consumers) == 1:
                # Hot path (after each ack of a busy queue): one consumer, so
                # _round_robin is can_take, and the loop can hold on to both.
                ready = self.ready
                only = consumers[0]
                can_take = only.can_take
                deliver = only.channel.deliver
                while ready and can_take():
                    deliver(only, self, ready.popleft())
                return
            self._deliver_in_turn()
            return
        self.deliver_ready()
        if self.tail is not None:
            assert self.paging is not None
            self.paging.keep_head_filled(self)

    def deliver_ready(self) -> None:
        """The general dispatch, from the in-memory head only (paging calls it after
        a page-in)."""
        if self.rules is not None:
            self.rules.deliver_ready()
        else:
            self._deliver_in_turn()

    def _deliver_in_turn(self) -> None:
        ready = self.ready
        consumers = self.consumers
        while ready and consumers:
            consumer = self._round_robin()
            if consumer is None:
                return
            consumer.channel.deliver(consumer, self, ready.popleft())

    def get(self) -> QueuedMessage | None:
        """basic.get: the head of the queue, or None."""
        if self.tail is not None:
            assert self.paging is not None
            return self.paging.get(self)
        return self.take_head()

    def take_head(self) -> QueuedMessage | None:
        """basic.get from the in-memory head (what the rules allow)."""
        if self.rules is not None:
            return self.rules.get()
        return self.ready.popleft() if self.ready else None

    def requeue(self, messages: Iterable[QueuedMessage]) -> None:
        """Put delivered messages back at their original positions, redelivered."""
        if self.deleted:
            return
        if self.rules is not None:
            self.rules.requeue(messages)
            return
        ready = self.ready
        # Newest first, so each usually goes straight to the head (see ready.py).
        for qm in sorted(messages, key=_seq, reverse=True):
            qm.redelivered = True
            reinsert(ready, qm)
        self.dispatch()

    def purge(self) -> int:
        """Drop the ready messages, on disk too; unacked ones stay (and stay stored)."""
        count = self.message_count
        if self.tail is not None:
            assert self.paging is not None
            self.paging.purge_tail(self)
        if self.store is not None:
            for qm in self.ready:
                self.settled(qm)
        self.ready.clear()
        if self.rules is not None:
            self.rules.purged()
        if self.tail is not None:
            assert self.paging is not None
            self.paging.unpage(self)
        return count

    # ------------------------------------------------------------- page-in

    def page_in_plan(self) -> tuple[int, int, int] | None:
        """What the pager should read next for this queue, or None."""
        if self.tail is None or self.paging is None:
            return None
        return self.paging.page_in_plan(self)

    def paged_in(self, records: list[MessageRecord], after: int, generation: int) -> bool:
        """Apply a read made from :meth:`page_in_plan`; False when the rest is not
        committed yet (the pager retries after the next group commit)."""
        if self.tail is None or self.paging is None:
            return True
        return self.paging.paged_in(self, records, after, generation)

    def page_in_now(self) -> None:
        """Synchronous page-in (basic.get on an empty head, brokers without a pager)."""
        plan = self.page_in_plan()
        if plan is None or self.store is None:
            return
        after, limit, generation = plan
        self.paged_in(self.store.read_messages(self.store_id, after, limit), after, generation)

    # ------------------------------------------------------------ consumers

    def add_consumer(self, consumer: Consumer) -> None:
        if self.rules is not None:
            self.rules.consumer_added(consumer)
        consumers = self.consumers
        # Insert after every consumer of the same or higher priority.
        index = len(consumers)
        for i, other in enumerate(consumers):
            if other.priority < consumer.priority:
                index = i
                break
        consumers.insert(index, consumer)
        self.had_consumer = True
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        if self.rules is not None:
            self.rules.consumer_removed(consumer)


def _seq(qm: QueuedMessage) -> int:
    return qm.seq
