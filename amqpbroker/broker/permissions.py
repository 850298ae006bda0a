"""Which permission (and which resource limit) each channel method needs, checked
before the method runs.

RabbitMQ's rabbit_channel checks permissions at the top of each method, before it looks
anything up, so a refused user learns nothing about what exists (403 even for a queue
that is not there).  The table below follows rabbit_channel 3.10, checked against a real
broker for every method and permission combination:

========================  ============================================================
queue.declare             configure on the queue (not passive; also server-named
                          ``amq.gen-*`` names); a new queue with a dead-letter exchange
                          also needs read on the queue and write on that exchange
queue.delete              configure on the queue
queue.bind / unbind       write on the queue, then read on the exchange
queue.purge               read on the queue
exchange.declare          configure on the exchange (not passive); a new one with an
                          alternate exchange also needs read on it and write on the AE
exchange.delete           configure on the exchange
exchange.bind / unbind    write on the destination, then read on the source
basic.consume / get       read on the queue
basic.publish             write on the exchange (the default one is "amq.default")
========================  ============================================================

Checks RabbitMQ makes *before* a permission check (an unknown exchange type, the
``amq.`` prefix of a new queue, the default exchange, a reused consumer tag, a missing
last-declared queue) are left to the method itself: where one of them applies the
permission check is skipped here, so the client sees the same error as from RabbitMQ.

The resource limits RabbitMQ checks in the same handlers are checked here too, at the
same point: queues per vhost (a new queue, after configure and before the dead-letter
checks: 406) and consumers per channel (before the read check: 530).

Topic permissions (RabbitMQ's per-routing-key ``write``/``read`` on topic exchanges) are
not implemented: with none set, RabbitMQ allows everything too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import errors
from ..auth.users import CONFIGURE, READ, WRITE, Permission, UserDB
from ..config import Settings
from ..protocol import basic_codec, method_codec
from .exchanges import EXCHANGE_TYPES

if TYPE_CHECKING:
    from .channel import Channel
    from .vhost import VirtualHost


class Node(Protocol):
    """What the checks read of the broker (broker/broker.py's Broker)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def users(self) -> UserDB: ...


class Session(Protocol):
    """The connection a method runs for, as the checks see it (broker/session.py's
    Session; the broker's domain never imports it)."""

    # The user database generation at which the user was last seen unrestricted in
    # the vhost (check_publish), -1: not known to be.
    unrestricted_at: int

    @property
    def broker(self) -> Node: ...

    @property
    def vhost(self) -> VirtualHost | None: ...

    @property
    def user(self) -> str | None: ...


# Direct reply-to's pseudo-queue: consuming from it needs no permission (RabbitMQ).
_REPLY_TO = "amq.rabbitmq.reply-to"
_DEAD_LETTER_EXCHANGE = "x-dead-letter-exchange"
_ALTERNATE_EXCHANGE = "alternate-exchange"


class _Access:
    """One session's rights and limits in its vhost, for the checks of one method."""

    __slots__ = ("behaviour", "permission", "settings", "user", "vhost")

    def __init__(self, session: Session, permission: Permission | None) -> None:
        assert session.vhost is not None
        self.vhost = session.vhost
        self.user = session.user or ""
        self.permission = permission
        self.settings = session.broker.settings
        self.behaviour = session.broker.settings.behaviour

    def require(self, what: str, kind: str, name: str) -> None:
        permission = self.permission
        if permission is not None and permission.unrestricted:
            return
        if kind == "exchange" and not name:
            # rabbit_access_control checks the default exchange under this name.
            name = "amq.default"
        if permission is None or not permission.allows(what, name):
            raise errors.AccessRefused(
                f"access to {kind} '{name}' in vhost '{self.vhost.name}' "
                f"refused for user '{self.user}'"
            )

    def require_any(self, kind: str, name: str) -> None:
        """Any of read, write or configure: what a 4.3 passive declare needs; the
        refusal names configure, as a regular declare's would (rabbit_channel's
        check_any_resource_access_permitted)."""
        permission = self.permission
        if permission is not None and any(permission.allows(what, name) for what in (READ, WRITE)):
            return
        self.require(CONFIGURE, kind, name)


def _permission(session: Session) -> Permission | None:
    # Looked up on every check, not cached per connection: a change (or a revocation)
    # applies to open connections from their next operation.
    assert session.vhost is not None
    return session.broker.users.permission(session.user or "", session.vhost.name)


def check_method(session: Session, channel: Channel, key: int, payload: bytes) -> None:
    """Raise 403 ACCESS_REFUSED if the session may not run this method, or the error
    of a resource limit it would exceed."""
    check = CHECKS.get(key)
    if check is None:
        return
    permission = _permission(session)
    if permission is not None and permission.unrestricted and not _limited(session, key):
        return  # the common case costs one lookup, no decoding
    check(_Access(session, permission), channel, method_codec.decode_method(payload))


def _limited(session: Session, key: int) -> bool:
    settings = session.broker.settings
    if key == _QUEUE_DECLARE:
        return bool(settings.max_queues_per_vhost)
    if key == _BASIC_CONSUME:
        return bool(settings.max_consumers_per_channel)
    return False


def check_publish(session: Session, method_payload: bytes) -> None:
    """basic.publish: write on the exchange, before the exchange is looked up.

    Hot path: an unrestricted user's connection remembers that it is, until the user
    database changes (one comparison per publish); the publish fields are decoded (and
    cached by the codec) only for restricted users."""
    generation = session.broker.users.generation
    if session.unrestricted_at == generation:
        return
    permission = _permission(session)
    if permission is not None and permission.unrestricted:
        session.unrestricted_at = generation
        return
    exchange, _key, _mandatory, immediate = basic_codec.decode_publish(method_payload)
    if immediate:
        return  # 540 NOT_IMPLEMENTED comes first in RabbitMQ
    _Access(session, permission).require(WRITE, "exchange", exchange)


class Principal:
    """A user acting in a vhost without a client connection of its own (the
    management API's publish): the :class:`Session` the checks take."""

    __slots__ = ("broker", "unrestricted_at", "user", "vhost")

    def __init__(self, broker: Node, vhost: VirtualHost, user: str) -> None:
        self.broker = broker
        self.vhost: VirtualHost | None = vhost
        self.user: str | None = user
        self.unrestricted_at = -1


def check_write(session: Session, exchange: str) -> None:
    """Publishing to ``exchange`` (check_publish without a method frame)."""
    _Access(session, _permission(session)).require(WRITE, "exchange", exchange)


def check_server_named(owner: Session | None, name: str, arguments: dict[str, Any]) -> None:
    """queue.declare of a server-named queue: RabbitMQ checks ``configure`` on the
    generated name (the vhost calls this once it has drawn the name)."""
    if owner is None or owner.vhost is None:
        return  # not a client connection (embedding or management code)
    permission = _permission(owner)
    if permission is not None and permission.unrestricted and not _limited(owner, _QUEUE_DECLARE):
        return
    access = _Access(owner, permission)
    access.require(CONFIGURE, "queue", name)
    _check_queue_limit(access, name)
    _check_dead_letter_exchange(access, name, arguments)


# ------------------------------------------------------------------ per method


def _last_queue(channel: Channel, name: str) -> str | None:
    return name or channel.last_queue


def _check_queue_limit(access: _Access, queue: str) -> None:
    limit = access.settings.max_queues_per_vhost
    if limit and len(access.vhost.queues) >= limit:
        # RabbitMQ 3.10's text for its vhost limit max-queues (checked on a real broker).
        raise errors.PreconditionFailed(
            f"cannot declare queue '{queue}': queue limit in vhost '{access.vhost.name}' "
            f"({limit}) is reached"
        )


def _check_dead_letter_exchange(access: _Access, queue: str, arguments: dict[str, Any]) -> None:
    dlx = (arguments or {}).get(_DEAD_LETTER_EXCHANGE)
    if isinstance(dlx, bytes):
        dlx = dlx.decode("utf-8", "replace")
    if isinstance(dlx, str):
        access.require(READ, "queue", queue)
        access.require(WRITE, "exchange", dlx)


def _queue_declare(access: _Access, channel: Channel, m: Any) -> None:
    name = m.queue
    # Passive declares are not checked before 4.3 (then: any permission); "" is
    # checked once named (check_server_named); "amq.*" fails first on its reserved
    # prefix.
    if m.passive:
        if name and access.behaviour.passive_declare_needs_access:
            access.require_any("queue", name)
        return
    if not name or name.startswith("amq."):
        return
    access.require(CONFIGURE, "queue", name)
    if name not in access.vhost.queues:
        _check_queue_limit(access, name)
        _check_dead_letter_exchange(access, name, m.arguments)


def _queue_delete(access: _Access, channel: Channel, m: Any) -> None:
    name = _last_queue(channel, m.queue)
    if name is not None:
        access.require(CONFIGURE, "queue", name)


def _queue_binding(access: _Access, channel: Channel, m: Any) -> None:
    name = _last_queue(channel, m.queue)
    if name is None:
        return  # 404 no previously declared queue
    access.require(WRITE, "queue", name)
    if m.exchange:  # the default exchange: 403 operation not permitted, from the method
        access.require(READ, "exchange", m.exchange)


def _queue_read(access: _Access, channel: Channel, m: Any) -> None:
    name = _last_queue(channel, m.queue)
    if name is not None:
        access.require(READ, "queue", name)


def _basic_consume(access: _Access, channel: Channel, m: Any) -> None:
    if m.consumer_tag and m.consumer_tag in channel.consumers:
        return  # 530 attempt to reuse consumer tag comes first
    limit = access.settings.max_consumers_per_channel
    if limit and len(channel.consumers) >= limit:
        # RabbitMQ's consumer_max_per_channel (3.12+): a connection error.
        raise errors.NotAllowed(f"reached maximum ({limit}) of consumers per channel")
    if m.queue == _REPLY_TO:
        return  # direct reply-to is open to every user, as in RabbitMQ
    _queue_read(access, channel, m)


def _exchange_declare(access: _Access, channel: Channel, m: Any) -> None:
    name = m.exchange
    if m.passive:
        if name and access.behaviour.passive_declare_needs_access:
            access.require_any("exchange", name)
        return
    if not name or m.exchange_type not in EXCHANGE_TYPES:
        return
    access.require(CONFIGURE, "exchange", name)
    if name in access.vhost.exchanges or name.startswith("amq."):
        return
    ae = (m.arguments or {}).get(_ALTERNATE_EXCHANGE)
    if isinstance(ae, bytes):
        ae = ae.decode("utf-8", "replace")
    if isinstance(ae, str):
        access.require(READ, "exchange", name)
        access.require(WRITE, "exchange", ae)


def _exchange_delete(access: _Access, channel: Channel, m: Any) -> None:
    name = m.exchange
    if name and not name.startswith("amq."):
        access.require(CONFIGURE, "exchange", name)


def _exchange_binding(access: _Access, channel: Channel, m: Any) -> None:
    access.require(WRITE, "exchange", m.destination)
    if m.destination and m.source:
        access.require(READ, "exchange", m.source)


_Check = Callable[[_Access, "Channel", Any], None]


def _k(class_id: int, method_id: int) -> int:
    return (class_id << 16) | method_id


_QUEUE_DECLARE = _k(50, 10)
_BASIC_CONSUME = _k(60, 20)

# Method key (as methods.HANDLERS) -> its check; methods not here need no permission.
CHECKS: dict[int, _Check] = {
    _k(50, 10): _queue_declare,
    _k(50, 20): _queue_binding,  # queue.bind
    _k(50, 50): _queue_binding,  # queue.unbind
    _k(50, 30): _queue_read,  # queue.purge
    _k(50, 40): _queue_delete,
    _k(40, 10): _exchange_declare,
    _k(40, 20): _exchange_delete,
    _k(40, 30): _exchange_binding,  # exchange.bind
    _k(40, 40): _exchange_binding,  # exchange.unbind
    _k(60, 20): _basic_consume,
    _k(60, 70): _queue_read,  # basic.get
}
