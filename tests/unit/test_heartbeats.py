"""Heartbeat bookkeeping of the sans-IO connection, with time passed in.

The client tests (tests/clients/test_connection.py) show what a client sees over a
real socket on real time; the exact moments are checked here, where the test
decides what time it is: a heartbeat goes out after half an interval of our
silence, and a peer silent for more than two intervals is dropped (RabbitMQ).
"""

from __future__ import annotations

from pamqp import commands

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.session import Session
from amqpbroker.config import Settings
from amqpbroker.protocol import framing, method_codec

INTERVAL = 10  # seconds, as negotiated in tune-ok


def _method(method: object) -> bytes:
    return method_codec.encode_method(0, method)  # type: ignore[arg-type]


def _open(now: float) -> Session:
    broker = Broker(Settings(consumer_timeout=0))
    session = Session(broker, "127.0.0.1:1", now=now)
    session.receive_data(framing.PROTOCOL_HEADER, now)
    start_ok = method_codec.make_method(
        commands.Connection.StartOk, mechanism="PLAIN", response="\0guest\0guest", locale="en_US"
    )
    session.receive_data(_method(start_ok), now)
    tune_ok = method_codec.make_method(
        commands.Connection.TuneOk, channel_max=2047, frame_max=131072, heartbeat=INTERVAL
    )
    session.receive_data(_method(tune_ok), now)
    session.receive_data(
        _method(method_codec.make_method(commands.Connection.Open, virtual_host="/")), now
    )
    session.proto.take_output()
    session.proto.mark_sent(now)
    return session


def test_a_heartbeat_goes_out_after_half_an_interval_of_silence() -> None:
    proto = _open(now=100.0).proto
    assert proto.tick(104.9)
    assert proto.take_output() == b""
    assert proto.tick(105.0)
    assert proto.take_output() == framing.HEARTBEAT_FRAME
    proto.mark_sent(105.0)
    assert proto.tick(109.9)
    assert proto.take_output() == b""


def test_a_peer_silent_for_two_intervals_is_dropped() -> None:
    proto = _open(now=100.0).proto
    assert proto.tick(120.0)  # exactly two intervals: still alive
    assert not proto.tick(120.001)
    assert proto.close_reason == f"missed heartbeats from client, timeout: {INTERVAL}s"


def test_anything_the_peer_sends_counts_as_alive() -> None:
    session = _open(now=100.0)
    session.receive_data(framing.HEARTBEAT_FRAME, 115.0)
    assert session.proto.tick(135.0)
    assert not session.proto.tick(135.001)
