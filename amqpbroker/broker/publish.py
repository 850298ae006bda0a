"""Publishing: the publish-time checks, routing a publish to its queues, and its
confirm.

The session hands every complete basic.publish here (``route_publish``, or
``publish_in_tx`` on a transactional channel): the exchange is checked as
RabbitMQ does at publish time, the message routed, stored in its queues, and
returned (mandatory, unroutable) or confirmed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from .. import errors
from ..protocol import basic_codec
from ..protocol import properties as props
from . import publish_extras, reply_to
from .channel import Channel
from .exchanges.base import Exchange
from .expiration import parse_expiration
from .message import Message
from .queue import REFUSED, Queue

if TYPE_CHECKING:
    from .session import Session

__all__ = ["PUBLISH_OBSERVERS", "PropertyShape", "publish_in_tx", "route_publish"]

# Called as observe(vhost, message, queues) after each publish is routed: the
# testing helpers record published messages with it.  Empty unless a test is
# recording, so the hot path pays one truthiness test for it.
PUBLISH_OBSERVERS: list[Callable[[Any, Message, Any], None]] = []


def _vhost(session: Session) -> Any:
    assert session.vhost is not None
    return session.vhost


def publish_in_tx(
    session: Session,
    channel: Channel,
    exchange_name: str,
    routing_key: str,
    mandatory: bool,
    header: bytes,
    body: bytes,
) -> None:
    """A publish on a transactional channel waits for tx.commit."""
    assert channel.tx is not None
    # RabbitMQ checks the exchange and the properties when the publish arrives, so a
    # bad one fails the channel before anything is committed.
    _checked_exchange(session, exchange_name, header)
    channel.tx.append(
        lambda: route_publish(session, channel, exchange_name, routing_key, mandatory, header, body)
    )


def route_publish(
    session: Session,
    channel: Channel,
    exchange_name: str,
    routing_key: str,
    mandatory: bool,
    header: bytes,
    body: bytes | None,
    content: bytes | None = None,
    repeats: Sequence[bytes] = (),
) -> None:
    """Route a decoded publish and hand it to its queues; then its confirm.
    ``body`` is None when it is the one in ``content`` (see Message).  Each of
    ``repeats`` is the content of one more publish with the same method and header
    payloads (FrameReader.next_repeats), published after it.

    Hot path (once per publish): the common case -- an existing, non-internal
    exchange, properties already checked on this session, no special properties,
    no exchange-to-exchange bindings -- is written out here rather than through
    _checked_exchange and VirtualHost.route, which handle everything else.  The
    checks and the routing are done once for ``repeats`` too: their outcome depends
    only on the method and header bytes, the session, and exchanges, queues and
    bindings, which publishing does not change.
    """
    vhost = session.vhost
    assert vhost is not None
    exchange = vhost.exchanges.get(exchange_name)
    if (
        exchange is None
        or exchange.internal
        or (header is not session.checked_header and (header[12] or header[13] & 0xFC))
    ):
        exchange = _checked_exchange(session, exchange_name, header)
    number = channel.number
    message = Message(exchange_name, routing_key, header, body, content, number)
    special = header[12] & publish_extras.SPECIAL_FLAGS
    queues: Collection[Queue] = ()
    if special:
        pass  # per message, below
    elif vhost.e2e_count or exchange.needs_headers:
        queues = vhost.route(exchange, routing_key, message)
    else:
        queues = exchange.route(routing_key)  # type: ignore[assignment]
        if not queues and "alternate-exchange" in exchange.arguments:
            queues = vhost.route(exchange, routing_key, message)
    index = 0
    while True:
        if special:
            # Rare: CC/BCC headers, direct reply-to or a per-message TTL.
            queues, message = publish_extras.route(channel, vhost, exchange, message)
        if PUBLISH_OBSERVERS:
            for observe in PUBLISH_OBSERVERS:
                observe(vhost, message, queues)
        stored = refused = False
        if queues:
            for queue in queues:
                # A queue with a length limit may answer REFUSED (features.py).
                outcome: object = queue.publish(message)
                if outcome:
                    # True: stored, so confirmed after the group commit; REFUSED: a
                    # length limit refused it (reject-publish): the publisher gets a nack.
                    if outcome is REFUSED:
                        refused = True
                    else:
                        stored = True
        elif mandatory and not (
            session.behaviour.reply_to_mandatory_routed
            and reply_to.is_reply_address(exchange_name, routing_key)
        ):
            session.write_content(
                basic_codec.encode_return(
                    number, errors.NO_ROUTE, "NO_ROUTE", exchange_name, routing_key
                ),
                number,
                message,
            )
        if channel.confirm:
            seq = channel.publish_seq = channel.publish_seq + 1
            if refused:
                channel.publish_refused(seq)
            if stored or channel.commit_seq > channel.confirm_ready:
                # Confirmed only once the group commit holding it is on disk (and,
                # while an earlier publish waits for one, after it).
                session.broker.await_commit(channel, seq)
            else:
                channel.confirm_ready = seq
                session.dirty.add(channel)
        if index == len(repeats):
            return
        message = Message(exchange_name, routing_key, header, None, repeats[index], number)
        index += 1


def _checked_exchange(session: Session, exchange_name: str, header: bytes) -> Exchange:
    """The publish target, after RabbitMQ's publish-time checks, in its order:
    exchange exists (404), is not internal (403), user_id and expiration (406)."""
    vhost = _vhost(session)
    exchange: Exchange | None = vhost.exchanges.get(exchange_name)
    if exchange is None:
        raise errors.NotFound(f"no exchange '{exchange_name}' in vhost '{vhost.name}'")
    if exchange.internal:
        raise errors.AccessRefused(
            f"cannot publish to internal exchange '{exchange_name}' in vhost '{vhost.name}'"
        )
    # RabbitMQ decodes every publish's properties at this point: malformed ones close
    # the connection (541) instead of reaching consumers whose clients cannot parse
    # them. Hot path: a header without properties (flags 0 but for the two low bits,
    # which are ignored) is not scanned; the scan is ~1 us, the headers table a few.
    # The checks depend only on the property bytes and the session's user, so bytes
    # equal to the last ones that passed on this session pass again unscanned
    # (slice + compare ~0.1 us; ~7% of the broker's CPU in ampblast).
    if (
        (header[12] or header[13] & 0xFC)
        and header[12:] != session.checked_properties
        and not _same_shape(session.checked_shape, header)
    ):
        view = props.scan_properties(header)
        if view.has_headers:
            _ = view.headers  # decoding it validates it
        if view.user_id is not None and view.user_id != session.user:
            raise errors.PreconditionFailed(
                f"user_id property set to '{view.user_id}' but authenticated user was "
                f"'{session.user}'"
            )
        if view.expiration is not None:
            parse_expiration(view.expiration.encode("utf-8"))
        session.checked_properties = header[12:]
        session.checked_shape = _property_shape(header)
    # This very header object passed: route_publish skips the check for it.
    session.checked_header = header
    return exchange


# Properties whose check depends on their values (the headers table must decode,
# user_id match, expiration parse, reply_to decode): headers with any are scanned.
_VALUE_CHECKED = (
    props.FLAGS["headers"]
    | props.FLAGS["reply_to"]
    | props.FLAGS["expiration"]
    | props.FLAGS["user_id"]
)
# The others in wire order: (flag, size), size 0 for a short string.
_SIZES = {"shortstr": 0, "octet": 1, "timestamp": 8}
_LAYOUT = tuple(
    (flag, _SIZES[kind]) for _name, flag, kind in props.PROPERTIES if not flag & _VALUE_CHECKED
)
PropertyShape = tuple[int, Callable[[bytes], Any], Any]


def _property_shape(header: bytes) -> PropertyShape | None:
    """For a header that passed the publish-time property checks and has no
    value-checked property: what another header must share with it to pass them
    too -- its length, its flags and each string property's length octet.  The
    layout is then the same, and nothing else in it is checked (messages that
    differ only in a message_id or a timestamp are not all scanned)."""
    flags = header[12] << 8 | header[13]
    if flags & _VALUE_CHECKED:
        return None
    positions = [12, 13]
    pos = 14
    for flag, size in _LAYOUT:
        if flags & flag:
            if size:
                pos += size
            else:
                positions.append(pos)
                pos += 1 + header[pos]
    getter = operator.itemgetter(*positions)
    return len(header), getter, getter(header)


def _same_shape(shape: PropertyShape | None, header: bytes) -> bool:
    return shape is not None and len(header) == shape[0] and shape[1](header) == shape[2]
