"""A small raw-socket AMQP 0-9-1 client for the load generator.

pamqp encodes and decodes the handshake and the rare methods (declare, bind, consume, ...).
The hot path is struct on bytes, the same for both brokers, so that client CPU stays low:
publishes are pre-encoded once and sent 100 at a time, deliveries are found by scanning
7-byte frame headers, acks and confirms are read and written with ``struct``.

Error handling: every socket operation has a timeout (``socket.timeout`` reaches the caller);
a connection.close or channel.close from the broker raises ``BrokerClosed`` with its reply
code and text. Resource handling: ``RawConnection`` is a context manager that closes its
socket; ``close()`` tries a graceful connection.close first, bounded in time.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from pamqp import body, commands, frame, header, heartbeat
from pamqp.base import Frame
from pamqp.common import FieldTable

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = b"\xce"
FRAME_OVERHEAD = 8  # 7-byte frame header + frame-end octet
FRAME_HEAD = struct.Struct(">BHI")
METHOD_ID = struct.Struct(">HH")
# Basic.Deliver = (60, 60), Basic.Ack = (60, 80), Basic.Nack = (60, 120).
CLASS_BASIC = 60
METHOD_DELIVER = 60
METHOD_ACK = 80
METHOD_NACK = 120
# connection.close = (10, 50), channel.close = (20, 40): the broker gave up on us.
CLOSE_METHODS = frozenset({(10, 50), (20, 40)})
# Basic.Ack(delivery_tag, multiple=True) hand-encoded: class, method, tag, bits.
ACK_PAYLOAD = struct.Struct(">HHQB")
ACK_FRAME_SIZE = ACK_PAYLOAD.size
TIMESTAMP = struct.Struct(">q")
# One recv takes up to this much: large enough that a consumer wakes rarely under load.
RECV_SIZE = 1 << 20
DEFAULT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
T = TypeVar("T", bound=Frame)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class BrokerClosed(RuntimeError):
    """The broker sent connection.close or channel.close."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens, and how to log in. Loopback only, by design."""

    host: str
    port: int
    user: str = "guest"
    password: str = "guest"
    vhost: str = "/"

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        """Parse ``amqp://user:pass@host:port/vhost``; refuse any host that is not loopback."""
        parts = urlsplit(url)
        if parts.scheme != "amqp":
            raise ValueError(f"{url!r}: only amqp:// URLs are supported")
        host = parts.hostname or "127.0.0.1"
        if not is_loopback(host):
            raise ValueError(f"{url!r}: the benchmark runs on loopback only, not on {host!r}")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            host=host,
            port=parts.port or 5672,
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=unquote(path) if path else "/",
        )

    @property
    def url(self) -> str:
        vhost = "" if self.vhost == "/" else self.vhost
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqp://{self.user}@{host}:{self.port}/{vhost}"


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RawConnection:
    """One AMQP connection over a blocking socket with a timeout."""

    def __init__(self, sock: socket.socket, frame_max: int) -> None:
        self.sock = sock
        self.frame_max = frame_max
        self.buf = bytearray()
        self.server_properties: dict[str, object] = {}

    @classmethod
    def open(
        cls, address: BrokerAddress, timeout: float = DEFAULT_TIMEOUT_S, channels: int = 1
    ) -> RawConnection:
        """Connect, log in with PLAIN, open channels 1..channels."""
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = cls(sock, frame_max=131072)
        try:
            conn._handshake(address)
            for channel in range(1, channels + 1):
                conn.call(channel, commands.Channel.Open(), commands.Channel.OpenOk)
        except BaseException:
            sock.close()
            raise
        return conn

    def _handshake(self, address: BrokerAddress) -> None:
        self.sock.sendall(PROTOCOL_HEADER)
        start = self.expect(0, commands.Connection.Start)
        self.server_properties = dict(start.server_properties or {})
        capabilities: FieldTable = {"publisher_confirms": True, "basic.nack": True}
        self.send_method(
            0,
            commands.Connection.StartOk(
                client_properties={"product": "amqpbroker-bench", "capabilities": capabilities},
                mechanism="PLAIN",
                response=f"\0{address.user}\0{address.password}",
                locale="en_US",
            ),
        )
        tune = self.expect(0, commands.Connection.Tune)
        self.frame_max = tune.frame_max or 131072
        self.send_method(
            0,
            commands.Connection.TuneOk(
                channel_max=tune.channel_max or 2047, frame_max=self.frame_max, heartbeat=0
            ),
        )
        self.call(
            0, commands.Connection.Open(virtual_host=address.vhost), commands.Connection.OpenOk
        )

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.sock.close()

    def send(self, data: bytes | bytearray) -> None:
        self.sock.sendall(data)

    def send_method(self, channel: int, method: Frame) -> None:
        self.sock.sendall(frame.marshal(method, channel))

    def fill(self) -> None:
        """Read once from the socket into the buffer; raise if the broker closed it."""
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError("the broker closed the connection")
        self.buf += data

    def read_frame(self) -> tuple[int, frame.FrameTypes]:
        """The next whole frame, decoded by pamqp (slow path only)."""
        deadline = time.monotonic() + (self.sock.gettimeout() or DEFAULT_TIMEOUT_S)
        while True:
            if len(self.buf) >= 7:
                _, channel, size = FRAME_HEAD.unpack_from(self.buf, 0)
                if len(self.buf) >= size + FRAME_OVERHEAD:
                    raw = bytes(self.buf[: size + FRAME_OVERHEAD])
                    del self.buf[: size + FRAME_OVERHEAD]
                    _, channel, value = frame.unmarshal(raw)
                    return channel, value
            if time.monotonic() > deadline:
                raise TimeoutError("no complete frame from the broker in time")
            self.fill()

    def expect(self, channel: int, cls: type[T]) -> T:
        """Read frames until one of type ``cls`` on ``channel``; skip heartbeats and content."""
        deadline = time.monotonic() + (self.sock.gettimeout() or DEFAULT_TIMEOUT_S)
        while time.monotonic() < deadline:
            got_channel, value = self.read_frame()
            if isinstance(value, cls) and got_channel == channel:
                return value
            if isinstance(value, commands.Connection.Close | commands.Channel.Close):
                raise BrokerClosed(f"{value.reply_code} {value.reply_text}")
            if isinstance(value, heartbeat.Heartbeat):
                continue
        raise TimeoutError(f"no {cls.__name__} from the broker in time")

    def call(self, channel: int, method: Frame, reply: type[T]) -> T:
        self.send_method(channel, method)
        return self.expect(channel, reply)

    def close(self) -> None:
        """Graceful connection.close, waiting (bounded) for close-ok, then close the socket."""
        try:
            self.sock.settimeout(CLOSE_TIMEOUT_S)
            self.send_method(
                0,
                commands.Connection.Close(
                    reply_code=200, reply_text="bye", class_id=0, method_id=0
                ),
            )
            deadline = time.monotonic() + CLOSE_TIMEOUT_S
            while time.monotonic() < deadline:
                _, value = self.read_frame()
                if isinstance(value, commands.Connection.CloseOk | commands.Connection.Close):
                    break
        except (OSError, TimeoutError, BrokerClosed):
            pass
        finally:
            self.sock.close()


