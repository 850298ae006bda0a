"""What the queue rules (features.py) read and keep per message: a message's own TTL
(the ``expiration`` property), a quorum queue's delivery count, and the queued
message that carries its deadline and count.
"""

from __future__ import annotations

from ..protocol import properties as props
from .message import Message, QueuedMessage

# High byte of the property flags (offset 12 of the header).
_EXPIRATION_FLAG = props.FLAGS["expiration"] >> 8


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
