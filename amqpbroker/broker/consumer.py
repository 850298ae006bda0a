"""A consumer: one basic.consume on one channel, attached to one queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol import basic_codec

if TYPE_CHECKING:
    from .channel import Channel
    from .message import QueuedMessage
    from .queue import Queue


class Consumer:
    __slots__ = (
        "arguments",
        "channel",
        "deliver_exchange",
        "deliver_pair",
        "deliver_routing_key",
        "deliver_start",
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
        # The constant parts of this consumer's basic.deliver frame for the route
        # of its last delivery (basic_codec.deliver_prefix): a queue's messages mostly
        # share one exchange and routing key.
        self.deliver_exchange: str | None = None
        self.deliver_routing_key: str | None = None
        self.deliver_start = b""
        self.deliver_pair = b""

    def can_take(self) -> bool:
        """Room for one more delivery: prefetch limits and the connection's buffer."""
        # Hot path (once per delivery): Channel.writable / has_credit written out.
        channel = self.channel
        if self.no_ack:
            return channel.session.writable
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return channel.session.writable and (
            not channel.global_prefetch or channel.consumer_unacked < channel.global_prefetch
        )

    def deliver(self, queue: Queue, qm: QueuedMessage) -> None:
        self.channel.deliver(self, queue, qm)

    def set_deliver_route(self, exchange: str, routing_key: str) -> None:
        self.deliver_start, self.deliver_pair = basic_codec.deliver_prefix(
            self.channel.number, self.tag, exchange, routing_key
        )
        self.deliver_exchange = exchange
        self.deliver_routing_key = routing_key
