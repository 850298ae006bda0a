"""Sender-selected distribution: the ``CC`` and ``BCC`` headers (RabbitMQ extension).

A message whose headers hold ``CC`` and/or ``BCC`` arrays of strings is routed with
each of those strings as an extra routing key, and ``BCC`` is removed before the
message reaches any queue.  What RabbitMQ 3.10 does, checked on a real broker:

* the routing keys are the publish routing key, then CC's strings, then BCC's; a
  queue reached by several keys gets one copy; the delivered routing key is the
  publish one;
* non-string array elements are ignored; a ``CC``/``BCC`` that is not an array
  fails the publish: 406 ``invalid message: {unacceptable_type_in_header,"CC",longstr}``;
* removing ``BCC`` keeps the other headers in their order (an empty table stays an
  empty table), and CC-routed messages count as routed for ``mandatory``.

Hot path: :func:`may_select` is a substring test on the raw content header; only
when it hits are the headers decoded.
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..protocol import properties as props
from .args_equivalence import amqp_type
from .message import Message

_HEADERS_FLAG = props.FLAGS["headers"] >> 8  # in the property flags' high byte (offset 12)


def may_select(header: bytes) -> bool:
    """Cheap pre-check: the message has headers and "CC" occurs in its properties
    (which "BCC" contains too).  False positives are fine, false negatives are not."""
    return len(header) > 13 and bool(header[12] & _HEADERS_FLAG) and b"CC" in header


def _keys(headers: dict[str, Any], name: str) -> list[str]:
    value = headers.get(name)
    if value is None and name not in headers:
        return []
    if not isinstance(value, list):
        raise errors.PreconditionFailed(
            f'invalid message: {{unacceptable_type_in_header,"{name}",{amqp_type(value)}}}'
        )
    return [item for item in value if isinstance(item, str)]


def cc_keys(headers: dict[str, Any] | None) -> list[str]:
    """The CC routing keys of a stored message (BCC is gone by then)."""
    if not headers or "CC" not in headers:
        return []
    value = headers["CC"]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def select(message: Message) -> tuple[list[str], Message]:
    """The extra routing keys of a message, and the message queues should get (BCC
    removed).  Raises PreconditionFailed for a CC/BCC that is not an array."""
    headers = message.headers
    if not headers or ("CC" not in headers and "BCC" not in headers):
        return [], message
    keys = _keys(headers, "CC") + _keys(headers, "BCC")
    if "BCC" not in headers:
        return keys, message
    properties = props.decode_properties(message.header)
    properties.headers = {k: v for k, v in headers.items() if k != "BCC"}
    header = props.encode_header_payload(properties, len(message.body))
    return keys, Message(message.exchange, message.routing_key, header, message.body)


def route_keys(host: Any, exchange: Any, keys: list[str], message: Message) -> list[Any]:
    """The queues ``message`` reaches through ``exchange`` by any of ``keys``, each
    once, in the order first reached."""
    found: dict[Any, None] = {}
    for key in keys:
        for queue in host.route(exchange, key, message):
            found[queue] = None
    return list(found)
