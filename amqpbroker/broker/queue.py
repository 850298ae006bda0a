"""A queue: ready messages in order, the consumers that drain it, and its counts.

Delivery is synchronous and push-based: a publish that finds the queue empty and a
consumer with room hands the message straight to that consumer's channel, which
encodes the deliver frames into its connection's output buffer.  No task and no
channel hop per message (PERFORMANCE-NOTES: each costs ~10-20 us).

Ordering (RABBITMQ.md): messages keep publish order; a requeued message goes back
to its original position, found by its sequence number.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .message import Message, QueuedMessage

if TYPE_CHECKING:
    from .consumer import Consumer


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
        "name",
        "next_seq",
        "ready",
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

    def publish(self, message: Message) -> None:
        seq = self.next_seq
        self.next_seq = seq + 1
        qm = QueuedMessage(seq, message)
        if not self.ready and self.consumers:
            # Fast path: hand it straight to a consumer with room.
            consumer = self._next_consumer()
            if consumer is not None:
                consumer.deliver(self, qm)
                return
        self.ready.append(qm)

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
        while ready and self.consumers:
            consumer = self._next_consumer()
            if consumer is None:
                return
            consumer.deliver(self, ready.popleft())

    def get(self) -> QueuedMessage | None:
        """basic.get: the head of the queue, or None."""
        return self.ready.popleft() if self.ready else None

    def requeue(self, messages: Iterable[QueuedMessage]) -> None:
        """Put delivered messages back at their original positions, redelivered."""
        if self.deleted:
            return
        ready = self.ready
        for qm in sorted(messages, key=_seq, reverse=True):
            qm.redelivered = True
            if not ready or qm.seq < ready[0].seq:
                ready.appendleft(qm)
            else:
                # Rare: the message is newer than the head (requeued after newer
                # ones were published and then requeued first); find its slot.
                index = bisect.bisect_left(_SeqView(ready), qm.seq)
                ready.insert(index, qm)
        self.dispatch()

    def purge(self) -> int:
        count = len(self.ready)
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
        try:
            self.consumers.remove(consumer)
        except ValueError:
            pass


def _seq(qm: QueuedMessage) -> int:
    return qm.seq


class _SeqView:
    """A read-only sequence of the seqs in a deque, for bisect without copying."""

    __slots__ = ("_items",)

    def __init__(self, items: deque[QueuedMessage]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> int:
        return self._items[index].seq

