"""Sans-IO AMQP 0-9-1 connection: bytes in, frames out, no sockets, no event loop.

This object owns everything the wire protocol decides on its own: the protocol
header, the start / tune / open handshake (its rules in handshake.py), the channel
table (open, closing, closed; content assembly per channel in channel.py),
heartbeat bookkeeping with time passed in, and the one place where an
:class:`AMQPError` becomes ``channel.close`` or ``connection.close``.

What a frame *means* to the broker is decided by a :class:`Handler` (the broker
session), called synchronously: ``receive_data()`` parses and dispatches frame by
frame, so a channel closed by the handler while handling frame N already drops
frame N+1 on that channel.

Outgoing bytes accumulate in ``self.out`` (a list of ``bytes``): the I/O layer
joins and sends them in one write per round (output.py; see PERFORMANCE-NOTES:
one ``send_all`` per batch, never one per frame).

Error handling: protocol violations raise inside ``receive_data()`` only as
:class:`AMQPError` and are turned into close frames here.

Closing (as RabbitMQ's rabbit_reader): once connection.close or close-ok is out,
``closing`` is true; every frame but close / close-ok is dropped from then on. The
I/O layer flushes ``out`` and keeps reading (what it reads is dropped) until
``closed`` (our close-ok'd, or a handshake failure that just closes), until the
peer closes its side (after our close-ok, phase DRAINING), or until
``closing_timeout`` has passed; only then does it close the socket, so a client still
writing publishes it queued before its close reads close-ok instead of a reset.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pamqp import commands

from .. import errors
from ..versions import DEFAULT_BEHAVIOUR, Behaviour
from . import framing, handshake, method_codec, output
from .channel import ChannelState
from .handshake import CHANNEL_MAX, FRAME_MAX, HEARTBEAT, Phase
from .reader import OTHER, SAME_METHOD, FrameReader

log = logging.getLogger("amqpbroker.protocol")

# Method keys ((class_id << 16) | method_id) the connection handles itself.
_CONNECTION_START_OK = 0x000A000B
_CONNECTION_SECURE_OK = 0x000A0015
_CONNECTION_TUNE_OK = 0x000A001F
_CONNECTION_OPEN = 0x000A0028
_CONNECTION_CLOSE = 0x000A0032
_CONNECTION_CLOSE_OK = 0x000A0033
_CONNECTION_BLOCKED = 0x000A003C
_CONNECTION_UNBLOCKED = 0x000A003D
_CONNECTION_UPDATE_SECRET = 0x000A0046
_CHANNEL_OPEN = 0x0014000A
_CHANNEL_CLOSE = 0x00140028
_CHANNEL_CLOSE_OK = 0x00140029
_BASIC_PUBLISH = 0x003C0028

# RabbitMQ's ?CLOSING_TIMEOUT (rabbit_reader), seconds: how long a closing connection's
# socket stays open for the peer's close-ok or its closing of the socket.
CLOSING_TIMEOUT = 30.0
# Phases in which the broker is done with the connection (everything read is dropped).
_DROPPING = frozenset((Phase.DRAINING, Phase.CLOSED))
# Phases from the first close frame on.
_ENDING = frozenset((Phase.CLOSING, Phase.DRAINING, Phase.CLOSED))


class Handler(Protocol):
    """What the broker session provides to the protocol connection."""

    def authenticate(self, mechanism: str, response: bytes) -> str | None:
        """Return the user name for valid credentials, None to refuse the login."""

    def open_vhost(self, user: str, vhost: str) -> None:
        """Attach to ``vhost`` or raise an AMQPConnectionError (530)."""

    def on_channel_open(self, channel: int) -> None: ...

    def on_channel_closed(self, channel: int) -> None:
        """The channel is gone (closed by either side): requeue, cancel consumers."""

    def on_method(self, channel: int, key: int, payload: bytes) -> None:
        """A channel method other than channel.open/close/close-ok and basic.publish."""

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
        """A complete basic.publish (method payload, content header payload, body).
        ``content``, when given, is the header and body frames as received on
        ``channel`` (header and body in one frame each, flag bits clean), and
        ``body`` may be None: it is the one in ``content`` (reader.content_body).
        Each of ``repeats`` is the content of one more publish that followed it on
        the channel with the same method and header payloads.  ``repeat``: how it
        relates to the last publish handed here from the frame reader's fast path
        (reader.FIRST, SAME_METHOD, SAME_HEADER), or OTHER: to none."""

    def on_connection_closed(self) -> None:
        """The connection is over (close handshake done or transport lost)."""


class AMQPConnection:
    """One client connection's protocol state. See the module docstring."""

    def __init__(
        self,
        handler: Handler,
        *,
        channel_max: int = CHANNEL_MAX,
        frame_max: int = FRAME_MAX,
        heartbeat: int = HEARTBEAT,
        max_message_size: int = 128 * 1024 * 1024,
        product: str = "RabbitMQ",
        information: str = "",
        now: float = 0.0,
        mechanisms: tuple[str, ...] | None = None,
        behaviour: Behaviour = DEFAULT_BEHAVIOUR,
    ) -> None:
        self.handler = handler
        # The RabbitMQ release we answer as (versions.py): its version, mechanisms,
        # protocol header refusal and minimum frame size.
        self.behaviour = behaviour
        # Offered in connection.start; any other choice in start-ok is refused.
        self.mechanisms = behaviour.mechanisms if mechanisms is None else mechanisms
        self.phase = Phase.AWAIT_HEADER
        # Before tune-ok nothing may be bigger than the minimum frame (a pre-auth limit:
        # an unauthenticated peer cannot make us buffer 128 KiB frames).
        self.reader = FrameReader(behaviour.frame_min_size)
        self.out: list[bytes] = []
        self.server_channel_max = channel_max
        self.server_frame_max = frame_max
        self.server_heartbeat = heartbeat
        self.max_message_size = max_message_size
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = 0
        self.channels: dict[int, ChannelState] = {}
        self.user: str | None = None
        self.vhost: str | None = None
        self.client_properties: dict[str, Any] = {}
        self.client_capabilities: dict[str, Any] = {}
        self.close_reason: str | None = None
        self.last_received = now
        self.last_sent = now
        self._server_properties = handshake.server_properties(
            product, behaviour.full_version, information
        )
        self._header_buf = b""
        # Fairness: with a time slice set (the server sets one), receive_data stops handling
        # frames once a slow frame (a durable declare's fsync, say) took the slice past it,
        # and leaves the rest buffered with ``input_pending`` set; the caller lets the
        # other connections run, then calls receive_data(b"") to go on.
        self.time_slice: float | None = None
        self.clock: Callable[[], float] = time.perf_counter
        self.input_pending = False

    # ------------------------------------------------------------------ output

    def send_method(self, channel: int, method: Any) -> None:
        self.out.append(method_codec.encode_method(channel, method))

    def take_output(self) -> bytes:
        """Everything queued for the peer, joined; empties the queue."""
        return output.take_output(self.out)

    def take_buffers(self) -> list[bytes]:
        """Everything queued for the peer, as buffers for one ``sendmsg`` (see
        output.take_buffers); empties the queue."""
        return output.take_buffers(self.out)

    @property
    def closing(self) -> bool:
        return self.phase in _ENDING

    @property
    def closing_timeout(self) -> float:
        """Seconds the peer has, once closing started, to answer close-ok or close its
        side before the socket is closed anyway: RabbitMQ's 30, or the negotiated
        heartbeat when shorter (rabbit_reader:close_connection)."""
        if 0 < self.heartbeat < CLOSING_TIMEOUT:
            return float(self.heartbeat)
        return CLOSING_TIMEOUT

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def wants(self, capability: str) -> bool:
        return bool(self.client_capabilities.get(capability))

    # ------------------------------------------------------------------- input

    def receive_data(self, data: bytes | bytearray, now: float = 0.0) -> None:
        """Feed bytes from the peer; frames are handled as soon as complete."""
        self.last_received = now
        # Read once into a local: narrowing self.phase here would let a type checker
        # assume the loop below (whose handlers change the phase) never sees CLOSED.
        phase = self.phase
        if phase in _DROPPING:
            return
        if phase is Phase.AWAIT_HEADER:
            data = self._receive_header(data)
            if not data:
                return
        reader = self.reader
        reader.feed(data)
        channels = self.channels
        max_body = self.max_message_size
        on_publish = self.handler.on_publish
        self.input_pending = False
        clock = self.clock
        slice_end = math.inf if self.time_slice is None else clock() + self.time_slice
        try:
            while self.phase not in _DROPPING:
                publish = reader.next_publish(max_body)
                if publish is not None:
                    # Hot path: a whole small publish. Channels exist only while the
                    # connection is open; one awaiting content, or closing, must see
                    # these frames one by one (errors, or dropped).
                    channel, method, header, content, repeat = publish
                    ch = channels.get(channel)
                    if ch is not None and ch.publish is None and not ch.closing:
                        # self._publish written out (once per message). A publish
                        # with another header than the last: none repeat it whole.
                        repeats = reader.next_repeats(max_body) if repeat != SAME_METHOD else ()
                        try:
                            on_publish(channel, method, header, None, content, repeats, repeat)
                        except errors.AMQPError as exc:
                            if not exc.class_id:
                                exc.class_id, exc.method_id = 60, 40
                            self.close_channel(channel, exc)
                        continue
                    reader.unread(len(method) + len(content) + 8)
                frame = reader.next_frame()
                if frame is None:
                    break
                self._handle_frame(*frame)
                # Only after frames off the publish fast path: those are where one frame
                # can take long (schema writes, purges); a buffer of publishes is bounded.
                if clock() > slice_end and reader.buffered:
                    self.input_pending = True
                    break
        except errors.AMQPError as exc:
            # Anything not caught per channel below is a connection-level failure.
            self.close_connection(exc)
        except Exception as exc:
            # A bug of ours must cost this connection, never the broker: 541, as
            # RabbitMQ answers when a channel process crashes.
            log.exception("internal error on a connection")
            self.close_connection(errors.InternalError(f"{type(exc).__name__}: {exc}"))

    def _receive_header(self, data: bytes | bytearray) -> bytes:
        buf = self._header_buf + data
        if len(buf) < 8:
            self._header_buf = buf
            return b""
        header, rest = buf[:8], buf[8:]
        self._header_buf = b""
        # RabbitMQ also accepts the 0-9-1 header some old clients send as "AMQP\x01\x01\x00\x09".
        if header not in (framing.PROTOCOL_HEADER, b"AMQP\x01\x01\x00\x09"):
            self.out.append(self.behaviour.refusal_header(bytes(header)))
            self.close_reason = "bad protocol header"
            self.phase = Phase.CLOSED
            return b""
        self.phase = Phase.AWAIT_START_OK
        self.send_method(
            0,
            method_codec.make_method(
                commands.Connection.Start,
                version_major=0,
                version_minor=9,
                server_properties=self._server_properties,
                mechanisms=" ".join(self.mechanisms),
                locales="en_US",
            ),
        )
        return rest

    def _handle_frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        if frame_type == framing.FRAME_HEARTBEAT:
            if channel != 0:
                # RabbitMQ 3.10's text for it, checked against a real broker.
                raise errors.UnexpectedFrame("type 8, all octets = <<>>")
            return
        if self.phase is not Phase.OPEN:
            self._handle_handshake_frame(frame_type, channel, payload)
            return
        if channel == 0:
            if frame_type != framing.FRAME_METHOD:
                raise errors.UnexpectedFrame(f"unexpected frame type {frame_type} on channel 0")
            self._handle_connection_method(payload)
            return
        ch = self.channels.get(channel)
        if ch is None:
            self._handle_unopened_channel(frame_type, channel, payload)
            return
        if ch.closing:
            # Everything but close / close-ok is dropped until the peer confirms.
            if frame_type == framing.FRAME_METHOD:
                key = framing.method_key(payload)
                if key == _CHANNEL_CLOSE_OK:
                    del self.channels[channel]
                elif key == _CHANNEL_CLOSE:
                    self.send_method(channel, method_codec.make_method(commands.Channel.CloseOk))
            return
        if frame_type == framing.FRAME_METHOD:
            if ch.publish is not None:
                raise ch.method_during_content()
            self._handle_channel_method(channel, ch, payload)
        elif frame_type == framing.FRAME_HEADER:
            try:
                complete = ch.content_header(payload, self.max_message_size)
            except errors.ChannelError as exc:
                # A body over max_message_size fails the channel, not the connection.
                self.close_channel(channel, exc)
                return
            if complete:
                self._publish(channel, *ch.take_content())
        elif frame_type == framing.FRAME_BODY:
            if ch.content_body(payload):
                self._publish(channel, *ch.take_content())
        else:  # pragma: no cover - the reader refuses unknown frame types
            raise errors.FrameError(f"unknown frame type {frame_type}")

    def _handle_unopened_channel(self, frame_type: int, channel: int, payload: bytes) -> None:
        if frame_type != framing.FRAME_METHOD:
            raise errors.UnexpectedFrame("expected method frame, got non method frame instead")
        key = framing.method_key(payload)
        if key != _CHANNEL_OPEN:
            # Even channel.close / close-ok: RabbitMQ 3.10 answers both with this 504.
            raise errors.ChannelErrorCode(
                "expected 'channel.open'", class_id=key >> 16, method_id=key & 0xFFFF
            )
        # channel_max limits how many channels are open, not their numbers: RabbitMQ
        # opens channel 3000 under channel_max 2047, and refuses the 2048th channel.
        if self.channel_max and len(self.channels) >= self.channel_max:
            raise errors.NotAllowed(
                f"number of channels opened ({len(self.channels)}) has reached the "
                f"negotiated channel_max ({self.channel_max})"
            )
        self.channels[channel] = ChannelState()
        self.send_method(channel, method_codec.make_method(commands.Channel.OpenOk))
        self.handler.on_channel_open(channel)

    def _handle_channel_method(self, channel: int, ch: ChannelState, payload: bytes) -> None:
        key = framing.method_key(payload)
        if key == _BASIC_PUBLISH:
            # Content follows (whole small publishes take receive_data's fast path);
            # the method is only decoded once the message is whole.
            ch.publish = payload
            return
        if key == _CHANNEL_OPEN:
            raise errors.ChannelErrorCode("second 'channel.open' seen", class_id=20, method_id=10)
        if key == _CHANNEL_CLOSE:
            del self.channels[channel]
            self.send_method(channel, method_codec.make_method(commands.Channel.CloseOk))
            self.handler.on_channel_closed(channel)
            return
        if key == _CHANNEL_CLOSE_OK:
            return  # a stray close-ok for a channel we never closed: ignore, as RabbitMQ does
        try:
            self.handler.on_method(channel, key, payload)
        except errors.AMQPError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = key >> 16, key & 0xFFFF
            self.close_channel(channel, exc)

    def _publish(
        self, channel: int, method: bytes, header: bytes, body: bytes, content: bytes | None = None
    ) -> None:
        try:
            self.handler.on_publish(channel, method, header, body, content)
        except errors.AMQPError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = 60, 40
            self.close_channel(channel, exc)

    # ------------------------------------------------------------- handshake

    def _expect_method(self, frame_type: int, channel: int, payload: bytes) -> int:
        if frame_type != framing.FRAME_METHOD or channel != 0:
            raise errors.UnexpectedFrame(
                f"expected a connection method on channel 0 during the handshake "
                f"({self.phase.value})"
            )
        return framing.method_key(payload)

    def _handle_handshake_frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        if self.phase is Phase.CLOSING:
            if frame_type == framing.FRAME_METHOD and channel == 0:
                key = framing.method_key(payload)
                if key == _CONNECTION_CLOSE_OK:
                    self._finish(Phase.CLOSED)
                elif key == _CONNECTION_CLOSE:
                    self._reply_close_ok()
            return
        if self.phase is Phase.AWAIT_OPEN and (frame_type != framing.FRAME_METHOD or channel):
            # After tune-ok RabbitMQ's reader is "opening" and answers a frame for a
            # channel with this 505 (3.10.8 and 4.0.5 alike).
            raise errors.UnexpectedFrame(framing.frame_summary(frame_type, payload))
        key = self._expect_method(frame_type, channel, payload)
        if key == _CONNECTION_CLOSE:
            self._reply_close_ok()
            return
        if self.phase is Phase.AWAIT_START_OK and key == _CONNECTION_START_OK:
            self._on_start_ok(method_codec.decode_method(payload))
        elif self.phase is Phase.AWAIT_TUNE_OK and key == _CONNECTION_TUNE_OK:
            self._on_tune_ok(method_codec.decode_method(payload))
        elif self.phase is Phase.AWAIT_OPEN and key == _CONNECTION_OPEN:
            self._on_open(method_codec.decode_method(payload))
        elif self.phase is Phase.AWAIT_OPEN:
            # Any other method (update-secret, a second tune-ok, basic.qos on channel
            # 0): RabbitMQ's reader answers this 504 naming it (3.10.8 and 4.0.5).
            raise errors.ChannelErrorCode(
                "unexpected method in connection state opening",
                class_id=key >> 16,
                method_id=key & 0xFFFF,
            )
        else:
            raise errors.CommandInvalid(
                f"expected {self.phase.value}, got method {key >> 16}.{key & 0xFFFF}"
            )

    def _on_start_ok(self, method: Any) -> None:
        props = method.client_properties or {}
        self.client_properties = props
        caps = props.get("capabilities")
        self.client_capabilities = caps if isinstance(caps, dict) else {}
        mechanism = method.mechanism
        response = method.response
        if isinstance(response, str):
            response = response.encode("utf-8", "surrogateescape")
        if mechanism not in self.mechanisms:
            raise errors.CommandInvalid(f"unknown authentication mechanism '{mechanism}'")
        user = self.handler.authenticate(mechanism, response)
        if user is None:
            self.close_reason = handshake.login_refused_reason(mechanism, response)
            if self.wants("authentication_failure_close"):
                self.close_connection(
                    errors.AMQPConnectionError(
                        f"Login was refused using authentication mechanism {mechanism}. "
                        "For details see the broker logfile.",
                        reply_code=errors.ACCESS_REFUSED,
                    )
                )
            else:
                self.phase = Phase.CLOSED  # older clients expect the socket to just close
            return
        self.user = user
        self.phase = Phase.AWAIT_TUNE_OK
        self.send_method(
            0,
            method_codec.make_method(
                commands.Connection.Tune,
                channel_max=self.server_channel_max,
                frame_max=self.server_frame_max,
                heartbeat=self.server_heartbeat,
            ),
        )

    def _on_tune_ok(self, method: Any) -> None:
        self.channel_max, self.frame_max, self.heartbeat = handshake.negotiate_tune(
            method, self.server_channel_max, self.server_frame_max, self.behaviour.frame_min_size
        )
        self.reader.frame_max = self.frame_max
        self.phase = Phase.AWAIT_OPEN

    def _on_open(self, method: Any) -> None:
        assert self.user is not None
        vhost = method.virtual_host
        try:
            self.handler.open_vhost(self.user, vhost)
        except errors.AMQPError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = 10, 40  # connection.open, as RabbitMQ
            raise
        self.vhost = vhost
        self.phase = Phase.OPEN
        self.send_method(0, method_codec.make_method(commands.Connection.OpenOk))

    def _handle_connection_method(self, payload: bytes) -> None:
        key = framing.method_key(payload)
        if key == _CONNECTION_CLOSE:
            self._reply_close_ok()
        elif key == _CONNECTION_CLOSE_OK:
            self._finish(Phase.CLOSED)
        elif key in (_CONNECTION_BLOCKED, _CONNECTION_UNBLOCKED):
            pass  # client-sent blocked notifications carry no meaning for a server
        elif key == _CONNECTION_UPDATE_SECRET:
            # RabbitMQ asks the user's auth backends to refresh the credentials; its
            # internal backend (users like ours) has nothing that expires and accepts
            # any secret (rabbit_access_control:update_state skips backends whose
            # expiry_timestamp is never): update-secret-ok, as 3.10.8 and 4.0.5 answer.
            self.send_method(0, method_codec.make_method(commands.Connection.UpdateSecretOk))
        else:
            # RabbitMQ 3.10's answer to e.g. channel.open or queue.declare on channel 0.
            raise errors.ChannelErrorCode(
                "unexpected method in connection state running",
                class_id=key >> 16,
                method_id=key & 0xFFFF,
            )

    # ------------------------------------------------------------------ closing

    def close_channel(self, channel: int, exc: errors.AMQPError) -> None:
        """Send channel.close for a channel error; connection-level codes escalate."""
        if isinstance(exc, errors.AMQPConnectionError) or exc.reply_code in errors.CONNECTION_CODES:
            self.close_connection(exc)
            return
        ch = self.channels.get(channel)
        if ch is None or ch.closing:
            return
        ch.closing = True
        ch.publish = ch.header = None
        ch.body_parts = []
        # One line per channel error (connection errors are logged when the session ends).
        log.info(
            "connection %s, channel %d: %s",
            getattr(self.handler, "peer", "?"),
            channel,
            exc.reply_text,
        )
        self.send_method(
            channel,
            method_codec.make_method(
                commands.Channel.Close,
                reply_code=exc.reply_code,
                reply_text=_short(exc.reply_text),
                class_id=exc.class_id,
                method_id=exc.method_id,
            ),
        )
        self.handler.on_channel_closed(channel)

    def close_connection(self, exc: errors.AMQPError) -> None:
        """Send connection.close and drop everything but close-ok from now on."""
        if self.closing:
            return
        self.close_reason = exc.reply_text
        if not handshake.close_frame_allowed(self.phase, exc):
            self.phase = Phase.CLOSED  # the socket just closes; the reason is only logged
            return
        self.send_method(
            0,
            method_codec.make_method(
                commands.Connection.Close,
                reply_code=exc.reply_code,
                reply_text=_short(exc.reply_text),
                class_id=exc.class_id,
                method_id=exc.method_id,
            ),
        )
        opened = self.phase is Phase.OPEN
        self.phase = Phase.CLOSING
        if opened:
            self._drop_channels()

    def _drop_channels(self) -> None:
        channels = list(self.channels)
        self.channels.clear()
        for channel in channels:
            self.handler.on_channel_closed(channel)

    def _reply_close_ok(self) -> None:
        self.send_method(0, method_codec.make_method(commands.Connection.CloseOk))
        self._finish(Phase.DRAINING)

    def _finish(self, phase: Phase) -> None:
        """The connection is over for the broker (channels and the session released,
        once); ``phase`` says whether the socket still has to be drained."""
        released = self.phase in _DROPPING
        self.phase = phase
        if not released:
            self._drop_channels()
            self.handler.on_connection_closed()

    def connection_lost(self) -> None:
        """The transport went away (EOF, reset, timeout); release everything."""
        self._finish(Phase.CLOSED)

    # -------------------------------------------------------------- heartbeats

    def tick(self, now: float) -> bool:
        """Heartbeat bookkeeping; returns False when the peer must be dropped.

        A heartbeat goes out when we have been silent for half the interval; a
        peer silent for two full intervals is considered dead (as RabbitMQ).
        """
        if self.heartbeat <= 0 or self.phase is not Phase.OPEN:
            return True
        if now - self.last_received > 2 * self.heartbeat:
            self.close_reason = f"missed heartbeats from client, timeout: {self.heartbeat}s"
            return False
        if now - self.last_sent >= self.heartbeat / 2 and not self.out:
            self.out.append(framing.HEARTBEAT_FRAME)
        return True

    def mark_sent(self, now: float) -> None:
        self.last_sent = now


def _short(text: str) -> str:
    """reply-text is a shortstr: at most 255 bytes of UTF-8.  A longer one is cut
    with "..." at the end, 255 bytes in all, as RabbitMQ 3.10.8 and 4.0.5 send it
    (e.g. a 404 naming a 250-character queue)."""
    data = text.encode("utf-8")
    if len(data) <= 255:
        return text
    return data[:252].decode("utf-8", "ignore") + "..."


__all__ = ["AMQPConnection", "Handler"]
