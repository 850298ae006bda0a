"""Publishing and consuming over a raw socket, keeping the content header's bytes.

Built on the client tests' ``RawClient`` (tests/clients/rawamqp.py, put on sys.path by
this directory's conftest). The durability tests need two things pika hides: the exact
bytes of a content header (a stored message must come back byte for byte), and control
of the wire at the moment a broker dies (which confirms and deliveries really arrived).
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
from pamqp import commands, frame, header
from rawamqp import Closed, RawClient

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_MAX = 131072
# Deadline for any one read from a broker that should be answering.
TIMEOUT = 5.0


@attrs.frozen
class Delivery:
    """A basic.deliver / basic.get-ok with its content, header bytes as received."""

    method: Any
    header: bytes
    body: bytes

    @property
    def redelivered(self) -> bool:
        return bool(self.method.redelivered)

    @property
    def tag(self) -> int:
        return int(self.method.delivery_tag)

    def properties(self) -> commands.Basic.Properties:
        content = header.ContentHeader()
        content.unmarshal(self.header)
        return content.properties


def connect(port: int, vhost: str = "/", timeout: float = TIMEOUT) -> RawClient:
    """A handshaken connection with channel 1 open."""
    client = RawClient("127.0.0.1", port, timeout)
    try:
        client.handshake(vhost=vhost)
        client.open_channel(1)
    except BaseException:
        client.close()
        raise
    return client


def content_header(properties: commands.Basic.Properties, body_size: int) -> bytes:
    """The content-header frame payload pamqp would send for these properties."""
    return header.ContentHeader(0, body_size, properties).marshal()


def publish_frames(
    exchange: str, routing_key: str, header_payload: bytes, payload: bytes, channel: int = 1
) -> bytes:
    """basic.publish + the given header payload + body frames, ready for sendall."""
    method = commands.Basic.Publish(exchange=exchange, routing_key=routing_key)
    parts = [frame.marshal(method, channel), _frame(FRAME_HEADER, channel, header_payload)]
    step = FRAME_MAX - 8
    for start in range(0, len(payload), step):
        parts.append(_frame(FRAME_BODY, channel, payload[start : start + step]))
    return b"".join(parts)


def persistent(body_size: int, **props: Any) -> bytes:
    props.setdefault("delivery_mode", 2)
    return content_header(commands.Basic.Properties(**props), body_size)


def _frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


def read_frame(client: RawClient, timeout: float = TIMEOUT) -> tuple[int, int, bytes]:
    """(type, channel, payload) of the next frame, heartbeats skipped."""
    while True:
        frame_type, channel, size = struct.unpack(">BHI", client.recv_bytes(7, timeout))
        payload = client.recv_bytes(size + 1, timeout)[:-1]
        if frame_type != FRAME_HEARTBEAT:
            return frame_type, channel, payload


def decode_method(channel: int, payload: bytes) -> Any:
    _consumed, _channel, value = frame.unmarshal(
        struct.pack(">BHI", FRAME_METHOD, channel, len(payload)) + payload + b"\xce"
    )
    return value


def read_event(client: RawClient, timeout: float = TIMEOUT) -> Delivery | Any:
    """The next method from the broker; a delivery (deliver, get-ok, return) comes with its
    content. A connection.close or channel.close raises, naming the broker's reason."""
    frame_type, channel, payload = read_frame(client, timeout)
    if frame_type != FRAME_METHOD:
        raise AssertionError(f"expected a method frame, got type {frame_type}")
    method = decode_method(channel, payload)
    if isinstance(method, commands.Connection.Close | commands.Channel.Close):
        raise Closed(f"broker closed: {method.reply_code} {method.reply_text}")
    if not isinstance(
        method, commands.Basic.Deliver | commands.Basic.GetOk | commands.Basic.Return
    ):
        return method
    frame_type, _, head = read_frame(client, timeout)
    assert frame_type == FRAME_HEADER, frame_type
    (size,) = struct.unpack_from(">Q", head, 4)
    chunks = []
    received = 0
    while received < size:
        frame_type, _, chunk = read_frame(client, timeout)
        assert frame_type == FRAME_BODY, frame_type
        chunks.append(chunk)
        received += len(chunk)
    return Delivery(method, head, b"".join(chunks))


def expect(client: RawClient, cls: type, timeout: float = TIMEOUT) -> Any:
    event = read_event(client, timeout)
    if not isinstance(event, cls):
        raise AssertionError(f"expected {cls.__name__}, got {event!r}")
    return event


def call(client: RawClient, method: Any, reply: type, channel: int = 1) -> Any:
    client.send(method, channel)
    return expect(client, reply)


def declare_durable(client: RawClient, queue: str) -> None:
    call(client, commands.Queue.Declare(queue=queue, durable=True), commands.Queue.DeclareOk)


def message_count(client: RawClient, queue: str) -> int:
    ok = call(client, commands.Queue.Declare(queue=queue, passive=True), commands.Queue.DeclareOk)
    return int(ok.message_count)


def drain(port: int, queue: str, vhost: str = "/", timeout: float = TIMEOUT) -> list[Delivery]:
    """Every message the queue holds, in queue order, acked; the connection is closed."""
    with connect(port, vhost, timeout) as client:
        count = message_count(client, queue)
        got: list[Delivery] = []
        if count:
            call(client, commands.Basic.Consume(queue=queue), commands.Basic.ConsumeOk)
            while len(got) < count:
                event = read_event(client, timeout)
                if isinstance(event, Delivery):
                    got.append(event)
            client.send(commands.Basic.Ack(delivery_tag=0, multiple=True), 1)
        # A synchronous round trip: the broker has handled the ack when it answers.
        assert message_count(client, queue) == 0
        return got
