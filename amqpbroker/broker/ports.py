"""What the broker's domain needs from the layers above it, as small interfaces.

The domain (queues, channels, consumers, the broker) never imports the session, the
server or the management code: where it has to act outward -- write a delivery to a
client, tell a connection it is blocked, close it -- it calls one of these, and the
session (broker/session.py) implements them.  So the imports inside ``broker/`` form no
cycle (tests/unit/test_import_graph.py), and a module can be read, and tested, with
only what is below it.

Only :mod:`typing` here: this module is the leaf everything may import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..errors import AMQPError
    from .message import Message, QueuedMessage


class Outbox(Protocol):
    """A connection's outgoing frames, as a channel writes them.

    Frames go out in the order written.  ``write`` and ``write_content`` are
    deliveries: they count against the connection's buffer, and while more than its
    high-water mark waits unsent ``writable`` is False and consumers take nothing
    (Consumer.can_take); the session sets it again once the writer has drained.
    """

    writable: bool

    @property
    def frame_max(self) -> int:
        """The negotiated frame size limit (0: none) content must be split by."""
        ...

    def write(self, data: bytes) -> None:
        """Whole encoded frames of one delivery."""
        ...

    def write_content(self, method_frame: bytes, channel: int, message: Message) -> None:
        """A method frame with content (get-ok, return) followed by ``message``'s
        header and body frames."""
        ...

    def send(self, data: bytes) -> None:
        """Encoded control frames (confirms, cancel notifications): not counted."""
        ...

    def wants(self, capability: str) -> bool:
        """Whether the client announced ``capability`` (consumer_cancel_notify, ...)."""
        ...

    def close_channel(self, number: int, error: AMQPError) -> None:
        """Close channel ``number`` with ``error``'s reply code and text."""
        ...

    def flush_confirms_later(self, channel: Any) -> None:
        """``channel`` has publisher confirms ready: send them (one multiple ack)
        when the current batch of input is done."""
        ...


class DeliveryChannel(Protocol):
    """The channel a consumer delivers through (broker/channel.py's Channel)."""

    def deliver(
        self, consumer: Any, queue: Any, qm: QueuedMessage | None, message: Message | None = None
    ) -> None: ...


class Consumer(Protocol):
    """A consumer as a queue sees it: the queue asks whether it has room, and hands it
    messages (``channel.deliver`` is the hot path's direct call)."""

    tag: str
    priority: int
    exclusive: bool
    no_ack: bool
    unacked: int

    @property
    def channel(self) -> DeliveryChannel: ...

    def can_take(self) -> bool:
        """Room for one more delivery (prefetch limits, the connection's buffer)."""
        ...

    def deliver(self, queue: Any, qm: QueuedMessage) -> None: ...

    def queue_deleted(self) -> None:
        """Its queue is gone: forget it (and tell the client, if it asked to be)."""
        ...


class Connection(Protocol):
    """A client connection as the broker sees it: for resource alarms
    (connection.blocked, the memory they hold), consumer timeouts, and closing what a
    deleted vhost had."""

    # Whether the connection has published (only publishers are blocked by an alarm),
    # and whether it has been sent connection.blocked.
    published: bool
    told_blocked: bool

    @property
    def vhost(self) -> object | None:
        """The virtual host it opened, None during the handshake."""
        ...

    @property
    def channels(self) -> Mapping[int, Any]:
        """Its open channels by number (broker/channel.py's Channel)."""
        ...

    @property
    def out_size(self) -> int:
        """Bytes of deliveries written and not yet sent (memory accounting)."""
        ...

    def wants(self, capability: str) -> bool: ...

    def send(self, data: bytes) -> None: ...

    def force_close(self, text: str = ...) -> None:
        """Close the connection with 320 CONNECTION_FORCED and ``text``."""
        ...


__all__ = ["Connection", "Consumer", "DeliveryChannel", "Outbox"]
