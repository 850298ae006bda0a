"""The bytes the memory alarm weighs (broker/memory.py): messages in queues and
unacked, counted once a second from samples, so they fall as messages leave."""

from __future__ import annotations

import time

import pika
from hypothesis import given
from hypothesis import strategies as st

import amqpbroker
from amqpbroker.broker import memory
from amqpbroker.broker.message import Message, QueuedMessage


def test_a_messages_size_counts_its_frames_and_a_sliced_body() -> None:
    from amqpbroker.protocol import basic_codec

    header = b"\x00\x3c\x00\x00" + (3).to_bytes(8, "big") + b"\x00\x00"  # no properties
    content = b"".join(basic_codec.encode_content(1, header, b"abc", 0))
    qm = QueuedMessage(1, Message("ex", "rk", header, None, content, 1))
    before = memory.message_size(qm)
    assert before == len(header) + len(content) + memory.MESSAGE_OVERHEAD
    assert qm.message.body == b"abc"
    assert memory.message_size(qm) == before + 3
    plain = QueuedMessage(2, Message("ex", "rk", header, b"x" * 1000))
    assert memory.message_size(plain) == len(header) + 1000 + memory.MESSAGE_OVERHEAD


@given(
    st.integers(min_value=1, max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=2 * 10**9), max_size=40),
)
def test_alarm_raises_past_the_mark_and_clears_below_its_fraction(
    mark: int, readings: list[int]
) -> None:
    raised = False
    for used in readings:
        now = memory.past_mark(used, mark, raised)
        if not raised:
            assert now == (used > mark)
        else:
            assert now == (used > mark * memory.CLEAR_FRACTION)
        raised = now


def _held(broker: amqpbroker.Broker) -> int:
    assert broker.core is not None
    return broker.call(memory.held_bytes, broker.core)


def _settles(broker: amqpbroker.Broker, at_most: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _held(broker) > at_most:
        assert time.monotonic() < deadline, _held(broker)
        time.sleep(0.02)


def test_held_bytes_fall_when_messages_are_acked_purged_or_expire(
    broker: amqpbroker.Broker, url: str
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name, args in (("acked", {}), ("purged", {}), ("expiring", {"x-message-ttl": 50})):
            channel.queue_declare(name, arguments=args)
        start = _held(broker)
        for name in ("acked", "purged", "expiring"):
            for _ in range(300):
                channel.basic_publish("", name, b"x" * 1024)
        channel.queue_declare("acked", passive=True)  # a round trip: all were routed
        assert _held(broker) - start >= 600 * 1024
        channel.queue_purge("purged")
        tags = []
        for _ in range(300):
            method, _props, _body = channel.basic_get("acked")
            assert method is not None
            tags.append(method.delivery_tag)
        # Unacked deliveries are still held.
        assert _held(broker) - start >= 300 * 1024
        channel.basic_ack(tags[-1], multiple=True)
        channel.queue_declare("acked", passive=True)
        # Expired messages go when the TTL timer fires; other tests' queues may hold some.
        _settles(broker, at_most=start + 32 * 1024)
    finally:
        connection.close()