def encode_message(
    connection: RawConnection,
    channel: int,
    exchange: str,
    routing_key: str,
    payload: bytes,
    persistent: bool,
    message_id: str | None = None,
) -> tuple[bytes, int]:
    """One publish (method + header + body frames) and the offset of its body's first byte."""
    properties = commands.Basic.Properties(
        delivery_mode=2 if persistent else 1, message_id=message_id
    )
    head = frame.marshal(
        commands.Basic.Publish(exchange=exchange, routing_key=routing_key), channel
    ) + frame.marshal(header.ContentHeader(0, len(payload), properties), channel)
    chunk = connection.frame_max - FRAME_OVERHEAD
    bodies = b"".join(
        frame.marshal(body.ContentBody(payload[i : i + chunk]), channel)
        for i in range(0, len(payload), chunk)
    )
    return head + bodies, len(head) + 7


class StampedBatch:
    """``count`` copies of one encoded publish, each body starting with a send timestamp.

    Hot path: the batch is encoded once; ``stamp`` writes an 8-byte CLOCK_MONOTONIC
    nanosecond count into every body in place, so one batch costs one ``sendall``.
    """

    def __init__(
        self, message: bytes, body_offset: int, count: int, id_offset: int | None = None
    ) -> None:
        self.data = bytearray(message * count)
        self.offsets = [body_offset + i * len(message) for i in range(count)]
        # Messages with their own message_id: where each one's ID_DIGITS digits are.
        self.id_offsets = (
            [] if id_offset is None else [id_offset + i * len(message) for i in range(count)]
        )

    def stamp(self, now_ns: int, first_id: int = 0) -> bytearray:
        pack_into = TIMESTAMP.pack_into
        data = self.data
        for offset in self.offsets:
            pack_into(data, offset, now_ns)
        for number, offset in enumerate(self.id_offsets, first_id):
            data[offset : offset + ID_DIGITS] = b"%0*d" % (ID_DIGITS, number)
        return data


# Fixed-width message ids, so every publish has the same size.
ID_DIGITS = 16
ID_TEMPLATE = "0" * ID_DIGITS


def message_id_offset(message: bytes, body_offset: int) -> int:
    """Where the digits of an ID_TEMPLATE message_id sit in an encoded publish."""
    offset = message.rfind(ID_TEMPLATE.encode(), 0, body_offset)
    if offset < 0:
        raise ValueError("no message_id in this publish")
    return offset


def encode_ack(channel: int, delivery_tag: int, multiple: bool = True) -> bytes:
    """Basic.Ack(delivery_tag, multiple), hand-encoded (hot path)."""
    return (
        FRAME_HEAD.pack(FRAME_METHOD, channel, ACK_FRAME_SIZE)
        + ACK_PAYLOAD.pack(CLASS_BASIC, METHOD_ACK, delivery_tag, multiple)
        + FRAME_END
    )
