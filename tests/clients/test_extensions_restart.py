"""Queue extensions across a restart of a broker with a data dir (pika).

TTL deadlines are stored with each message (as RabbitMQ's queue index stores its
expiry), so a message's time keeps running while the broker is down; features come
back from the queue's arguments; dead-letter history lives in the headers; a quorum
queue keeps every message and its delivery count.

Every broker of a test shares one ManualClock, so "down for 0.6 s" is the clock
moving while no broker runs, and a deadline is checked a millisecond either side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pikakit import connect
from wirekit import entries, record_wire, wire

import amqpbroker
from amqpbroker.testing import eventually

pytestmark = pytest.mark.timeout(60)

PERSISTENT = pika.BasicProperties(delivery_mode=2)


@pytest.fixture
def clock() -> amqpbroker.ManualClock:
    """Broker time for every broker of the test, moved only by the test."""
    return amqpbroker.ManualClock()


@pytest.fixture
def restartable(
    tmp_path: Path, clock: amqpbroker.ManualClock
) -> Iterator[Callable[..., BlockingChannel]]:
    """Call it to (re)start the broker on the same data dir and get a channel;
    ``down`` is how far broker time moves while it is stopped."""
    state: dict[str, Any] = {}

    def restart(down: float = 0.0) -> BlockingChannel:
        stop()
        clock.advance(down)
        broker = amqpbroker.Broker(data_dir=str(tmp_path), clock=clock).start()
        connection = connect(broker.url)
        state.update(broker=broker, connection=connection)
        channel = connection.channel()
        channel.confirm_delivery()
        return channel

    def stop() -> None:
        if "connection" in state and state["connection"].is_open:
            state["connection"].close()
        if "broker" in state:
            state.pop("broker").stop()

    yield restart
    stop()


def count(ch: BlockingChannel, queue: str) -> int:
    return int(ch.queue_declare(queue, passive=True, durable=True).method.message_count)


def bodies(ch: BlockingChannel, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _p, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def durable_dlx(ch: BlockingChannel) -> tuple[str, str]:
    ch.exchange_declare("dlx", "fanout", durable=True)
    ch.queue_declare("dead", durable=True)
    ch.queue_bind("dead", "dlx")
    return "dlx", "dead"


def test_a_ttl_keeps_running_while_the_broker_is_down(
    restartable: Callable[..., BlockingChannel], clock: amqpbroker.ManualClock
) -> None:
    ch = restartable()
    dlx, dead = durable_dlx(ch)
    ch.queue_declare(
        "ttl", durable=True, arguments={"x-message-ttl": 1200, "x-dead-letter-exchange": dlx}
    )
    ch.basic_publish("", "ttl", b"queue-ttl", PERSISTENT)
    ch.queue_declare("plain", durable=True)
    ch.basic_publish(
        "", "plain", b"own-ttl", pika.BasicProperties(delivery_mode=2, expiration="1200")
    )
    clock.advance(0.6)
    ch = restartable()
    assert (count(ch, "ttl"), count(ch, "plain")) == (1, 1)  # not expired yet
    clock.advance(0.599)
    assert (count(ch, "ttl"), count(ch, "plain")) == (1, 1)
    clock.advance(0.002)  # 1.2 s since publishing, not 1.2 s past the restart
    assert (count(ch, "ttl"), count(ch, "plain")) == (0, 0)
    assert bodies(ch, dead) == [b"queue-ttl"]


def test_deadlines_that_passed_while_down_expire_at_start(
    restartable: Callable[..., BlockingChannel],
) -> None:
    ch = restartable()
    dlx, dead = durable_dlx(ch)
    ch.queue_declare(
        "ttl", durable=True, arguments={"x-message-ttl": 400, "x-dead-letter-exchange": dlx}
    )
    ch.basic_publish("", "ttl", b"m", PERSISTENT)
    ch = restartable(down=0.6)  # the deadline passes while nothing runs
    # Due at start: the broker runs it without the clock moving again.
    eventually(lambda: count(ch, "ttl") == 0)
    assert bodies(ch, dead) == [b"m"]


def test_limits_and_priorities_come_back_with_the_queue(
    restartable: Callable[..., BlockingChannel],
) -> None:
    ch = restartable()
    ch.queue_declare("limited", durable=True, arguments={"x-max-length": 2})
    ch.queue_declare("prio", durable=True, arguments={"x-max-priority": 5})
    for i in range(2):
        ch.basic_publish("", "limited", b"m%d" % i, PERSISTENT)
    for i, priority in enumerate([1, 5, 3]):
        ch.basic_publish(
            "", "prio", b"p%d" % i, pika.BasicProperties(delivery_mode=2, priority=priority)
        )
    ch = restartable()
    ch.basic_publish("", "limited", b"m2", PERSISTENT)
    assert bodies(ch, "limited") == [b"m1", b"m2"]
    assert bodies(ch, "prio") == [b"p1", b"p2", b"p0"]


def test_dead_letter_history_survives(
    restartable: Callable[..., BlockingChannel], monkeypatch: pytest.MonkeyPatch
) -> None:
    record_wire(monkeypatch)
    ch = restartable()
    dlx, dead = durable_dlx(ch)
    ch.queue_declare("src", durable=True, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", "src", b"m", PERSISTENT)
    method, _p, _b = ch.basic_get("src")
    ch.basic_reject(method.delivery_tag, requeue=False)
    _m, before, _b = ch.basic_get(dead)  # unacked: stays stored
    ch = restartable()
    method, after, body = ch.basic_get(dead, auto_ack=True)
    assert (body, method.redelivered) == (b"m", True)
    assert wire(after) == wire(before)
    assert entries(entries(wire(after))["x-death"][1][0][1])["reason"] == ("S", "rejected")


def test_quorum_queues_keep_every_message_and_its_delivery_count(
    restartable: Callable[..., BlockingChannel], monkeypatch: pytest.MonkeyPatch
) -> None:
    record_wire(monkeypatch)
    ch = restartable()
    ch.queue_declare(
        "qq", durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 5}
    )
    ch.basic_publish("", "qq", b"transient")  # delivery mode 1: kept all the same
    method, _p, _b = ch.basic_get("qq")
    ch.basic_nack(method.delivery_tag, requeue=True)
    ch = restartable()
    method, properties, body = ch.basic_get("qq", auto_ack=True)
    assert (body, method.redelivered) == (b"transient", True)
    assert wire(properties) == [("x-delivery-count", ("l", 1))]


def test_an_unused_queue_still_expires_after_a_restart(
    restartable: Callable[..., BlockingChannel], clock: amqpbroker.ManualClock
) -> None:
    ch = restartable()
    ch.queue_declare("expiring", durable=True, arguments={"x-expires": 300})
    ch = restartable()
    clock.advance(0.3)
    probe = ch.connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        probe.queue_declare("expiring", passive=True)
    assert info.value.reply_code == 404
