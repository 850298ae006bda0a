"""Message TTL (x-message-ttl, expiration) and queue expiry (x-expires) through pika.

RabbitMQ 3.10's rules, each seen on a real broker first: only the head of a queue
expires (on a timer, with nobody reading), so a short-lived message behind a
long-lived one waits for it; expired messages are never delivered, basic.get
included; they are dead-lettered with reason ``expired``.

Broker time is the test's (``amqp_clock``): ``advance`` runs what falls due before
it returns, so the counts read right after it are exact and nothing sleeps.  The
durations are the ones the tests were first written with against RabbitMQ.
"""

from __future__ import annotations

from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker
from pikakit import Inbox, connect, new_queue, settle, wait_until
from wirekit import entries, record_wire, wire

from amqpbroker import ManualClock

pytestmark = pytest.mark.timeout(60)


def count(conn: BlockingConnection, queue: str) -> int:
    channel = conn.channel()
    try:
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    finally:
        channel.close()


def exists(conn: BlockingConnection, queue: str) -> bool:
    """Note: a passive declare counts as a use of the queue (it resets x-expires)."""
    channel = conn.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    channel.close()
    return True


def bodies(ch: BlockingChannel, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _p, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def expiring(ms: int | str, **kwargs: Any) -> pika.BasicProperties:
    return pika.BasicProperties(expiration=str(ms), **kwargs)


# ------------------------------------------------------------ message TTL


def test_expired_head_is_dead_lettered_without_anyone_reading(
    amqp_clock: ManualClock,
    ch: BlockingChannel,
    conn: BlockingConnection,
    dead: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_wire(monkeypatch)
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"m", expiring(100, headers={"h": 1}))
    amqp_clock.advance(0.4)
    assert count(conn, queue) == 0
    _m, properties, body = ch.basic_get(dead_queue, auto_ack=True)
    assert body == b"m"
    assert properties.expiration is None
    death = entries(entries(wire(properties))["x-death"][1][0][1])
    assert (death["reason"], death["original-expiration"]) == (("S", "expired"), ("S", "100"))


def test_queue_ttl_expires_messages_on_a_timer(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-message-ttl": 150})
    for body in (b"a", b"b", b"c"):
        ch.basic_publish("", queue, body)
    assert count(conn, queue) == 3
    amqp_clock.advance(0.149)
    assert count(conn, queue) == 3
    amqp_clock.advance(0.002)
    assert count(conn, queue) == 0


def test_only_the_head_expires(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection, dead: tuple[str, str]
) -> None:
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"A")  # lives forever
    ch.basic_publish("", queue, b"B", expiring(100))  # expired, but not at the head
    amqp_clock.advance(0.4)
    assert (count(conn, queue), count(conn, dead_queue)) == (2, 0)
    method, _p, body = ch.basic_get(queue, auto_ack=True)
    # B reached the head when A left, and went before get-ok counted what is left.
    assert (body, method.message_count) == (b"A", 0)
    assert (count(conn, queue), count(conn, dead_queue)) == (0, 1)


def test_a_short_ttl_behind_a_longer_one_waits_for_it(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch)
    ch.basic_publish("", queue, b"long", expiring(300))
    ch.basic_publish("", queue, b"short", expiring(100))
    amqp_clock.advance(0.299)
    assert count(conn, queue) == 2  # short's 100 ms are long gone
    amqp_clock.advance(0.002)
    assert count(conn, queue) == 0  # both went when the head expired


def test_expired_messages_are_never_delivered(
    amqp_clock: ManualClock, ch: BlockingChannel, url: str
) -> None:
    queue = new_queue(ch)
    ch.basic_publish("", queue, b"old", expiring(50))
    ch.basic_publish("", queue, b"new")
    amqp_clock.advance(0.15)
    consumer = connect(url)
    inbox = Inbox()
    consumer.channel().basic_consume(queue, inbox, auto_ack=True)
    wait_until(consumer, lambda: len(inbox) == 1)
    settle(consumer)
    assert inbox.bodies == [b"new"]
    consumer.close()


def test_zero_ttl_reaches_only_a_waiting_consumer(
    ch: BlockingChannel, conn: BlockingConnection, dead: tuple[str, str]
) -> None:
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"nobody", expiring(0))
    assert (count(conn, queue), count(conn, dead_queue)) == (0, 1)
    inbox = Inbox()
    ch.basic_consume(queue, inbox, auto_ack=True)
    ch.basic_publish("", queue, b"someone", expiring(0))
    wait_until(conn, lambda: len(inbox) == 1)
    assert inbox.bodies == [b"someone"]
    assert count(conn, dead_queue) == 1


