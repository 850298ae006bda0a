"""Channel method handlers: decode, check, call the domain, reply.

Each handler takes ``(session, channel, payload)`` -- the session is broker/session.py's,
which calls them, seen through the small :class:`Session` interface below so that
nothing here imports it; ``HANDLERS`` maps a method key
``(class_id << 16) | method_id`` to its handler.  Errors are raised as
:class:`~amqpbroker.errors.AMQPError` and turned into close frames by the protocol
connection.  The frequent methods (publish, ack) decode with the hand-written
codec; the rest use pamqp.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from pamqp import base, commands

from .. import errors
from ..protocol import basic_codec, method_codec
from . import reply_to
from .args_equivalence import amqp_type
from .channel import Channel, Consumer
from .queue import Queue

if TYPE_CHECKING:
    from .broker import Broker
    from .vhost import VirtualHost


class Session(Protocol):
    """What a handler uses of the connection it runs for."""

    @property
    def broker(self) -> Broker: ...

    @property
    def vhost(self) -> VirtualHost | None: ...

    @property
    def exclusive_queues(self) -> set[Queue]:
        """Exclusive queues it declared: deleted when it closes."""
        ...

    def send_method(self, channel: int, method: Any) -> None: ...


M = TypeVar("M", bound=base.Frame)
Handler = Callable[["Session", Channel, bytes], None]
HANDLERS: dict[int, Handler] = {}


def handles(class_id: int, method_id: int) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[(class_id << 16) | method_id] = func
        return func

    return register


def _decode(payload: bytes, cls: type[M]) -> M:
    """Decode a method the dispatch table already identified as ``cls``."""
    return cast(M, method_codec.decode_method(payload))


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
    _reply(session, channel, method_codec.make_method(commands.Channel.FlowOk, active=True))


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
        _reply(session, channel, method_codec.make_method(commands.Exchange.DeclareOk))


@handles(40, 20)
def exchange_delete(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Exchange.Delete)
    _vhost(session).delete_exchange(m.exchange, if_unused=m.if_unused)
    if not m.nowait:
        _reply(session, channel, method_codec.make_method(commands.Exchange.DeleteOk))


@handles(40, 30)
def exchange_bind(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Exchange.Bind)
    _vhost(session).bind_exchange(m.destination, m.source, m.routing_key, m.arguments or {})
    if not m.nowait:
        _reply(session, channel, method_codec.make_method(commands.Exchange.BindOk))


@handles(40, 40)
def exchange_unbind(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Exchange.Unbind)
    _vhost(session).unbind_exchange(m.destination, m.source, m.routing_key, m.arguments or {})
    if not m.nowait:
        _reply(session, channel, method_codec.make_method(commands.Exchange.UnbindOk))


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
                method_codec.make_method(
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
            method_codec.make_method(
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
        _reply(session, channel, method_codec.make_method(commands.Queue.BindOk))


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
    _reply(session, channel, method_codec.make_method(commands.Queue.UnbindOk))


@handles(50, 30)
def queue_purge(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Queue.Purge)
    queue = _vhost(session).get_queue(_queue_name(channel, m.queue), session)
    count = queue.purge()
    if not m.nowait:
        _reply(
            session, channel, method_codec.make_method(commands.Queue.PurgeOk, message_count=count)
        )


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
        _reply(
            session, channel, method_codec.make_method(commands.Queue.DeleteOk, message_count=count)
        )


# --------------------------------------------------------------------- basic


@handles(60, 10)
def basic_qos(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Basic.Qos)
    if m.prefetch_size:
        raise errors.NotImplemented_(f"prefetch_size!=0 ({m.prefetch_size})")
    # 4.3 denies the deprecated global QoS: global=true acts as global=false.
    if m.global_ and session.broker.behaviour.global_qos:
        channel.global_prefetch = m.prefetch_count
    else:
        channel.consumer_prefetch = m.prefetch_count
        # RabbitMQ 3.x (rabbit_channel: rabbit_limiter:unlimit_prefetch) drops the
        # channel-wide limit on any global=false qos, releasing blocked consumers.
        channel.global_prefetch = 0
    channel.resume()
    _reply(session, channel, method_codec.make_method(commands.Basic.QosOk))


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
    tag = m.consumer_tag or generated_tag("amq.ctag-")
    if m.queue == reply_to.REPLY_TO:
        consumer = reply_to.consume(channel, session.broker.reply_queues, tag, m.no_ack)
        if not m.nowait:
            _reply(
                session,
                channel,
                method_codec.make_method(commands.Basic.ConsumeOk, consumer_tag=tag),
            )
        channel.add_consumer(consumer)
        return
    queue: Queue = vhost.get_queue(_queue_name(channel, m.queue), session)
    quorum = queue.rules is not None and queue.rules.options.quorum
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
        _reply(
            session, channel, method_codec.make_method(commands.Basic.ConsumeOk, consumer_tag=tag)
        )
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
            method_codec.make_method(commands.Basic.CancelOk, consumer_tag=m.consumer_tag),
        )


@handles(60, 70)
def basic_get(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Basic.Get)
    queue = _vhost(session).get_queue(_queue_name(channel, m.queue), session)
    qm = queue.get()
    if qm is None:
        _reply(session, channel, method_codec.make_method(commands.Basic.GetEmpty))
        return
    channel.deliver_get(queue, qm, m.no_ack)


@handles(60, 80)
def basic_ack(session: Session, channel: Channel, payload: bytes) -> None:
    tag, multiple = basic_codec.decode_ack(payload)
    if channel.tx is not None:
        _check_tag(channel, tag, multiple)
        channel.tx.append(lambda: channel.ack(tag, multiple))
        return
    channel.ack(tag, multiple)


@handles(60, 90)
def basic_reject(session: Session, channel: Channel, payload: bytes) -> None:
    tag, requeue = basic_codec.decode_reject(payload)
    _settle_negative(channel, tag, False, requeue)


@handles(60, 120)
def basic_nack(session: Session, channel: Channel, payload: bytes) -> None:
    tag, multiple, requeue = basic_codec.decode_nack(payload)
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
    _reply(session, channel, method_codec.make_method(commands.Basic.RecoverOk))
    channel.recover()


# ------------------------------------------------------------ confirm and tx


@handles(85, 10)
def confirm_select(session: Session, channel: Channel, payload: bytes) -> None:
    m = _decode(payload, commands.Confirm.Select)
    if channel.tx is not None:
        raise errors.PreconditionFailed("cannot switch from tx to confirm mode")
    channel.confirm = True
    if not m.nowait:
        _reply(session, channel, method_codec.make_method(commands.Confirm.SelectOk))


@handles(90, 10)
def tx_select(session: Session, channel: Channel, payload: bytes) -> None:
    if channel.confirm:
        raise errors.PreconditionFailed("cannot switch from confirm to tx mode")
    if channel.tx is None:
        channel.tx = []
    _reply(session, channel, method_codec.make_method(commands.Tx.SelectOk))


@handles(90, 20)
def tx_commit(session: Session, channel: Channel, payload: bytes) -> None:
    if channel.tx is None:
        raise errors.PreconditionFailed("channel is not transactional")
    pending, channel.tx = channel.tx, []
    for operation in pending:
        operation()
    commit_ok = method_codec.make_method(commands.Tx.CommitOk)
    broker = session.broker
    if broker.store is not None and pending:
        # commit-ok promises durability: send it after the group commit. Not only when
        # has_pending(): a commit already running in the worker thread may have taken
        # this transaction's operations, and the next commit ends after that one.
        def reply() -> None:
            if not channel.closed:
                _reply(session, channel, commit_ok)

        broker.after_commit(reply)
    else:
        _reply(session, channel, commit_ok)


@handles(90, 30)
def tx_rollback(session: Session, channel: Channel, payload: bytes) -> None:
    if channel.tx is None:
        raise errors.PreconditionFailed("channel is not transactional")
    channel.tx = []
    _reply(session, channel, method_codec.make_method(commands.Tx.RollbackOk))


__all__ = ["HANDLERS", "Session", "generated_tag"]
