"""Fairness of the input loop: with a time slice set, a connection stops handling its
buffered frames once the slice is used up and resumes on the next call, in order, with
nothing lost; without one (the default, as in these in-process tests) it handles all."""

from __future__ import annotations

from pamqp import commands

from amqpbroker.broker.broker import Broker
from amqpbroker.config import Settings
from amqpbroker.protocol import framing, method_codec

from .test_delivery_path import _method, _open


def _declare_oks(data: bytes) -> list[str]:
    """The queue names of the queue.declare-ok frames in ``data``, in order."""
    names = []
    at = 0
    while at < len(data):
        size = int.from_bytes(data[at + 3 : at + 7], "big")
        payload = data[at + 7 : at + 7 + size]
        if data[at] == framing.FRAME_METHOD and payload[:4] == b"\x00\x32\x00\x0b":
            names.append(payload[5 : 5 + payload[4]].decode())
        at += size + 8
    return names


def _declares(count: int) -> bytes:
    return b"".join(
        _method(1, method_codec.make_method(commands.Queue.Declare, queue=f"q{i}"))
        for i in range(count)
    )


def test_a_used_up_slice_leaves_the_rest_for_the_next_call() -> None:
    broker = Broker(Settings())
    session = _open(broker, 1, (1,), 131072)
    ticks = iter(range(1000))
    session.proto.clock = lambda: float(next(ticks))  # each reading one second later
    session.proto.time_slice = 1.5  # so the slice ends after the second frame
    session.receive_data(_declares(5))
    assert session.proto.input_pending
    assert _declare_oks(session.proto.take_output()) == ["q0", "q1"]
    session.receive_data(b"")
    assert session.proto.input_pending
    assert _declare_oks(session.proto.take_output()) == ["q2", "q3"]
    session.receive_data(b"")
    assert not session.proto.input_pending
    assert _declare_oks(session.proto.take_output()) == ["q4"]


def test_without_a_slice_every_buffered_frame_is_handled() -> None:
    broker = Broker(Settings())
    session = _open(broker, 2, (1,), 131072)
    session.receive_data(_declares(50))
    assert not session.proto.input_pending
    assert _declare_oks(session.proto.take_output()) == [f"q{i}" for i in range(50)]


def test_a_slice_never_stops_in_the_middle_of_a_frame() -> None:
    # Half of the third declare arrives later: the slice ends with nothing complete left.
    broker = Broker(Settings())
    session = _open(broker, 3, (1,), 131072)
    session.proto.time_slice = 0.0
    data = _declares(3)
    cut = len(data) - 5
    session.receive_data(data[:cut])
    assert _declare_oks(session.proto.take_output()) == ["q0"]
    while session.proto.input_pending:
        session.receive_data(b"")
    assert _declare_oks(session.proto.take_output()) == ["q1"]
    session.receive_data(data[cut:])
    assert _declare_oks(session.proto.take_output()) == ["q2"]
