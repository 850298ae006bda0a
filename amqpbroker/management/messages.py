"""Publish and get through the API, as RabbitMQ's management plugin does.

An HTTP publish is the domain operation a client's basic.publish ends in
(:func:`~amqpbroker.broker.publish.route_publish`: exchange checks, user_id check,
CC/BCC, TTLs, alternate exchanges, persistence), after the same write permission
check, without a channel: its outcome says whether a queue took the message.

An HTTP get takes basic.get's path over a channel of an internal connection (a real
:class:`~amqpbroker.broker.session.Session` with no socket), then acks or rejects;
the get-ok frames it writes are discarded.  Not in ``broker.sessions``: it is not a
connection anyone can list.

Error handling: broker refusals surface as :class:`~amqpbroker.errors.AMQPError`
(the API layer turns them into HTTP errors); nothing is left half-done, since
the channel is closed (unacked requeued) whatever happens.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pamqp import commands

from .. import errors
from ..broker import permissions
from ..broker.channel import Channel
from ..broker.publish import Outcome, route_publish
from ..broker.publish_checks import PublishCache
from ..broker.session import Session
from ..broker.vhost import VirtualHost
from ..protocol import framing, method_codec
from ..protocol import properties as props
from .context import ManagementContext
from .format import jsonable

ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false")
# Properties as the management API names them (AMQP's ``type`` is pamqp's message_type).
_API_PROPERTY_NAMES = {
    ("type" if name == "message_type" else name): name for name in props.PROPERTY_NAMES
}


class BadMessage(ValueError):
    """The request body does not describe a message (400 bad_request)."""


def _session(ctx: ManagementContext, vhost: VirtualHost, user: str) -> tuple[Session, Channel]:
    session = Session(ctx.broker, "")
    session.vhost = vhost
    session.user = user
    channel = Channel(session, 1, vhost)
    session.channels[1] = channel
    return session, channel


def _close(session: Session) -> None:
    totals = session.broker.totals
    for channel in list(session.channels.values()):
        channel.close()  # requeues whatever a failed get left unacked
        # Count what went through the API in the totals, as a closed channel does
        # (without counting a channel or connection: there was none).
        totals.published += channel.published
        totals.delivered += channel.next_tag - 1
        totals.acked += channel.acked
    session.channels.clear()
    session.proto.out.clear()


def _payload(method: Any) -> bytes:
    return method_codec.encode_method(1, method)[7:-1]  # strip frame header and end octet


def authorize(ctx: ManagementContext, vhost: VirtualHost, user: str, method: Any) -> None:
    """Raise 403 ACCESS_REFUSED unless ``user`` may run ``method`` (a pamqp method
    made with method_codec.make_method) in ``vhost``: the checks an AMQP client gets,
    with the same texts, for the API's declare / delete / bind / purge."""
    session, channel = _session(ctx, vhost, user)
    try:
        payload = _payload(method)
        permissions.check_method(session, channel, framing.method_key(payload), payload)
    finally:
        _close(session)


def encode_properties(given: dict[str, Any], body_size: int) -> bytes:
    """A content header for the API's ``properties`` object."""
    properties = commands.Basic.Properties()
    for api_name, value in given.items():
        attr = _API_PROPERTY_NAMES.get(api_name)
        if attr is None:
            raise BadMessage(f"unknown property {api_name!r}")
        if attr in ("delivery_mode", "priority", "timestamp"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadMessage(f"property {api_name!r} must be an integer")
        elif attr == "headers":
            if not isinstance(value, dict):
                raise BadMessage("property 'headers' must be an object")
        elif not isinstance(value, str):
            raise BadMessage(f"property {api_name!r} must be a string")
        setattr(properties, attr, value)
    try:
        return props.encode_header_payload(properties, body_size)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadMessage(str(exc)) from None


def decode_payload(payload: str, encoding: str) -> bytes:
    if encoding == "string":
        return payload.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise BadMessage("payload is not valid base64") from None
    raise BadMessage(f"unknown payload_encoding {encoding!r}")


def publish(
    ctx: ManagementContext,
    vhost: VirtualHost,
    user: str,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: dict[str, Any],
) -> bool:
    """Publish one message; True when some queue took it (RabbitMQ's ``routed``)."""
    header = encode_properties(properties, len(body))
    broker = ctx.broker
    permissions.check_write(permissions.Principal(broker, vhost, user), exchange)
    broker.totals.published += 1
    # mandatory: an unroutable message is what a client would get back (routed false).
    outcome = route_publish(
        broker, PublishCache(vhost, user), None, exchange, routing_key, True, header, body
    )
    store = broker.store
    if store is not None and store.has_pending():
        broker.request_commit()
    return outcome is not Outcome.RETURNED


def get(
    ctx: ManagementContext,
    vhost: VirtualHost,
    user: str,
    queue_name: str,
    *,
    count: int,
    ackmode: str,
    encoding: str,
    truncate: int | None,
) -> list[dict[str, Any]]:
    """Up to ``count`` messages from the head of a queue, settled as ``ackmode`` says.

    As RabbitMQ: every message is fetched first and settled afterwards, so a
    requeued message is not fetched twice by one call."""
    if ackmode not in ACKMODES:
        raise BadMessage(f"unknown ackmode {ackmode!r}")
    if encoding not in ("auto", "base64"):
        raise BadMessage(f"unknown encoding {encoding!r}")
    session, channel = _session(ctx, vhost, user)
    get_payload = _payload(
        method_codec.make_method(commands.Basic.Get, queue=queue_name, no_ack=False)
    )
    get_key = framing.method_key(get_payload)
    found: list[dict[str, Any]] = []
    try:
        for _ in range(count):
            before = channel.next_tag
            session.on_method(1, get_key, get_payload)  # permission checked as basic.get
            if channel.next_tag == before:
                break  # get-empty
            _queue, qm, _consumer = channel.unacked[before]
            remaining = _remaining(vhost, queue_name)
            found.append(_message(qm.message, qm.redelivered, remaining, encoding, truncate))
        last = channel.next_tag - 1
        if last:
            if ackmode == "ack_requeue_false":
                channel.ack(last, True)
            else:
                channel.reject(last, True, ackmode.endswith("requeue_true"))
    finally:
        _close(session)
    store = ctx.broker.store
    if store is not None and store.has_pending():
        ctx.broker.request_commit()
    return found


def _remaining(vhost: VirtualHost, queue_name: str) -> int:
    queue = vhost.queues.get(queue_name)
    return queue.message_count if queue is not None else 0


def _message(
    message: Any, redelivered: bool, remaining: int, encoding: str, truncate: int | None
) -> dict[str, Any]:
    body: bytes = message.body
    shown = body[:truncate] if truncate is not None else body
    text: str | None = None
    if encoding == "auto":
        try:
            text = shown.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return {
        "payload_bytes": len(body),
        "redelivered": redelivered,
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "message_count": remaining,
        "properties": _properties(message.header),
        "payload": text if text is not None else base64.b64encode(shown).decode("ascii"),
        "payload_encoding": "string" if text is not None else "base64",
    }


def _properties(header: bytes) -> dict[str, Any]:
    try:
        decoded = props.decode_properties(header)
    except errors.AMQPError:
        return {}
    shown: dict[str, Any] = {}
    for api_name, attr in _API_PROPERTY_NAMES.items():
        value = getattr(decoded, attr, None)
        if value is None or (attr == "cluster_id" and value == ""):
            continue
        shown[api_name] = jsonable(value)
    return shown
