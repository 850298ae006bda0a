"""The sans-IO connection's closing states (as RabbitMQ's rabbit_reader): after close-ok
to the client's connection.close, and while our connection.close awaits close-ok,
everything else the client still sends is dropped, and the I/O layer is told to keep
the socket (``closing`` but not ``closed``) for ``closing_timeout`` at most."""

from __future__ import annotations

from typing import Any

from pamqp import body, commands, frame, header

from amqpbroker import errors
from amqpbroker.protocol.connection import CLOSING_TIMEOUT, AMQPConnection

HEADER = b"AMQP\x00\x00\x09\x01"
CLIENT_CLOSE = frame.marshal(commands.Connection.Close(200, "bye", 0, 0), 0)


class Recorder:
    """A handler that accepts guest and records what the connection tells it."""

    peer = "test"

    def __init__(self) -> None:
        self.published = 0
        self.methods: list[int] = []
        self.closed_connections = 0

    def authenticate(self, mechanism: str, response: bytes) -> str | None:
        return "guest"

    def open_vhost(self, user: str, vhost: str) -> None:
        pass

    def on_channel_open(self, channel: int) -> None:
        pass

    def on_channel_closed(self, channel: int) -> None:
        pass

    def on_method(self, channel: int, key: int, payload: bytes) -> None:
        self.methods.append(key)

    def on_publish(self, *args: Any) -> None:
        self.published += 1

    def on_connection_closed(self) -> None:
        self.closed_connections += 1


def frames_out(proto: AMQPConnection) -> list[Any]:
    data, found = proto.take_output(), []
    while data:
        consumed, _channel, value = frame.unmarshal(data)
        data = data[consumed:]
        found.append(value)
    return found


def publish(channel: int = 1) -> bytes:
    content = b"x" * 10
    return (
        frame.marshal(commands.Basic.Publish(exchange="", routing_key="q"), channel)
        + frame.marshal(header.ContentHeader(0, len(content)), channel)
        + frame.marshal(body.ContentBody(content), channel)
    )


def opened(heartbeat: int = 0) -> tuple[AMQPConnection, Recorder]:
    handler = Recorder()
    proto = AMQPConnection(handler)
    proto.receive_data(
        HEADER
        + frame.marshal(
            commands.Connection.StartOk(
                client_properties={}, mechanism="PLAIN", response="\0guest\0guest"
            ),
            0,
        )
        + frame.marshal(commands.Connection.TuneOk(2047, 131072, heartbeat), 0)
        + frame.marshal(commands.Connection.Open("/"), 0)
        + frame.marshal(commands.Channel.Open(), 1)
    )
    assert isinstance(frames_out(proto)[-1], commands.Channel.OpenOk)
    return proto, handler


def test_after_close_ok_to_the_client_its_last_frames_are_read_and_dropped() -> None:
    proto, handler = opened()
    proto.receive_data(publish() + CLIENT_CLOSE + publish() * 3)
    assert [type(f) for f in frames_out(proto)] == [commands.Connection.CloseOk]
    assert handler.published == 1  # the one before close; the three after are dropped
    assert handler.closed_connections == 1
    # The socket stays until the client closes it (or the closing timeout).
    assert proto.closing and not proto.closed
    proto.receive_data(publish() * 100 + frame.marshal(commands.Basic.Qos(), 1))
    proto.receive_data(b"garbage that is not a frame")
    assert frames_out(proto) == []
    assert handler.published == 1 and handler.methods == []
    proto.connection_lost()  # EOF: closed, and the session is not released twice
    assert proto.closed and handler.closed_connections == 1


def test_our_close_drops_everything_until_close_ok() -> None:
    proto, handler = opened()
    proto.close_connection(errors.ConnectionForced("shutdown"))
    assert [type(f) for f in frames_out(proto)] == [commands.Connection.Close]
    assert proto.closing and not proto.closed
    proto.receive_data(publish() * 10 + frame.marshal(commands.Basic.Qos(), 1))
    assert frames_out(proto) == [] and handler.published == 0 and handler.methods == []
    assert handler.closed_connections == 0
    proto.receive_data(frame.marshal(commands.Connection.CloseOk(), 0) + publish())
    assert proto.closed and handler.closed_connections == 1
    assert frames_out(proto) == []


def test_a_close_crossing_ours_is_answered_and_drained() -> None:
    proto, handler = opened()
    proto.close_connection(errors.ConnectionForced("shutdown"))
    frames_out(proto)
    proto.receive_data(CLIENT_CLOSE + publish())
    assert [type(f) for f in frames_out(proto)] == [commands.Connection.CloseOk]
    assert proto.closing and not proto.closed and handler.closed_connections == 1


def test_a_closing_channel_drops_its_frames_until_close_ok() -> None:
    proto, handler = opened()
    proto.close_channel(1, errors.NotFound("no exchange 'x' in vhost '/'"))
    assert [type(f) for f in frames_out(proto)] == [commands.Channel.Close]
    proto.receive_data(publish() * 5 + frame.marshal(commands.Basic.Qos(), 1))
    assert frames_out(proto) == [] and handler.published == 0 and handler.methods == []
    proto.receive_data(frame.marshal(commands.Channel.CloseOk(), 1))
    proto.receive_data(frame.marshal(commands.Channel.Open(), 1) + publish())
    assert [type(f) for f in frames_out(proto)] == [commands.Channel.OpenOk]
    assert handler.published == 1


def test_closing_timeout_is_rabbitmqs_or_the_heartbeat_when_shorter() -> None:
    assert opened(heartbeat=0)[0].closing_timeout == CLOSING_TIMEOUT == 30.0
    assert opened(heartbeat=60)[0].closing_timeout == 30.0
    assert opened(heartbeat=5)[0].closing_timeout == 5.0
