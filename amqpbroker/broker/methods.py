"""Channel method handlers: decode, check, call the domain, reply.

Each handler takes ``(session, channel, payload)``; ``HANDLERS`` maps a method key
``(class_id << 16) | method_id`` to its handler.  Errors are raised as
:class:`~amqpbroker.errors.AMQPError` and turned into close frames by the protocol
connection.  The frequent methods (publish, ack) decode with the hand-written
codec; the rest use pamqp.
"""

from __future__ import annotations

import base64
import operator
import os
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pamqp import base, commands

from .. import errors
from ..protocol import frames
from ..protocol import properties as props
from . import publish_extras, reply_to
from .arguments import amqp_type
from .channel import Channel
from .consumer import Consumer
from .exchanges.base import Exchange
from .expiration import parse_expiration
from .features import REFUSED
from .message import Message
from .queue import Queue

if TYPE_CHECKING:
    from .session import Session

M = TypeVar("M", bound=base.Frame)
Handler = Callable[["Session", Channel, bytes], None]
HANDLERS: dict[int, Handler] = {}
# Called as observe(vhost, message, queues) after each publish is routed: the
# testing helpers record published messages with it.  Empty unless a test is
# recording, so the hot path pays one truthiness test for it.
PUBLISH_OBSERVERS: list[Callable[[Any, Message, Any], None]] = []


def handles(class_id: int, method_id: int) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[(class_id << 16) | method_id] = func
        return func

    return register


def _decode(payload: bytes, cls: type[M]) -> M:
    """Decode a method the dispatch table already identified as ``cls``."""
    return cast(M, frames.decode_method(payload))


def generated_tag(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode("ascii").rstrip("=")


def _vhost(session: Session) -> Any:
    assert session.vhost is not None
    return session.vhost


def _queue_name(channel: Channel, name: str) -> str:
    """An empty queue name means the last queue declared on this channel."""
    if name:
        return name
    if channel.last_queue is None:
        raise errors.NotFound("no previously declared queue")
    return channel.last_queue


def _reply(session: Session, channel: Channel, method: Any) -> None:
    session.send_method(channel.number, method)


# ------------------------------------------------------------------- channel


@handles(20, 20)
def channel_flow(session: Session, channel: Channel, payload: bytes) -> None:
    method = _decode(payload, commands.Channel.Flow)
    if not method.active:
        # RabbitMQ 3.x does not implement client-initiated flow control.
        raise errors.NotImplemented_("active=false")
    _reply(session, channel, frames.make_method(commands.Channel.FlowOk, active=True))


# ------------------------------------------------------------------ exchange


@handles(40, 10)
def exchange_declare(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Exchange.Declare)
    _vhost(session).declare_exchange(
        m.exchange,
        m.exchange_type,
        passive=m.passive,
        durable=m.durable,
        auto_delete=m.auto_delete,
        internal=m.internal,
        arguments=m.arguments,
    )
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Exchange.DeclareOk))


@handles(40, 20)
def exchange_delete(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Exchange.Delete)
    _vhost(session).delete_exchange(m.exchange, if_unused=m.if_unused)
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Exchange.DeleteOk))


@handles(40, 30)
def exchange_bind(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Exchange.Bind)
    _vhost(session).bind_exchange(m.destination, m.source, m.routing_key, m.arguments or {})
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Exchange.BindOk))


@handles(40, 40)
def exchange_unbind(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Exchange.Unbind)
    _vhost(session).unbind_exchange(m.destination, m.source, m.routing_key, m.arguments or {})
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Exchange.UnbindOk))


# --------------------------------------------------------------------- queue


@handles(50, 10)
def queue_declare(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Queue.Declare)
    if m.queue.startswith(reply_to.REPLY_TO) and reply_to.declare(
        m.queue, m.passive, session.broker.reply_queues, _vhost(session).name
    ):
        if not m.nowait:
            _reply(
                session,
                channel,
                frames.make_method(
                    commands.Queue.DeclareOk, queue=m.queue, message_count=0, consumer_count=1
                ),
            )
        return
    # A passive declare of "" looks for a queue named "" (RabbitMQ 3.10: 404 "no
    # queue ''"), not for the channel's last queue.
    queue, created = _vhost(session).declare_queue(
        m.queue,
        owner=session,
        passive=m.passive,
        durable=m.durable,
        exclusive=m.exclusive,
        auto_delete=m.auto_delete,
        arguments=m.arguments,
    )
    if created and queue.exclusive:
        session.exclusive_queues.add(queue)
    channel.last_queue = queue.name
    if not m.nowait:
        _reply(
            session,
            channel,
            frames.make_method(
                commands.Queue.DeclareOk,
                queue=queue.name,
                message_count=queue.message_count,
                consumer_count=queue.consumer_count,
            ),
        )


