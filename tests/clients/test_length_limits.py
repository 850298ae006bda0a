"""Queue length limits (x-max-length, x-max-length-bytes, x-overflow) through pika and
aio-pika, as RabbitMQ 3.10 applies them (each case seen on a real broker first).

Limits count ready messages and their body bytes; unacked messages do not count.
drop-head drops from the head (dead-lettered, reason ``maxlen``); reject-publish
refuses what would go over (basic.nack with confirms), even with a consumer
waiting; reject-publish-dlx also dead-letters it.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pika
import pytest
from aiormq.exceptions import DeliveryError
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import NackError
from pikakit import Inbox, new_queue, settle, wait_until
from wirekit import entries, record_wire, wire

pytestmark = pytest.mark.timeout(60)


def bodies(ch: BlockingChannel, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _p, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def test_drop_head_dead_letters_the_oldest(
    ch: BlockingChannel, dead: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record_wire(monkeypatch)
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-max-length": 2, "x-dead-letter-exchange": dlx})
    for i in range(4):
        ch.basic_publish("", queue, b"m%d" % i)
    _m, properties, _b = ch.basic_get(dead_queue)
    assert entries(entries(wire(properties))["x-death"][1][0][1])["reason"] == ("S", "maxlen")
    assert bodies(ch, queue) == [b"m2", b"m3"]
    assert bodies(ch, dead_queue) == [b"m1"]  # m0 was read above


def test_unacked_messages_do_not_count(ch: BlockingChannel, conn: BlockingConnection) -> None:
    queue = new_queue(ch, arguments={"x-max-length": 2})
    ch.basic_publish("", queue, b"u0")
    ch.basic_publish("", queue, b"u1")
    conn.channel().basic_get(queue)  # u0 now unacked
    ch.basic_publish("", queue, b"u2")
    ch.basic_publish("", queue, b"u3")
    assert bodies(ch, queue) == [b"u2", b"u3"]


def test_byte_limit_counts_bodies_only(ch: BlockingChannel, dead: tuple[str, str]) -> None:
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-max-length-bytes": 10, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"12345")
    ch.basic_publish("", queue, b"67890")
    ch.basic_publish("", queue, b"ab", pika.BasicProperties(headers={"big": "x" * 200}))
    assert bodies(ch, queue) == [b"67890", b"ab"]
    ch.basic_publish("", queue, b"x" * 11)  # alone over the limit: dropped itself
    assert bodies(ch, queue) == []
    assert bodies(ch, dead_queue) == [b"12345", b"x" * 11]


def test_zero_length_drops_unless_a_consumer_takes_it(
    ch: BlockingChannel, conn: BlockingConnection, dead: tuple[str, str]
) -> None:
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-max-length": 0, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"nobody")
    inbox = Inbox()
    ch.basic_consume(queue, inbox, auto_ack=True)
    ch.basic_publish("", queue, b"someone")
    wait_until(conn, lambda: len(inbox) == 1)
    assert inbox.bodies == [b"someone"]
    assert bodies(ch, dead_queue) == [b"nobody"]


def test_requeue_can_push_a_queue_over_its_limit(
    ch: BlockingChannel, conn: BlockingConnection, dead: tuple[str, str]
) -> None:
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-max-length": 2, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"m0")
    ch.basic_publish("", queue, b"m1")
    holder = conn.channel()
    method, _p, _b = holder.basic_get(queue)
    ch.basic_publish("", queue, b"m2")
    holder.basic_nack(method.delivery_tag, requeue=True)  # back at the head: 3 ready
    assert bodies(ch, queue) == [b"m1", b"m2"]
    assert bodies(ch, dead_queue) == [b"m0"]


def test_priority_queue_drops_the_highest_priority_first(ch: BlockingChannel) -> None:
    queue = new_queue(ch, arguments={"x-max-priority": 5, "x-max-length": 2})
    for i, priority in enumerate([5, 1, 3]):
        ch.basic_publish("", queue, b"%d" % i, pika.BasicProperties(priority=priority))
    assert bodies(ch, queue) == [b"2", b"1"]


# ------------------------------------------------------------- reject-publish


def test_reject_publish_nacks_and_keeps_the_queue(
    ch: BlockingChannel, dead: tuple[str, str]
) -> None:
    dlx, dead_queue = dead
    queue = new_queue(
        ch,
        arguments={
            "x-max-length": 1,
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": dlx,
        },
    )
    ch.basic_publish("", queue, b"r1")
    with pytest.raises(NackError):
        ch.basic_publish("", queue, b"r2")
    assert bodies(ch, queue) == [b"r1"]
    assert bodies(ch, dead_queue) == []


def test_reject_publish_without_confirms_drops_silently(conn: BlockingConnection) -> None:
    channel = conn.channel()
    queue = new_queue(channel, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    for body in (b"r1", b"r2", b"r3"):
        channel.basic_publish("", queue, body)
    settle(conn)
    assert channel.is_open
    assert bodies(channel, queue) == [b"r1"]


def test_reject_publish_refuses_even_with_a_consumer_waiting(
    ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    inbox = Inbox()
    ch.basic_consume(queue, inbox, auto_ack=True)
    with pytest.raises(NackError):
        ch.basic_publish("", queue, b"x")
    settle(conn)
    assert len(inbox) == 0


def test_reject_publish_lets_requeues_over_the_limit(
    ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    ch.basic_publish("", queue, b"m0")
    ch.basic_publish("", queue, b"m1")
    holder = conn.channel()
    method, _p, _b = holder.basic_get(queue)
    ch.basic_publish("", queue, b"m2")
    holder.basic_nack(method.delivery_tag, requeue=True)
    assert bodies(ch, queue) == [b"m0", b"m1", b"m2"]


# The x-death entry as RabbitMQ 3.10.8 builds it (4.0 orders its keys differently:
# tests/clients/test_dead_letter.py).
@pytest.mark.rabbitmq_version("3.10")
def test_reject_publish_dlx_nacks_and_dead_letters(
    ch: BlockingChannel, dead: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record_wire(monkeypatch)
    dlx, dead_queue = dead
    queue = new_queue(
        ch,
        arguments={
            "x-max-length": 1,
            "x-overflow": "reject-publish-dlx",
            "x-dead-letter-exchange": dlx,
        },
    )
    ch.basic_publish("", queue, b"r1")
    with pytest.raises(NackError):
        ch.basic_publish("", queue, b"r2", pika.BasicProperties(expiration="9000"))
    assert bodies(ch, queue) == [b"r1"]
    _m, properties, body = ch.basic_get(dead_queue, auto_ack=True)
    assert body == b"r2"
    assert wire(properties)[0] == (
        "x-death",
        (
            "A",
            [
                (
                    "F",
                    [
                        ("count", ("l", 1)),
                        ("reason", ("S", "maxlen")),
                        ("queue", ("S", queue)),
                        ("time", entries(entries(wire(properties))["x-death"][1][0][1])["time"]),
                        ("exchange", ("S", "")),
                        ("routing-keys", ("A", [("S", queue)])),
                        ("original-expiration", ("S", "9000")),
                    ],
                )
            ],
        ),
    )


def test_nacks_and_acks_keep_publish_order(url: str, ch: BlockingChannel) -> None:
    """Pipelined publishes, some refused: each confirm answers its own publish."""
    accepting = new_queue(ch)
    full = new_queue(ch, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})

    async def run() -> list[str]:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            targets = [accepting, full, accepting, accepting, full, accepting]
            results = await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(b"x", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=target,
                    )
                    for target in targets
                ),
                return_exceptions=True,
            )
        return ["nack" if isinstance(r, DeliveryError) else "ack" for r in results]

    assert asyncio.run(run()) == ["ack", "nack", "ack", "ack", "nack", "ack"]
