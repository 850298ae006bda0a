"""Direct reply-to (``amq.rabbitmq.reply-to``): RPC replies without a reply queue.

As RabbitMQ 3.10 does it (every text checked on a real broker):

* A client consumes from the pseudo-queue ``amq.rabbitmq.reply-to`` with no_ack
  (else 406 ``reply consumer cannot acknowledge``; a second such consumer on the
  same channel: 406 ``reply consumer already set``; other channels may have theirs).
* It publishes a request with ``reply_to`` set to exactly that name, on the same
  channel (else 406 ``fast reply consumer does not exist``); the broker rewrites it
  to ``amq.rabbitmq.reply-to.<token>``, a name that routes to that consumer.
* A reply published to the default exchange with that name as routing key is
  delivered straight to the consumer (exchange "", routing key the full name,
  redelivered false).  A name whose consumer is gone is unroutable: dropped, or
  returned 312 NO_ROUTE when mandatory; the replier's channel stays open.
* queue.declare of ``amq.rabbitmq.reply-to`` (passive or not) answers declare-ok
  with 0 messages and 1 consumer; a passive declare of a live
  ``amq.rabbitmq.reply-to.<token>`` too, of a dead one 404.  bind, get, purge and
  delete know no such queue (404).

The reply destination is a :class:`ReplyQueue`: a queue object that is never in a
vhost's queue table and delivers each message at once to its one consumer.  The
default exchange finds it through the broker's table of live reply names, which it
consults only when no queue has the routing key as its name.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

from .. import errors
from ..protocol import properties as props
from .channel import Channel, Consumer
from .message import Message, QueuedMessage
from .queue import Queue

if TYPE_CHECKING:
    from . import ports

REPLY_TO = "amq.rabbitmq.reply-to"
_REPLY_TO_BYTES = REPLY_TO.encode()
PREFIX = REPLY_TO + "."
# The reply_to property, in the flags' high byte (offset 12).
_REPLY_TO_FLAG = props.FLAGS["reply_to"] >> 8


class ReplyQueue(Queue):
    """Where replies for one direct reply-to consumer are routed."""

    __slots__ = ("registry",)

    def __init__(self, vhost: str, name: str, registry: dict[str, ReplyQueue]) -> None:
        super().__init__(vhost, name)
        self.registry = registry
        registry[name] = self

    def publish(self, message: Message) -> bool:
        if not self.consumers:
            return False
        consumer = self.consumers[0]
        consumer.channel.deliver(consumer, self, QueuedMessage(0, message))
        return False

    def remove_consumer(self, consumer: ports.Consumer) -> None:
        super().remove_consumer(consumer)
        if not self.consumers:
            self.deleted = True
            if self.registry.get(self.name) is self:
                del self.registry[self.name]


def is_reply_address(exchange: str, routing_key: str) -> bool:
    """Whether a publish goes to a direct reply-to name (default exchange, routing key
    ``amq.rabbitmq.reply-to.<token>``).  From 4.2 RabbitMQ treats such a name as a
    queue that exists, whether or not its requester is still there, so a mandatory
    publish to it is routed, never returned (release notes; 4.2's source decodes the
    token, so a malformed one is still unroutable there: here any token counts)."""
    return exchange == "" and routing_key.startswith(PREFIX) and len(routing_key) > len(PREFIX)


def _reply_queue(channel: Channel) -> ReplyQueue | None:
    for consumer in channel.consumers.values():
        if isinstance(consumer.queue, ReplyQueue):
            return consumer.queue
    return None


def consume(channel: Channel, registry: dict[str, ReplyQueue], tag: str, no_ack: bool) -> Consumer:
    """basic.consume on ``amq.rabbitmq.reply-to``: the consumer to add."""
    if not no_ack:
        raise errors.PreconditionFailed("reply consumer cannot acknowledge")
    if _reply_queue(channel) is not None:
        raise errors.PreconditionFailed("reply consumer already set")
    token = base64.urlsafe_b64encode(os.urandom(18)).decode("ascii")
    queue = ReplyQueue(channel.vhost.name, PREFIX + token, registry)
    return Consumer(channel, tag, queue, no_ack=True, exclusive=False, prefetch=0)


def declare(name: str, passive: bool, registry: dict[str, ReplyQueue], vhost: str) -> bool:
    """Whether queue.declare of ``name`` is a reply-to declare answered with
    (name, 0 messages, 1 consumer).  Raises NotFound for a dead reply name."""
    if name == REPLY_TO:
        return True
    if passive and name.startswith(PREFIX):
        if name in registry:
            return True
        raise errors.NotFound(f"no queue '{name}' in vhost '{vhost}'")
    return False


def may_request(header: bytes) -> bool:
    """Cheap pre-check on the raw content header: a reply_to property is set and the
    bytes of ``amq.rabbitmq.reply-to`` occur in the properties.  False positives are
    fine, false negatives are not.  (Applications such as Celery set a reply_to of their
    own on every message: reading it costed a property scan per publish.)"""
    return len(header) > 13 and bool(header[12] & _REPLY_TO_FLAG) and _REPLY_TO_BYTES in header


def rewrite_request(channel: Channel | None, message: Message) -> Message:
    """A request with ``reply_to: amq.rabbitmq.reply-to`` gets the channel's reply
    name instead; other messages are returned unchanged."""
    if message.properties.reply_to != REPLY_TO:
        return message
    queue = _reply_queue(channel) if channel is not None else None
    if queue is None:
        raise errors.PreconditionFailed("fast reply consumer does not exist")
    properties = props.decode_properties(message.header)
    properties.reply_to = queue.name
    header = props.encode_header_payload(properties, len(message.body))
    return Message(message.exchange, message.routing_key, header, message.body)
