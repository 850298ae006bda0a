"""The publish path for messages that need more than a routing-key lookup.

``publish.route_publish`` sends a message here only when its property flags show a
``headers`` table (it may hold CC/BCC), a ``reply_to`` (it may ask for direct
reply-to) or an ``expiration`` (per-message TTL): one byte test on the raw content
header, so ordinary publishes never pay for any of this.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..protocol import properties as props
from . import reply_to, sender_selected
from .features import enable_rules
from .message import Message
from .queue import Queue
from .queue_arguments import PLAIN
from .rule_messages import message_ttl

if TYPE_CHECKING:
    from .channel import Channel
    from .vhost import VirtualHost

# headers, reply_to and expiration, in the high byte of the property flags (offset
# 12 of the content-header payload).
SPECIAL_FLAGS = (props.FLAGS["headers"] | props.FLAGS["reply_to"] | props.FLAGS["expiration"]) >> 8


def route(
    channel: Channel | None, vhost: VirtualHost, exchange: Any, message: Message
) -> tuple[Collection[Queue], Message]:
    """The queues ``message`` goes to, and the message they get (``channel``: the
    publisher's, None for one that has none, such as the management API)."""
    header = message.header
    if reply_to.may_request(header):
        message = reply_to.rewrite_request(channel, message)
    queues: Collection[Queue] = vhost.route(exchange, message.routing_key, message)
    if sender_selected.may_select(header):
        keys, delivered = sender_selected.select(message)
        if keys:
            queues = sender_selected.route_keys(
                vhost, exchange, [message.routing_key, *keys], message
            )
        message = delivered
    if queues and message_ttl(message) is not None:
        # Per-message TTL needs the queue rules; a plain queue gains them here.
        for queue in queues:
            if queue.rules is None:
                enable_rules(queue, PLAIN)
    return queues, message
