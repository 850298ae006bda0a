"""Publishing: routing a publish to its queues, storing it there, and what then
happens to it -- the domain operation every publisher goes through.

The session hands every complete basic.publish here (:func:`route_publish`, or
:func:`publish_in_tx` on a transactional channel); the management API's publish and
anything else that is not a client call :func:`route_publish` too, without a channel.
The exchange is checked as RabbitMQ does at publish time (publish_checks.py), the
message routed, handed to its queues (which store it when it is persistent and they
are durable), and, on a client's channel, returned (mandatory, unroutable) or
confirmed.  The :class:`Outcome` says which.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from .. import errors
from ..protocol import basic_codec
from . import publish_extras, reply_to
from .message import Message
from .publish_checks import PublishCache, checked_exchange
from .queue import REFUSED

if TYPE_CHECKING:
    from .broker import Broker
    from .channel import Channel
    from .queue import Queue

__all__ = ["Outcome", "publish_in_tx", "route_publish"]


class Outcome(enum.Enum):
    """What became of a publish (of the last one, for a burst of repeats)."""

    ROUTED = "routed"  # in at least one queue, none of which wrote it to the store
    STORED = "stored"  # at least one queue wrote it to the store: confirmed after commit
    REFUSED = "refused"  # a queue refused it (x-overflow reject-publish): nacked
    RETURNED = "returned"  # no queue, mandatory: back to the publisher (basic.return)
    UNROUTABLE = "unroutable"  # no queue, not mandatory: dropped


# As plain globals: the hot path returns one per publish (no class attribute lookup).
_ROUTED, _STORED, _REFUSED = Outcome.ROUTED, Outcome.STORED, Outcome.REFUSED
_RETURNED, _UNROUTABLE = Outcome.RETURNED, Outcome.UNROUTABLE


def publish_in_tx(
    broker: Broker,
    cache: PublishCache,
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
    checked_exchange(cache, exchange_name, header)

    def commit() -> None:
        # Checked again: the exchange may have gone since (the properties pass again).
        route_publish(broker, cache, channel, exchange_name, routing_key, mandatory, header, body)

    channel.tx.append(commit)


def route_publish(
    broker: Broker,
    cache: PublishCache,
    channel: Channel | None,
    exchange_name: str,
    routing_key: str,
    mandatory: bool,
    header: bytes,
    body: bytes | None,
    content: bytes | None = None,
    repeats: Sequence[bytes] = (),
) -> Outcome:
    """Check, route and enqueue a publish; on a client's ``channel``, then return it
    (mandatory, unroutable) or confirm it.  ``body`` is None when it is the one in
    ``content`` (see Message).  Each of ``repeats`` is the content of one more publish
    with the same method and header payloads (FrameReader.next_repeats), published
    after it.  ``cache`` is the publisher's (publish_checks.py): its vhost, its user
    and what it checked before.  Without a channel (the management API) nothing is
    written anywhere: the outcome says what a client would have been told.

    Hot path (once per publish): the common case -- an existing, non-internal
    exchange, no properties or ones equal to (or shaped as) the last that passed, no
    special properties, no exchange-to-exchange bindings -- is written out here
    rather than through VirtualHost.route, which handles everything else.  The
    checks and the routing are done once for ``repeats`` too: their outcome depends
    only on the method and header bytes, the publisher's user, and exchanges,
    queues and bindings, which publishing does not change.
    """
    vhost = cache.vhost
    exchange = vhost.exchanges.get(exchange_name)
    if exchange is None or exchange.internal or header[12] or header[13] & 0xFC:
        exchange = checked_exchange(cache, exchange_name, header)
    number = channel.number if channel else 0
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
    observers = broker.publish_observers
    confirm = channel.confirm if channel else False
    flush = False
    index = 0
    try:
        while True:
            if special:
                # Rare: CC/BCC headers, direct reply-to or a per-message TTL.
                queues, message = publish_extras.route(channel, vhost, exchange, message)
            if observers:
                for observe in observers:
                    observe(vhost, message, queues)
            stored = refused = False
            if queues:
                for queue in queues:
                    # A queue with a length limit may answer REFUSED (features.py).
                    taken: object = queue.publish(message)
                    if taken:
                        # True: stored, so confirmed after the group commit; REFUSED: a
                        # length limit refused it (reject-publish): the publisher gets a nack.
                        if taken is REFUSED:
                            refused = True
                        else:
                            stored = True
            elif (
                mandatory
                and channel is not None
                and not (
                    broker.behaviour.reply_to_mandatory_routed
                    and reply_to.is_reply_address(exchange_name, routing_key)
                )
            ):
                channel.outbox.write_content(
                    basic_codec.encode_return(
                        number, errors.NO_ROUTE, "NO_ROUTE", exchange_name, routing_key
                    ),
                    number,
                    message,
                )
            if confirm:
                assert channel is not None
                seq = channel.publish_seq = channel.publish_seq + 1
                if refused:
                    channel.publish_refused(seq)
                if stored or channel.commit_seq > channel.confirm_ready:
                    # Confirmed only once the group commit holding it is on disk (and,
                    # while an earlier publish waits for one, after it).
                    broker.await_commit(channel, seq)
                else:
                    channel.confirm_ready = seq
                    flush = True
            if index == len(repeats):
                break
            message = Message(exchange_name, routing_key, header, None, repeats[index], number)
            index += 1
    finally:
        if flush:
            # One multiple ack for the burst once the input read is handled.
            assert channel is not None
            channel.outbox.flush_confirms_later(channel)
    if queues:
        return _REFUSED if refused else _STORED if stored else _ROUTED
    return _RETURNED if mandatory else _UNROUTABLE
