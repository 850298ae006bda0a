"""One client connection as the broker sees it (RabbitMQ's rabbit_reader + rabbit_channel).

The session implements the protocol's :class:`~amqpbroker.protocol.connection.Handler`:
the sans-IO :class:`AMQPConnection` turns bytes into calls here, and this object
turns them into broker operations.  It is the top of ``broker/``: nothing there imports
it; the domain reaches it through the interfaces of :mod:`.ports` it implements (the
channels' :class:`~.ports.Outbox`, the broker's :class:`~.ports.Connection`).  Its
output goes into the protocol's output list; the I/O layer (``server``) is told through
``wake`` that there is something to send.

Backpressure: when more than ``HIGH_WATER`` bytes of deliveries wait unsent, the
session stops taking deliveries (consumers report no room) until the writer has
drained the buffer and calls :meth:`drained`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import errors
from ..protocol import basic_codec, method_codec, reader
from ..protocol.connection import AMQPConnection
from ..protocol.reader import FIRST, OTHER
from . import methods, permissions, publish
from .channel import Channel
from .header_order import HEADERS_FLAG, HeaderOrder
from .message import Message
from .publish_checks import PublishCache
from .queue import Queue
from .vhost import VirtualHost

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger("amqpbroker.connection")

# Stop delivering to a connection with this much unsent output; a slow consumer
# then holds messages in its queue instead of growing our buffer without bound.
HIGH_WATER = 4 * 1024 * 1024


def _noop() -> None:
    pass


class Session:
    def __init__(
        self,
        broker: Broker,
        peer: str = "",
        *,
        now: float = 0.0,
        cert_user: str | None = None,
    ) -> None:
        self.broker = broker
        self.peer = peer
        # The user name a verified TLS client certificate gives: EXTERNAL is offered
        # only then (as RabbitMQ's rabbitmq_auth_mechanism_ssl).
        self.cert_user = cert_user
        # The user database generation at which this connection's user was last seen
        # unrestricted in its vhost (permissions.check_publish), -1: not known to be.
        self.unrestricted_at = -1
        settings = broker.settings
        # The RabbitMQ release this broker behaves as (versions.py).
        self.behaviour = behaviour = broker.behaviour
        # SASL mechanisms offered (the release's default auth_mechanisms).
        mechanisms = behaviour.mechanisms
        self.proto = AMQPConnection(
            self,
            channel_max=settings.channel_max,
            frame_max=settings.frame_max,
            heartbeat=settings.heartbeat,
            max_message_size=settings.message_size_limit,
            information=f"amqpbroker {broker.version}",
            now=now,
            mechanisms=mechanisms if cert_user is None else (*mechanisms, "EXTERNAL"),
            behaviour=behaviour,
        )
        self.channels: dict[int, Channel] = {}
        self.vhost: VirtualHost | None = None
        self.user: str | None = None
        self.writable = True
        self.out_size = 0
        self.wake: Callable[[], None] = _noop
        # Set by the server: cut the connection, TCP reset and no close frame
        # (broker/faults.py's kill_connections).
        self.abort: Callable[[], None] = _noop
        self.exclusive_queues: set[Queue] = set()
        # Channels with confirms to flush once the current batch of input is done.
        self.dirty: set[Channel] = set()
        # Resource alarms: this connection has published (so it is blocked while an
        # alarm is raised), and it has been sent connection.blocked.
        self.published = False
        self.told_blocked = False
        # What the publish path decoded and checked, reused while publishes repeat
        # (publish_checks.py); made at connection.open, for the vhost and user.
        self.publish_cache: PublishCache
        # Headers tables are delivered in key order (4.x): the last verdict on a
        # publisher's headers (header_order.py); None when the release forwards them.
        self.header_order = HeaderOrder() if behaviour.sorted_header_tables else None
        # For the management API and metrics: when the connection came, and bytes
        # read / written (counted by the server per socket read / send, not per frame).
        self.connected_at = time.time()
        self.recv_oct = 0
        self.send_oct = 0

    # ------------------------------------------------------------- I/O facing

    def receive_data(self, data: bytes | bytearray, now: float = 0.0) -> None:
        """Handle the peer's bytes; ``proto.input_pending`` says whether some wait for
        another call (a time slice ran out: see AMQPConnection.time_slice)."""
        self.proto.receive_data(data, now)
        if self.dirty:
            # One multiple-ack per channel per batch of input, not one per publish.
            for channel in self.dirty:
                channel.flush_confirms()
            self.dirty.clear()
        store = self.broker.store
        if store is not None and store.has_pending():
            self.broker.request_commit()
        if self.proto.out:
            self.wake()

    def drained(self) -> None:
        """The writer sent everything: accept deliveries again."""
        self.out_size = 0
        if not self.writable:
            self.writable = True
            for channel in list(self.channels.values()):
                channel.resume()

    # ------------------------------------------------------------ ports.Outbox

    @property
    def frame_max(self) -> int:
        return self.proto.frame_max

    def write(self, data: bytes) -> None:
        # Hot path: once per delivery (Channel.deliver).
        self.proto.out.append(data)
        size = self.out_size = self.out_size + len(data)
        if size > HIGH_WATER:
            self.writable = False
        self.wake()

    def send(self, data: bytes) -> None:
        self.proto.out.append(data)
        self.wake()

    def wants(self, capability: str) -> bool:
        return self.proto.wants(capability)

    def close_channel(self, number: int, error: errors.AMQPError) -> None:
        self.proto.close_channel(number, error)
        self.wake()

    def flush_confirms_later(self, channel: Channel) -> None:
        self.dirty.add(channel)

    def send_method(self, channel: int, method: Any) -> None:
        self.proto.out.append(method_codec.encode_method(channel, method))
        self.wake()

    def write_content(self, method_frame: bytes, channel: int, message: Message) -> None:
        """A method frame with content (deliver, get-ok, return) and its frames."""
        out = self.proto.out
        out.append(method_frame)
        out.extend(
            basic_codec.encode_content(channel, message.header, message.body, self.proto.frame_max)
        )
        self.out_size += len(message.body) + len(message.header) + 64
        if self.out_size > HIGH_WATER:
            self.writable = False
        self.wake()

    # ---------------------------------------------------- protocol.Handler

    def authenticate(self, mechanism: str, response: bytes) -> str | None:
        # Refusals are logged by the broker, with the reason and never the password.
        return self.broker.authenticate(mechanism, response, self.peer, cert_user=self.cert_user)

    def open_vhost(self, user: str, vhost: str) -> None:
        limit = self.broker.settings.max_connections
        if limit and sum(1 for s in self.broker.sessions if s.vhost is not None) >= limit:
            # RabbitMQ's text for its connection_max (3.12+); 3.10 only stops accepting.
            log.warning("connection %s refused: node connection limit (%d)", self.peer, limit)
            raise errors.NotAllowed(
                f"connection refused: node connection limit ({limit}) is reached"
            )
        host = self.broker.vhosts.get(vhost)
        if host is None:
            raise errors.NotAllowed(f"vhost {vhost} not found")
        # Any permission record, even three empty patterns, grants access (RabbitMQ).
        if self.broker.users.permission(user, vhost) is None:
            log.warning("connection %s: user '%s' may not use vhost '%s'", self.peer, user, vhost)
            raise errors.NotAllowed(f"access to vhost '{vhost}' refused for user '{user}'")
        self.vhost = host
        self.user = user
        self.publish_cache = PublishCache(host, user)
        self.broker.totals.connections_opened += 1
        log.info("connection %s opened: user '%s', vhost '%s'", self.peer, user, vhost)

    def on_channel_open(self, channel: int) -> None:
        assert self.vhost is not None  # channel.open is refused before connection.open
        ch = self.channels[channel] = Channel(self, channel, self.vhost)
        frame_max = self.proto.frame_max
        if not frame_max or frame_max >= reader.CONTENT_FRAME_MAX:
            ch.content_number = channel
        self.broker.totals.channels_opened += 1

    def on_channel_closed(self, channel: int) -> None:
        ch = self.channels.pop(channel, None)
        if ch is not None:
            self.dirty.discard(ch)
            ch.close()
            self.broker.totals.channel_closed(ch)

    def on_method(self, channel: int, key: int, payload: bytes) -> None:
        handler = methods.HANDLERS.get(key)
        if handler is None:
            # RabbitMQ's text (rabbit_channel's catch-all), e.g. for connection.update-secret
            # on a channel; the ids name the method.
            raise errors.CommandInvalid(
                "unimplemented method", class_id=key >> 16, method_id=key & 0xFFFF
            )
        ch = self.channels[channel]
        permissions.check_method(self, ch, key, payload)
        handler(self, ch, payload)

    def on_publish(
        self,
        channel: int,
        method_payload: bytes,
        header: bytes,
        body: bytes | None,
        content: bytes | None = None,
        repeats: Sequence[bytes] = (),
        repeat: int = OTHER,
    ) -> None:
        # The decoded method is kept for the reader's last FIRST publish, updated
        # before anything below can fail: a SAME_* one never reuses another's fields.
        cache = self.publish_cache
        if repeat > FIRST:  # SAME_METHOD or SAME_HEADER
            fields = cache.fields  # no decode, not even a cache lookup
            if fields is None:
                fields = basic_codec.decode_publish(method_payload)
        elif repeat == FIRST:
            cache.fields = None
            fields = cache.fields = basic_codec.decode_publish(method_payload)
        else:
            fields = basic_codec.decode_publish(method_payload)
        if not self.published:
            self.published = True
            if self.broker.alarms.blocking:
                self.broker.alarms.notify_blocked(self)
        if self.unrestricted_at != self.broker.users.generation:
            permissions.check_publish(self, method_payload)
        ch = self.channels[channel]
        ch.published += 1 + len(repeats)  # metrics: the one increment per message
        if fields[3]:  # immediate
            raise errors.NotImplemented_("immediate=true", class_id=60, method_id=40)
        if header[12] & HEADERS_FLAG and self.header_order is not None:
            resorted = self.header_order.resorted(header)
            if resorted is not None:
                # Rare: a 4.x broker delivers the headers in key order, and these were
                # not; the publisher's frames no longer match, so each message goes
                # on with its body alone.
                if body is None:
                    assert content is not None
                    body = reader.content_body(header, content)
                bodies = [body, *(reader.content_body(header, more) for more in repeats)]
                for each in bodies:
                    self._publish(ch, fields, resorted, each)
                return
        self._publish(ch, fields, header, body, content, repeats)

    def _publish(
        self,
        ch: Channel,
        fields: tuple[str, str, bool, bool],
        header: bytes,
        body: bytes | None,
        content: bytes | None = None,
        repeats: Sequence[bytes] = (),
    ) -> None:
        exchange, routing_key, mandatory, _immediate = fields
        cache = self.publish_cache
        if ch.tx is not None:
            if body is None:
                assert content is not None
                body = reader.content_body(header, content)
            bodies = [body, *(reader.content_body(header, more) for more in repeats)]
            for body in bodies:
                publish.publish_in_tx(
                    self.broker, cache, ch, exchange, routing_key, mandatory, header, body
                )
            return
        publish.route_publish(
            self.broker, cache, ch, exchange, routing_key, mandatory, header, body, content, repeats
        )

    @property
    def read_paused(self) -> bool:
        """A publishing connection is not read while a resource alarm is raised."""
        return self.published and self.broker.alarms.blocking

    def on_connection_closed(self) -> None:
        for channel in list(self.channels):
            self.on_channel_closed(channel)
        vhost = self.vhost
        if vhost is not None:
            for queue in list(self.exclusive_queues):
                vhost.remove_queue(queue)
        self.exclusive_queues.clear()
        self.broker.sessions.discard(self)
        if self.vhost is not None:
            self.broker.totals.connections_closed += 1
        log.info(
            "connection %s closed%s",
            self.peer,
            f": {self.proto.close_reason}" if self.proto.close_reason else "",
        )

    # ------------------------------------------------------------- helpers

    def force_close(
        self, text: str = "broker forced connection closure with reason 'shutdown'"
    ) -> None:
        self.proto.close_connection(errors.ConnectionForced(text))
        self.wake()


def client_sessions(broker: Broker) -> list[Session]:
    """The broker's open connections as sessions, for code above the domain
    (management) that reads more of them than :class:`~.ports.Connection` says."""
    return [session for session in broker.sessions if isinstance(session, Session)]


def session_of(channel: Channel) -> Session:
    """The session a channel writes to (its :class:`~.ports.Outbox`)."""
    outbox = channel.outbox
    assert isinstance(outbox, Session)
    return outbox
