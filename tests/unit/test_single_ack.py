"""Single acks (multiple=false, how most applications ack) take Channel.ack's own short
path: in any order, each settles exactly its delivery, the counters of queues, consumers
and the channel stay what a recount of the unacked deliveries gives, freed prefetch room
is refilled, and an unknown or repeated tag fails the channel with 406 as before."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.session import Session
from amqpbroker.config import Settings
from amqpbroker.protocol import method_codec

from .test_delivery_path import _header, _method, _open, _publish


def _ack(tag: int, multiple: bool = False) -> bytes:
    return struct.pack(">BHIHHQBB", 1, 1, 13, 60, 80, tag, int(multiple), 0xCE)


def _setup(prefetch: int) -> tuple[Broker, Session, Session]:
    broker = Broker(Settings(consumer_timeout=0))
    publisher = _open(broker, 1, (1,), 131072)
    consumer = _open(broker, 2, (1,), 131072)
    declare = method_codec.make_method(
        commands.Exchange.Declare, exchange="x", exchange_type="direct"
    )
    publisher.receive_data(_method(1, declare))
    consumer.receive_data(
        _method(1, method_codec.make_method(commands.Basic.Qos, prefetch_count=prefetch))
    )
    for queue in ("q1", "q2"):
        consumer.receive_data(
            _method(1, method_codec.make_method(commands.Queue.Declare, queue=queue))
        )
        bind = method_codec.make_method(
            commands.Queue.Bind, queue=queue, exchange="x", routing_key=queue
        )
        consumer.receive_data(_method(1, bind))
    for tag, queue in (("a", "q1"), ("b", "q1"), ("c", "q2")):
        consume = method_codec.make_method(commands.Basic.Consume, queue=queue, consumer_tag=tag)
        consumer.receive_data(_method(1, consume))
    return broker, publisher, consumer


def _assert_counts_match_a_recount(broker: Broker, consumer: Session) -> None:
    channel = consumer.channels[1]
    queues = broker.vhosts["/"].queues
    entries = list(channel.unacked.values())
    for name in ("q1", "q2"):
        assert queues[name].unacked == sum(1 for q, _m, _c in entries if q is queues[name])
    for tag, found in channel.consumers.items():
        assert found.unacked == sum(1 for _q, _m, c in entries if c is found), tag
    assert channel.consumer_unacked == len(entries)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_single_acks_in_any_order_settle_exactly_their_delivery(data: st.DataObject) -> None:
    broker, publisher, consumer = _setup(prefetch=0)
    keys = data.draw(st.lists(st.sampled_from(["q1", "q2"]), min_size=1, max_size=12))
    header = _header(b"m", "id")
    publisher.receive_data(b"".join(_publish(1, key, header, b"m") for key in keys))
    channel = consumer.channels[1]
    tags = data.draw(st.permutations(list(channel.unacked)))
    for count, tag in enumerate(tags, 1):
        before = set(channel.unacked)
        consumer.receive_data(_ack(tag))
        assert set(channel.unacked) == before - {tag}
        assert channel.acked == count
        _assert_counts_match_a_recount(broker, consumer)
    assert not consumer.proto.closing
    queues = broker.vhosts["/"].queues
    assert len(queues["q1"].ready) == len(queues["q2"].ready) == 0


def test_a_single_ack_frees_prefetch_room_for_the_next_message() -> None:
    broker, publisher, consumer = _setup(prefetch=1)
    header = _header(b"m", "id")
    publisher.receive_data(b"".join(_publish(1, "q2", header, b"m") for _ in range(3)))
    channel = consumer.channels[1]
    queue = broker.vhosts["/"].queues["q2"]
    assert list(channel.unacked) == [1] and len(queue.ready) == 2
    consumer.receive_data(_ack(1))
    assert list(channel.unacked) == [2] and len(queue.ready) == 1
    _assert_counts_match_a_recount(broker, consumer)


def test_an_unknown_or_repeated_single_ack_is_406() -> None:
    _broker, publisher, consumer = _setup(prefetch=0)
    publisher.receive_data(_publish(1, "q1", _header(b"m", "id"), b"m"))
    consumer.receive_data(_ack(1))
    consumer.proto.take_output()
    consumer.receive_data(_ack(1))
    out = consumer.proto.take_output()
    assert b"PRECONDITION_FAILED - unknown delivery tag 1" in out
    assert 1 not in consumer.channels or consumer.channels[1].closing
