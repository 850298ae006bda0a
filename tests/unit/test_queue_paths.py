"""A plain queue's fast path agrees with the general one.

A queue without rules and without a paged tail (``queue.plain``) publishes,
delivers and dispatches in a few lines of queue.py; the same queue with rules that
change nothing (features.enable_rules with PLAIN options, what a plain queue gains
when a message with its own TTL arrives) goes through the general path of every
operation.  Hypothesis drives two brokers, one of each, with the same client
commands over sans-IO sessions (publishes, consumers with and without acks and
prefetch, acks, requeues, rejects, basic.get, cancels, purges) and checks that both
put exactly the same bytes on the wire and count the same messages.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.features import enable_rules
from amqpbroker.broker.queue import Queue
from amqpbroker.broker.queue_arguments import PLAIN
from amqpbroker.broker.session import Session
from amqpbroker.config import Settings
from amqpbroker.protocol import framing, method_codec

CHANNELS = (1, 2)  # the consumer connection's channels


def _method(channel: int, method: object) -> bytes:
    return method_codec.encode_method(channel, method)  # type: ignore[arg-type]


def _open(broker: Broker, port: int) -> Session:
    session = Session(broker, f"127.0.0.1:{port}")
    session.receive_data(framing.PROTOCOL_HEADER)
    for method in (
        method_codec.make_method(
            commands.Connection.StartOk, mechanism="PLAIN", response="\0guest\0guest"
        ),
        method_codec.make_method(
            commands.Connection.TuneOk, channel_max=2047, frame_max=131072, heartbeat=0
        ),
        method_codec.make_method(commands.Connection.Open, virtual_host="/"),
    ):
        session.receive_data(_method(0, method))
    for channel in CHANNELS:
        session.receive_data(_method(channel, method_codec.make_method(commands.Channel.Open)))
    session.proto.take_output()
    return session


def _publish(body: bytes) -> bytes:
    method = struct.pack(">HHH", 60, 40, 0) + b"\x00" + b"\x01q" + b"\x00"
    header = struct.pack(">HHQH", 60, 0, len(body), 0)
    return (
        framing.encode_frame(framing.FRAME_METHOD, 1, method)
        + framing.encode_frame(framing.FRAME_HEADER, 1, header)
        + framing.encode_frame(framing.FRAME_BODY, 1, body)
    )


class Side:
    """One broker with a publisher, a consumer connection and queue ``q``."""

    def __init__(self, general: bool) -> None:
        self.broker = Broker(Settings(consumer_timeout=0), clock=lambda: 1000.0)
        self.publisher = _open(self.broker, 1)
        self.consumer = _open(self.broker, 2)
        self.consumer.receive_data(
            _method(1, method_codec.make_method(commands.Queue.Declare, queue="q"))
        )
        self.queue: Queue = self.broker.vhosts["/"].queues["q"]
        if general:
            enable_rules(self.queue, PLAIN)
            assert not self.queue.plain
        else:
            assert self.queue.plain
        self.consumer.proto.take_output()

    def send(self, channel: int, method: object) -> None:
        self.consumer.receive_data(_method(channel, method))

    def output(self) -> bytes:
        out = self.consumer.proto.take_output()
        self.consumer.drained()
        return out


COMMAND = st.one_of(
    st.tuples(st.just("publish"), st.integers(1, 5)),
    st.tuples(st.just("qos"), st.sampled_from(CHANNELS), st.integers(0, 3)),
    st.tuples(st.just("consume"), st.sampled_from(CHANNELS), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("cancel"), st.sampled_from(CHANNELS), st.integers(0, 2)),
    st.tuples(st.just("ack"), st.sampled_from(CHANNELS), st.integers(0, 10), st.booleans()),
    st.tuples(
        st.just("nack"), st.sampled_from(CHANNELS), st.integers(0, 10), st.booleans(), st.booleans()
    ),
    st.tuples(st.just("get"), st.sampled_from(CHANNELS), st.booleans()),
    st.tuples(st.just("recover"), st.sampled_from(CHANNELS)),
    st.tuples(st.just("purge"), st.sampled_from(CHANNELS)),
)


def _apply(side: Side, command: tuple[object, ...], serial: int, tags: list[int]) -> None:
    kind = command[0]
    if kind == "publish":
        count = command[1]
        assert isinstance(count, int)
        side.publisher.receive_data(
            b"".join(_publish(b"m%d.%d" % (serial, i)) for i in range(count))
        )
        return
    channel = command[1]
    assert isinstance(channel, int)
    if kind == "qos":
        side.send(channel, method_codec.make_method(commands.Basic.Qos, prefetch_count=command[2]))
    elif kind == "consume":
        tag = f"c{channel}.{command[2]}"
        if tag not in side.consumer.channels[channel].consumers:
            side.send(
                channel,
                method_codec.make_method(
                    commands.Basic.Consume, queue="q", consumer_tag=tag, no_ack=command[3]
                ),
            )
    elif kind == "cancel":
        side.send(
            channel,
            method_codec.make_method(
                commands.Basic.Cancel, consumer_tag=f"c{channel}.{command[2]}"
            ),
        )
    elif kind in ("ack", "nack"):
        if not tags:
            return
        tag = tags[command[2] % len(tags)]  # type: ignore[operator]
        if kind == "ack":
            method = method_codec.make_method(
                commands.Basic.Ack, delivery_tag=tag, multiple=command[3]
            )
        else:
            method = method_codec.make_method(
                commands.Basic.Nack, delivery_tag=tag, multiple=command[3], requeue=command[4]
            )
        side.send(channel, method)
    elif kind == "get":
        side.send(
            channel, method_codec.make_method(commands.Basic.Get, queue="q", no_ack=command[2])
        )
    elif kind == "recover":
        side.send(channel, method_codec.make_method(commands.Basic.Recover, requeue=True))
    elif kind == "purge":
        side.send(channel, method_codec.make_method(commands.Queue.Purge, queue="q"))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(COMMAND, max_size=40))
def test_plain_fast_path_agrees_with_the_general_path(commands_: list[tuple[object, ...]]) -> None:
    fast, general = Side(general=False), Side(general=True)
    for serial, command in enumerate(commands_):
        channel = command[1] if command[0] != "publish" else 1
        # Tags the client could settle: what the fast side has outstanding.
        tags = sorted(fast.consumer.channels[channel].unacked) if channel in CHANNELS else []
        for side in (fast, general):
            _apply(side, command, serial, tags)  # type: ignore[arg-type]
        assert fast.output() == general.output(), command
        assert fast.queue.message_count == general.queue.message_count
        assert fast.queue.unacked == general.queue.unacked
        assert fast.queue.plain and not general.queue.plain
    assert not fast.consumer.proto.closing and not general.consumer.proto.closing
