"""Priority queues (x-max-priority) and single active consumer through pika, as RabbitMQ
3.10 does them (seen on a real broker first).  Consumer priorities (x-priority) are
in test_basic.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker
from pikakit import connect, new_queue, settle, wait_until

pytestmark = pytest.mark.timeout(60)


def bodies(ch: BlockingChannel, queue: str) -> list[str]:
    out = []
    while True:
        method, _p, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body.decode())


def publish_all(ch: BlockingChannel, queue: str, priorities: list[int | None]) -> None:
    for i, priority in enumerate(priorities):
        ch.basic_publish(
            "", queue, f"{i}:{priority}".encode(), pika.BasicProperties(priority=priority)
        )


# ---------------------------------------------------------------- priorities


def test_higher_priority_first_fifo_within_a_level(ch: BlockingChannel) -> None:
    queue = new_queue(ch, arguments={"x-max-priority": 5})
    publish_all(ch, queue, [None, 1, 9, 5, 3, 0, 5, 7, None, 255])
    # Above the maximum counts as the maximum; no priority counts as 0.
    assert bodies(ch, queue) == [
        "2:9", "3:5", "6:5", "7:7", "9:255", "4:3", "1:1", "0:None", "5:0", "8:None"
    ]  # fmt: skip


def test_requeue_returns_to_the_original_place_in_its_level(ch: BlockingChannel) -> None:
    queue = new_queue(ch, arguments={"x-max-priority": 5})
    publish_all(ch, queue, [1, 1, 1, 2])
    tags = [ch.basic_get(queue)[0].delivery_tag for _ in range(3)]  # 3:2, 0:1, 1:1
    ch.basic_nack(tags[2], requeue=True)
    ch.basic_nack(tags[1], requeue=True)
    assert bodies(ch, queue) == ["0:1", "1:1", "2:1"]


def test_max_priority_zero_is_plain_fifo(ch: BlockingChannel) -> None:
    queue = new_queue(ch, arguments={"x-max-priority": 0})
    publish_all(ch, queue, [None, 3, 0])
    assert bodies(ch, queue) == ["0:None", "1:3", "2:0"]


def test_consumers_get_the_highest_priority_first(
    ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-max-priority": 10})
    publish_all(ch, queue, [1, 10, 5])
    got: list[str] = []
    ch.basic_consume(queue, lambda _c, _m, _p, body: got.append(body.decode()), auto_ack=True)
    wait_until(conn, lambda: len(got) == 3)
    assert got == ["1:10", "2:5", "0:1"]


# ----------------------------------------------------- single active consumer


def recorder(got: list[Any], name: Any) -> Callable[..., None]:
    return lambda _c, _m, _p, body: got.append((name, body))


def test_one_consumer_gets_everything(ch: BlockingChannel, conn: BlockingConnection) -> None:
    queue = new_queue(ch, arguments={"x-single-active-consumer": True})
    got: list[Any] = []
    for i in range(3):
        conn.channel().basic_consume(
            queue, recorder(got, i), auto_ack=True, arguments={"x-priority": i}
        )
    for k in range(4):
        ch.basic_publish("", queue, b"a%d" % k)
    wait_until(conn, lambda: len(got) == 4)
    settle(conn)
    # The first to subscribe is active, whatever the others' priorities.
    assert [who for who, _b in got] == [0, 0, 0, 0]
    assert ch.queue_declare(queue, passive=True).method.consumer_count == 3


def test_takeover_goes_by_priority_then_registration(
    ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-single-active-consumer": True})
    priorities = [0, 1, 2, 1, 2, 0]
    got: list[Any] = []
    channels, tags = [], []
    for i, priority in enumerate(priorities):
        channel = conn.channel()
        channels.append(channel)
        tags.append(
            channel.basic_consume(
                queue, recorder(got, i), auto_ack=True, arguments={"x-priority": priority}
            )
        )
    order = []
    for _ in priorities:
        ch.basic_publish("", queue, b"x")
        wait_until(conn, lambda: len(got) == len(order) + 1)
        active = got[-1][0]
        order.append(active)
        channels[active].basic_cancel(tags[active])
    assert order == [0, 2, 4, 1, 3, 5]


def test_a_new_higher_priority_consumer_does_not_take_over(
    ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-single-active-consumer": True})
    got: list[Any] = []
    conn.channel().basic_consume(queue, recorder(got, "first"), auto_ack=True)
    conn.channel().basic_consume(
        queue, recorder(got, "urgent"), auto_ack=True, arguments={"x-priority": 10}
    )
    ch.basic_publish("", queue, b"x")
    wait_until(conn, lambda: len(got) == 1)
    assert got == [("first", b"x")]


def test_the_next_consumer_waits_until_the_cancelled_one_settles(
    ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-single-active-consumer": True})
    first = conn.channel()
    first.basic_qos(prefetch_count=2)
    held: list[int] = []
    tag = first.basic_consume(queue, lambda _c, method, _p, _b: held.append(method.delivery_tag))
    got: list[Any] = []
    conn.channel().basic_consume(queue, recorder(got, "next"), auto_ack=True)
    for k in range(4):
        ch.basic_publish("", queue, b"s%d" % k)
    wait_until(conn, lambda: len(held) == 2)
    first.basic_cancel(tag)
    settle(conn)
    assert got == []  # s2, s3 wait: the cancelled consumer still holds s0, s1
    first.basic_ack(held[0])
    settle(conn)
    assert got == []
    first.basic_nack(held[1], requeue=True)
    wait_until(conn, lambda: len(got) == 3)
    assert [body for _n, body in got] == [b"s1", b"s2", b"s3"]


def test_a_closed_channels_messages_go_to_the_next_consumer_first(
    ch: BlockingChannel, url: str
) -> None:
    queue = new_queue(ch, arguments={"x-single-active-consumer": True})
    consumer = connect(url)
    first = consumer.channel()
    first.basic_qos(prefetch_count=1)
    held: list[bytes] = []
    first.basic_consume(queue, lambda _c, _m, _p, body: held.append(body))
    got: list[Any] = []
    consumer.channel().basic_consume(queue, recorder(got, "next"), auto_ack=True)
    for k in range(3):
        ch.basic_publish("", queue, b"s%d" % k)
    wait_until(consumer, lambda: len(held) == 1)
    first.close()
    wait_until(consumer, lambda: len(got) == 3)
    assert [body for _n, body in got] == [b"s0", b"s1", b"s2"]
    consumer.close()


def test_exclusive_consume_on_a_single_active_consumer_queue(
    ch: BlockingChannel, conn: BlockingConnection, vhost: str
) -> None:
    queue = new_queue(ch, arguments={"x-single-active-consumer": True})
    conn.channel().basic_consume(queue, lambda *_a: None)
    with pytest.raises(ChannelClosedByBroker) as info:
        conn.channel().basic_consume(queue, lambda *_a: None, exclusive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        f"ACCESS_REFUSED - queue '{queue}' in vhost '{vhost}' in exclusive use",
    )
