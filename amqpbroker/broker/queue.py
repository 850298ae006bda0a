"""A queue: ready messages in order, the consumers that drain it, and its counts.

Delivery is synchronous and push-based: a publish that finds the queue empty and a
consumer with room hands the message straight to that consumer's channel, which
encodes the deliver frames into its connection's output buffer.  No task and no
channel hop per message (PERFORMANCE-NOTES: each costs ~10-20 us).

Ordering (RABBITMQ.md): messages keep publish order; a requeued message goes back
to its original position, found by its sequence number.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..store.base import MessageRecord, Store
from .message import Message, QueuedMessage
from .ready import insert_by_seq

if TYPE_CHECKING:
    from .consumer import Consumer

# Ready messages a durable queue keeps in memory before its tail goes to disk
# (paging.py): ~15 MB of 1 KiB messages.
PAGE_OUT_AT = 10_000


class Queue:
    __slots__ = (
        "arguments",
        "auto_delete",
        "bound_from",
        "consumers",
        "deleted",
        "durable",
        "exclusive_owner",
        "ext",
        "had_consumer",
        "host",
        "name",
        "next_seq",
        "pager",
        "ready",
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
        self.ready: deque[QueuedMessage] = deque()
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
        # Durable queues page their tail out to the store past a length (paging.py):
        # ``pager`` asks the broker to read the next messages back in.
        self.pager: Callable[[Queue], None] | None = None
        self.tail: Any = None
        # The VirtualHost object (make_queue sets it): a paged queue that reads in a
        # message with a per-message TTL gains queue features, which need it.
        self.host: Any = None
        # Queues with TTLs, limits, dead lettering, priorities... are FeatureQueues
        # (features.py); their state lives here, so a plain queue can become one
        # (same slots) the first time a message with an expiration reaches it.
        self.ext: Any = None

    def __repr__(self) -> str:
        return f"<Queue {self.vhost!r}/{self.name!r} ready={len(self.ready)}>"

    # --------------------------------------------------------------- counts

    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    # -------------------------------------------------------------- publish

    def publish(self, message: Message) -> bool:
        """Enqueue (or deliver at once); True when the message went to the store,
        so its publisher confirm must wait for the next group commit."""
        if self.pager is not None and len(self.ready) >= PAGE_OUT_AT and type(self) is Queue:
            from .paging import start_paging

            start_paging(self)
            return self.publish(message)
        seq = self.next_seq
        self.next_seq = seq + 1
        stored = False
        store = self.store
        if store is not None and message.persistent:
            self._store(store, seq, message)
            stored = True
        if not self.ready and self.consumers:
            # Fast path: hand it straight to a consumer with room (a no-ack one
            # needs no QueuedMessage: nothing would keep it).
            consumer = self._next_consumer()
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

    def _store(self, store: Store, seq: int, message: Message) -> None:
        """Write a newly published persistent message (group-committed later)."""
        store.enqueue(
            self.store_id,
            MessageRecord(
                seq, message.exchange, message.routing_key, message.header, message.body, False
            ),
        )

    def restore(self, rec: MessageRecord, message: Message, redelivered: bool) -> None:
        """Recovery: a stored message goes back to the tail of the ready list."""
        self.ready.append(QueuedMessage(rec.seq, message, redelivered, True))

    # ---------------------------------------------------------- store hooks

    def settled(self, qm: QueuedMessage) -> None:
        """A message is gone for good (acked, auto-acked, dropped)."""
        if qm.persisted and self.store is not None and not self.deleted:
            self.store.remove(self.store_id, qm.seq)

    def rejected(self, qm: QueuedMessage) -> None:
        """basic.reject / basic.nack with requeue=false (feature queues dead-letter it)."""
        if qm.persisted:
            self.settled(qm)

    def touch(self) -> None:
        """The queue was declared again (x-expires counts that as a use)."""

    # ------------------------------------------------------------- delivery

    def _next_consumer(self) -> Consumer | None:
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

    def dispatch(self) -> None:
        """Deliver ready messages while some consumer has room."""
        ready = self.ready
        consumers = self.consumers
        if len(consumers) == 1 and type(self) is Queue:
            # Hot path (after each ack of a busy queue): one consumer, so
            # _next_consumer is can_take, and the loop can hold on to both.
            only = consumers[0]
            can_take = only.can_take
            deliver = only.channel.deliver
            while ready and can_take():
                deliver(only, self, ready.popleft())
            return
        while ready and consumers:
            consumer = self._next_consumer()
            if consumer is None:
                return
            consumer.channel.deliver(consumer, self, ready.popleft())

    def get(self) -> QueuedMessage | None:
        """basic.get: the head of the queue, or None."""
        return self.ready.popleft() if self.ready else None

    def requeue(self, messages: Iterable[QueuedMessage]) -> None:
        """Put delivered messages back at their original positions, redelivered."""
        if self.deleted:
            return
        ready = self.ready
        # Newest first, so each usually goes straight to the head (see ready.py).
        for qm in sorted(messages, key=_seq, reverse=True):
            qm.redelivered = True
            insert_by_seq(ready, qm)
        self.dispatch()

    def purge(self) -> int:
        """Drop the ready messages; unacked ones stay (and stay stored)."""
        count = len(self.ready)
        if self.store is not None:
            for qm in self.ready:
                self.settled(qm)
        self.ready.clear()
        return count

    # ------------------------------------------------------------ consumers

    def add_consumer(self, consumer: Consumer) -> None:
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


def _seq(qm: QueuedMessage) -> int:
    return qm.seq