@handles(50, 20)
def queue_bind(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Queue.Bind)
    routing_key = m.routing_key
    if not m.queue and not routing_key:
        routing_key = _queue_name(channel, "")  # RabbitMQ's routing-key shortcut
    vhost = _vhost(session)
    queue = vhost.get_queue(_queue_name(channel, m.queue), session)
    vhost.bind_queue(queue, m.exchange, routing_key, m.arguments or {})
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Queue.BindOk))


@handles(50, 50)
def queue_unbind(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Queue.Unbind)
    routing_key = m.routing_key
    if not m.queue and not routing_key:
        routing_key = _queue_name(channel, "")
    vhost = _vhost(session)
    # A missing queue is no error here: RabbitMQ answers unbind-ok.
    queue = vhost.queues.get(_queue_name(channel, m.queue))
    vhost.unbind_queue(queue, m.exchange, routing_key, m.arguments or {}, owner=session)
    _reply(session, channel, frames.make_method(commands.Queue.UnbindOk))


@handles(50, 30)
def queue_purge(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Queue.Purge)
    queue = _vhost(session).get_queue(_queue_name(channel, m.queue), session)
    count = queue.purge()
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Queue.PurgeOk, message_count=count))


@handles(50, 40)
def queue_delete(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Queue.Delete)
    vhost = _vhost(session)
    name = _queue_name(channel, m.queue)
    queue = vhost.queues.get(name)
    count = 0
    if queue is not None:
        vhost.check_exclusive(queue, session)
        count = vhost.delete_queue(queue, if_unused=m.if_unused, if_empty=m.if_empty)
    # Deleting a queue that does not exist succeeds with a count of 0 (RabbitMQ 3.x).
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Queue.DeleteOk, message_count=count))


# --------------------------------------------------------------------- basic


@handles(60, 10)
def basic_qos(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Basic.Qos)
    if m.prefetch_size:
        raise errors.NotImplemented_(f"prefetch_size!=0 ({m.prefetch_size})")
    if m.global_:
        channel.global_prefetch = m.prefetch_count
    else:
        channel.consumer_prefetch = m.prefetch_count
        # RabbitMQ 3.x (rabbit_channel: rabbit_limiter:unlimit_prefetch) drops the
        # channel-wide limit on any global=false qos, releasing blocked consumers.
        channel.global_prefetch = 0
    channel.resume()
    _reply(session, channel, frames.make_method(commands.Basic.QosOk))


def _consumer_priority(arguments: dict[str, Any], queue: Queue) -> int:
    value = arguments.get("x-priority", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.PreconditionFailed(
            f"invalid arg 'x-priority' for queue '{queue.name}' in vhost '{queue.vhost}': "
            f'"expected integer, got {amqp_type(value)}"'
        )
    return value


@handles(60, 20)
def basic_consume(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Basic.Consume)
    vhost = _vhost(session)
    # RabbitMQ checks the tag before it looks the queue up.
    if m.consumer_tag in channel.consumers:
        raise errors.NotAllowed(f"attempt to reuse consumer tag '{m.consumer_tag}'")
    tag = m.consumer_tag or session.next_consumer_tag()
    if m.queue == reply_to.REPLY_TO:
        consumer = reply_to.consume(channel, session.broker.reply_queues, tag, m.no_ack)
        if not m.nowait:
            _reply(session, channel, frames.make_method(commands.Basic.ConsumeOk, consumer_tag=tag))
        channel.add_consumer(consumer)
        return
    queue: Queue = vhost.get_queue(_queue_name(channel, m.queue), session)
    quorum = queue.ext is not None and queue.ext.options.quorum
    if channel.global_prefetch and quorum:
        raise errors.NotImplemented_(
            f"queue '{queue.name}' in vhost '{vhost.name}' does not support global qos"
        )
    arguments = m.arguments or {}
    priority = _consumer_priority(arguments, queue)
    # RabbitMQ 3.10's quorum queues do not enforce exclusive consumers at all.
    if (
        queue.consumers
        and not quorum
        and (m.exclusive or any(c.exclusive for c in queue.consumers))
    ):
        raise errors.AccessRefused(f"queue '{queue.name}' in vhost '{vhost.name}' in exclusive use")
    consumer = Consumer(
        channel,
        tag,
        queue,
        no_ack=m.no_ack,
        exclusive=m.exclusive,
        prefetch=channel.consumer_prefetch,
        priority=priority,
        arguments=arguments,
    )
    # consume-ok must reach the client before the first delivery.
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Basic.ConsumeOk, consumer_tag=tag))
    channel.add_consumer(consumer)


@handles(60, 30)
def basic_cancel(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Basic.Cancel)
    channel.cancel(m.consumer_tag or "")
    # An unknown tag is not an error: RabbitMQ answers cancel-ok all the same.
    if not m.nowait:
        _reply(
            session,
            channel,
            frames.make_method(commands.Basic.CancelOk, consumer_tag=m.consumer_tag),
        )


def send_cancel(session: Session, channel: int, tag: str) -> None:
    session.send_method(
        channel, frames.make_method(commands.Basic.Cancel, consumer_tag=tag, nowait=True)
    )


