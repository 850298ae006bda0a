"""A consumer: one basic.consume on one channel, attached to one queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .channel import Channel
    from .message import QueuedMessage
    from .queue import Queue


class Consumer:
    __slots__ = (
        "arguments",
        "channel",
        "exclusive",
        "no_ack",
        "prefetch",
        "priority",
        "queue",
        "tag",
        "unacked",
    )

    def __init__(
        self,
        channel: Channel,
        tag: str,
        queue: Queue,
        *,
        no_ack: bool,
        exclusive: bool,
        prefetch: int,
        priority: int = 0,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.channel = channel
        self.tag = tag
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch  # per-consumer limit (basic.qos global=false), 0 = none
        self.priority = priority
        self.arguments = arguments or {}
        self.unacked = 0

    def can_take(self) -> bool:
        """Room for one more delivery: prefetch limits and the connection's buffer."""
        if self.no_ack:
            return self.channel.writable()
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return self.channel.has_credit()

    def deliver(self, queue: Queue, qm: QueuedMessage) -> None:
        self.channel.deliver(self, queue, qm)