def test_zero_queue_ttl_delivers_to_a_waiting_consumer(
    ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-message-ttl": 0})
    ch.basic_publish("", queue, b"gone")
    inbox = Inbox()
    ch.basic_consume(queue, inbox, auto_ack=True)
    ch.basic_publish("", queue, b"taken")
    wait_until(conn, lambda: len(inbox) == 1)
    settle(conn)
    assert inbox.bodies == [b"taken"]


@pytest.mark.parametrize(("queue_ttl", "message_ttl"), [(100, 5000), (5000, 100)])
def test_the_shorter_of_queue_and_message_ttl_applies(
    amqp_clock: ManualClock,
    ch: BlockingChannel,
    conn: BlockingConnection,
    queue_ttl: int,
    message_ttl: int,
) -> None:
    queue = new_queue(ch, arguments={"x-message-ttl": queue_ttl})
    ch.basic_publish("", queue, b"m", expiring(message_ttl))
    amqp_clock.advance(0.3)
    assert count(conn, queue) == 0


def test_delivered_messages_keep_their_expiration(ch: BlockingChannel) -> None:
    queue = new_queue(ch, arguments={"x-message-ttl": 60000})
    ch.basic_publish("", queue, b"m", expiring(30000))
    _m, properties, _b = ch.basic_get(queue, auto_ack=True)
    assert properties.expiration == "30000"


def test_unacked_messages_do_not_expire_but_expire_when_requeued(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection, dead: tuple[str, str]
) -> None:
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 200})
    ch.basic_publish("", queue, b"m")
    holder = conn.channel()
    method, _p, _b = holder.basic_get(queue)
    amqp_clock.advance(60)
    assert count(conn, dead_queue) == 0  # held unacked: no expiry
    holder.basic_reject(method.delivery_tag, requeue=True)
    assert count(conn, queue) == 0
    assert count(conn, dead_queue) == 1  # dead-lettered as it came back


def test_closing_a_channel_requeues_and_expires_what_it_held(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection, dead: tuple[str, str]
) -> None:
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 200})
    ch.basic_publish("", queue, b"m")
    holder = conn.channel()
    holder.basic_get(queue)
    amqp_clock.advance(0.3)
    holder.close()
    assert (count(conn, queue), count(conn, dead_queue)) == (0, 1)


def test_ttl_on_a_plain_queue_that_already_holds_messages(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch)
    ch.basic_publish("", queue, b"first")
    ch.basic_publish("", queue, b"expiring", expiring(50))
    ch.basic_publish("", queue, b"last")
    amqp_clock.advance(0.15)
    assert bodies(ch, queue) == [b"first", b"last"]


def test_in_a_priority_queue_only_the_overall_head_expires(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-max-priority": 5})
    ch.basic_publish("", queue, b"low", expiring(100, priority=1))
    ch.basic_publish("", queue, b"high", pika.BasicProperties(priority=5))
    amqp_clock.advance(0.3)
    assert count(conn, queue) == 2
    assert bodies(ch, queue) == [b"high"]  # low expired once it reached the head


# ---------------------------------------------------------------- x-expires


def test_an_unused_queue_is_deleted(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-expires": 300})
    amqp_clock.advance(0.3)
    assert not exists(conn, queue)


def test_declares_and_gets_keep_a_queue_alive_but_publishes_do_not(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection
) -> None:
    declared = new_queue(ch, arguments={"x-expires": 300})
    fetched = new_queue(ch, arguments={"x-expires": 300})
    published = new_queue(ch, arguments={"x-expires": 300})
    for _ in range(4):
        amqp_clock.advance(0.15)
        ch.queue_declare(declared, arguments={"x-expires": 300})
        ch.basic_get(fetched)
        ch.basic_publish("", published, b"m")
    amqp_clock.advance(0.1)
    assert (exists(conn, declared), exists(conn, fetched)) == (True, True)
    assert not exists(conn, published)


def test_a_consumer_keeps_a_queue_alive_until_it_goes(
    amqp_clock: ManualClock, ch: BlockingChannel, conn: BlockingConnection
) -> None:
    queue = new_queue(ch, arguments={"x-expires": 300})
    tag = ch.basic_consume(queue, Inbox())  # returns at consume-ok
    amqp_clock.advance(3600)
    assert exists(conn, queue)
    ch.basic_cancel(tag)
    amqp_clock.advance(0.299)
    assert exists(conn, queue)  # unused for 299 ms (and used again by asking)
    amqp_clock.advance(0.301)
    assert not exists(conn, queue)


def test_an_expiring_queue_does_not_dead_letter_its_messages(
    amqp_clock: ManualClock,
    ch: BlockingChannel,
    conn: BlockingConnection,
    dead: tuple[str, str],
    url: str,
) -> None:
    dlx, dead_queue = dead
    queue = new_queue(ch, arguments={"x-expires": 300, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", queue, b"ready")
    ch.basic_publish("", queue, b"unacked")
    other = connect(url)
    other.channel().basic_get(queue)  # an unacked delivery does not keep it either
    amqp_clock.advance(0.5)
    assert not exists(conn, queue)
    assert count(conn, dead_queue) == 0
    other.close()