@handles(60, 70)
def basic_get(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Basic.Get)
    queue = _vhost(session).get_queue(_queue_name(channel, m.queue), session)
    qm = queue.get()
    if qm is None:
        _reply(session, channel, frames.make_method(commands.Basic.GetEmpty))
        return
    channel.deliver_get(queue, qm, m.no_ack)


@handles(60, 80)
def basic_ack(session: Session, channel: Channel, payload: bytes) -> None:
    tag, multiple = frames.decode_ack(payload)
    if channel.tx is not None:
        _check_tag(channel, tag, multiple)
        channel.tx.append(lambda: channel.ack(tag, multiple))
        return
    channel.ack(tag, multiple)


@handles(60, 90)
def basic_reject(session: Session, channel: Channel, payload: bytes) -> None:
    tag, requeue = frames.decode_reject(payload)
    _settle_negative(channel, tag, False, requeue)


@handles(60, 120)
def basic_nack(session: Session, channel: Channel, payload: bytes) -> None:
    tag, multiple, requeue = frames.decode_nack(payload)
    _settle_negative(channel, tag, multiple, requeue)


def _settle_negative(channel: Channel, tag: int, multiple: bool, requeue: bool) -> None:
    if channel.tx is not None:
        _check_tag(channel, tag, multiple)
        channel.tx.append(lambda: channel.reject(tag, multiple, requeue))
        return
    channel.reject(tag, multiple, requeue)


def _check_tag(channel: Channel, tag: int, multiple: bool) -> None:
    if not (multiple and tag == 0) and tag not in channel.unacked:
        raise errors.PreconditionFailed(f"unknown delivery tag {tag}")


@handles(60, 100)
def basic_recover_async(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Basic.RecoverAsync)
    if not m.requeue:
        raise errors.NotImplemented_("requeue=false")
    channel.recover()


@handles(60, 110)
def basic_recover(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Basic.Recover)
    if not m.requeue:
        raise errors.NotImplemented_("requeue=false")
    # recover-ok goes out before the redeliveries, as in RabbitMQ.
    _reply(session, channel, frames.make_method(commands.Basic.RecoverOk))
    channel.recover()


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
                outcome = queue.publish(message)
                if outcome:
                    # True: stored, so confirmed after the group commit; REFUSED: a
                    # length limit refused it (reject-publish): the publisher gets a nack.
                    if outcome is REFUSED:
                        refused = True
                    else:
                        stored = True
        elif mandatory:
            session.write_content(
                frames.encode_return(
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
    exchange = vhost.exchanges.get(exchange_name)
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
_VALUE_CHECKED = 0x2000 | 0x0200 | 0x0100 | 0x0010
# The others in wire order: (flag, size), size 0 for a short string.
_LAYOUT = (
    (0x8000, 0),  # content_type
    (0x4000, 0),  # content_encoding
    (0x1000, 1),  # delivery_mode
    (0x0800, 1),  # priority
    (0x0400, 0),  # correlation_id
    (0x0080, 0),  # message_id
    (0x0040, 8),  # timestamp
    (0x0020, 0),  # type
    (0x0008, 0),  # app_id
    (0x0004, 0),  # cluster_id
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


# ------------------------------------------------------------ confirm and tx


@handles(85, 10)
def confirm_select(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Confirm.Select)
    if channel.tx is not None:
        raise errors.PreconditionFailed("cannot switch from tx to confirm mode")
    channel.confirm = True
    if not m.nowait:
        _reply(session, channel, frames.make_method(commands.Confirm.SelectOk))


@handles(90, 10)
def tx_select(session: Session, channel: Channel, payload: bytes) -> None:
    if channel.confirm:
        raise errors.PreconditionFailed("cannot switch from confirm to tx mode")
    if channel.tx is None:
        channel.tx = []
    _reply(session, channel, frames.make_method(commands.Tx.SelectOk))


@handles(90, 20)
def tx_commit(session: Session, channel: Channel, payload: bytes) -> None:
    if channel.tx is None:
        raise errors.PreconditionFailed("channel is not transactional")
    pending, channel.tx = channel.tx, []
    for operation in pending:
        operation()
    commit_ok = frames.make_method(commands.Tx.CommitOk)
    broker = session.broker
    if broker.store is not None and pending:
        # commit-ok promises durability: send it after the group commit. Not only when
        # has_pending(): a commit already running in the worker thread may have taken
        # this transaction's operations, and the next commit ends after that one.
        def reply() -> None:
            if session.channels.get(channel.number) is channel:
                _reply(session, channel, commit_ok)

        broker.after_commit(reply)
    else:
        _reply(session, channel, commit_ok)


@handles(90, 30)
def tx_rollback(session: Session, channel: Channel, payload: bytes) -> None:
    if channel.tx is None:
        raise errors.PreconditionFailed("channel is not transactional")
    channel.tx = []
    _reply(session, channel, frames.make_method(commands.Tx.RollbackOk))


__all__ = ["HANDLERS", "generated_tag", "publish_in_tx", "route_publish", "send_cancel"]
