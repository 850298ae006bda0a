"""Dead lettering through pika: x-death exactly as RabbitMQ 3.10 and 4.0 build it.

Every table here (key order and field types included) was first read from a real
RabbitMQ 3.10.8 or 4.0.5 with the same client calls; wirekit shows the raw table.
Tests of what only one of them does are pinned to it.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import ANY

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pikakit import get_eventually as get
from pikakit import new_queue
from wirekit import entries, properties_of, record_wire, wire

from amqpbroker import ManualClock

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _wire(monkeypatch: pytest.MonkeyPatch) -> None:
    record_wire(monkeypatch)


@pytest.fixture
def ch(conn: BlockingConnection) -> BlockingChannel:
    channel = conn.channel()
    channel.confirm_delivery()  # a publish returns once the queues have it
    return channel


def dead_letter_setup(ch: BlockingChannel, kind: str = "fanout", key: str = "") -> tuple[str, str]:
    """A DLX and a queue that collects what it routes; returns (exchange, queue)."""
    dlx = new_queue(ch).replace("q-", "dlx-")
    ch.exchange_declare(dlx, kind)
    dead = new_queue(ch)
    ch.queue_bind(dead, dlx, key)
    return dlx, dead


def reject(ch: BlockingChannel, queue: str, requeue: bool = False) -> None:
    method, _p, _b = ch.basic_get(queue)
    assert method is not None
    ch.basic_reject(method.delivery_tag, requeue=requeue)


def first_death(reason: str, queue: str, exchange: str = "") -> list[tuple[str, Any]]:
    return [
        ("x-first-death-exchange", ("S", exchange)),
        ("x-first-death-queue", ("S", queue)),
        ("x-first-death-reason", ("S", reason)),
    ]


# ------------------------------------------------------------------- x-death


@pytest.mark.rabbitmq_version("3.10")
def test_rejected_message_carries_x_death_as_rabbitmq_builds_it(
    ch: BlockingChannel, amqp_clock: ManualClock
) -> None:
    dlx, dead = dead_letter_setup(ch)
    src = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish(
        "",
        src,
        b"m1",
        pika.BasicProperties(
            headers={"a": 1, "CC": ["c1"]}, expiration="60000", delivery_mode=2, priority=3
        ),
    )
    reject(ch, src)
    method, properties, body = get(ch, dead)
    assert (method.exchange, method.routing_key, method.redelivered, body) == (
        dlx,
        src,
        False,
        b"m1",
    )
    # Headers sorted by key; the new entry in RabbitMQ's building order.
    assert wire(properties) == [
        ("CC", ("A", [("S", "c1")])),
        ("a", ("I", 1)),
        (
            "x-death",
            (
                "A",
                [
                    (
                        "F",
                        [
                            ("count", ("l", 1)),
                            ("reason", ("S", "rejected")),
                            ("queue", ("S", src)),
                            ("time", ("T", ANY)),
                            ("exchange", ("S", "")),
                            ("routing-keys", ("A", [("S", src), ("S", "c1")])),
                            ("original-expiration", ("S", "60000")),
                        ],
                    )
                ],
            ),
        ),
        *first_death("rejected", src),
    ]
    death = entries(entries(wire(properties))["x-death"][1][0][1])
    assert death["time"][1] == int(amqp_clock())  # seconds since the epoch, broker time
    # expiration moved into x-death; the other properties are untouched.
    full = properties_of(properties)
    assert (full.expiration, full.delivery_mode, full.priority) == (None, 2, 3)


@pytest.mark.rabbitmq_version("3.10")
def test_same_queue_and_reason_again_increments_the_entry(
    ch: BlockingChannel, amqp_clock: ManualClock
) -> None:
    dlx, dead = dead_letter_setup(ch, "topic", "#")
    src = new_queue(
        ch, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dl"}
    )
    ch.queue_bind(src, "amq.direct", "k3")
    ch.queue_bind(src, "amq.direct", "k4")
    ch.basic_publish("amq.direct", "k3", b"m", pika.BasicProperties(expiration="50000"))
    reject(ch, src)
    _m, first, body = get(ch, dead)
    first_time = entries(entries(wire(first))["x-death"][1][0][1])["time"]
    # A later second: the second death's time would differ if it were used.
    amqp_clock.advance(1)
    # Back in through another key, with another expiration, rejected again.
    ch.basic_publish(
        "amq.direct", "k4", body, pika.BasicProperties(headers=first.headers, expiration="70000")
    )
    reject(ch, src)
    method, properties, _b = get(ch, dead)
    assert method.routing_key == "dl"
    # count + 1; the first death's time, routing keys and original-expiration stay;
    # the entry's keys are now sorted.
    assert wire(properties) == [
        (
            "x-death",
            (
                "A",
                [
                    (
                        "F",
                        [
                            ("count", ("l", 2)),
                            ("exchange", ("S", "amq.direct")),
                            ("original-expiration", ("S", "50000")),
                            ("queue", ("S", src)),
                            ("reason", ("S", "rejected")),
                            ("routing-keys", ("A", [("S", "k3")])),
                            ("time", first_time),
                        ],
                    )
                ],
            ),
        ),
        *first_death("rejected", src, "amq.direct"),
    ]


@pytest.mark.rabbitmq_version("3.10")
def test_a_death_elsewhere_goes_first_and_is_sorted(ch: BlockingChannel) -> None:
    dlx, dead = dead_letter_setup(ch)
    src = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", src, b"m", pika.BasicProperties(headers={"h": "v"}))
    reject(ch, src)
    _m, properties, body = get(ch, dead)
    other = new_queue(ch, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 10})
    ch.basic_publish("", other, body, pika.BasicProperties(headers=properties.headers))
    _m, properties, _b = get(ch, dead)
    table = wire(properties)
    deaths = entries(table)["x-death"][1]
    assert deaths[0] == (
        "F",
        [
            ("count", ("l", 1)),
            ("exchange", ("S", "")),
            ("queue", ("S", other)),
            ("reason", ("S", "expired")),
            ("routing-keys", ("A", [("S", other)])),
            ("time", ("T", ANY)),
        ],
    )
    assert [entries(d[1])["queue"] for d in deaths] == [("S", other), ("S", src)]
    # x-first-death-* name the first death and never change.
    assert table[-3:] == first_death("rejected", src)
    assert [key for key, _v in table] == [
        "h",
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
    ]  # RabbitMQ 3.10 has no x-last-death-* headers (3.13 added them)


@pytest.mark.rabbitmq_version("3.10")
def test_existing_first_death_reason_is_kept_and_a_bad_x_death_replaced(
    ch: BlockingChannel,
) -> None:
    _dlx, dead = dead_letter_setup(ch)
    src = new_queue(ch, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    ch.basic_publish(
        "",
        src,
        b"m",
        pika.BasicProperties(headers={"x-death": "junk", "x-first-death-reason": "mine"}),
    )
    reject(ch, src)
    _m, properties, _b = get(ch, dead)
    table = wire(properties)
    assert [key for key, _v in table] == ["x-death", "x-first-death-reason"]
    assert entries(table)["x-first-death-reason"] == ("S", "mine")
    [entry] = entries(table)["x-death"][1]
    assert [key for key, _v in entry[1]] == [
        "count", "reason", "queue", "time", "exchange", "routing-keys"
    ]  # fmt: skip


def last_death(reason: str, queue: str, exchange: str = "") -> list[tuple[str, Any]]:
    return [
        ("x-last-death-exchange", ("S", exchange)),
        ("x-last-death-queue", ("S", queue)),
        ("x-last-death-reason", ("S", reason)),
    ]


@pytest.mark.rabbitmq_version("4.0")
def test_4_0_entry_order_and_last_death_headers(ch: BlockingChannel) -> None:
    dlx, dead = dead_letter_setup(ch)
    src = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish(
        "", src, b"m1", pika.BasicProperties(headers={"a": 1, "CC": ["c1"]}, expiration="60000")
    )
    reject(ch, src)
    _m, properties, _b = get(ch, dead)
    assert wire(properties) == [
        ("CC", ("A", [("S", "c1")])),
        ("a", ("I", 1)),
        (
            "x-death",
            (
                "A",
                [
                    (
                        "F",
                        [
                            ("original-expiration", ("S", "60000")),
                            ("count", ("l", 1)),
                            ("reason", ("S", "rejected")),
                            ("queue", ("S", src)),
                            ("time", ("T", ANY)),
                            ("exchange", ("S", "")),
                            ("routing-keys", ("A", [("S", src), ("S", "c1")])),
                        ],
                    )
                ],
            ),
        ),
        *first_death("rejected", src),
        *last_death("rejected", src),
    ]


@pytest.mark.rabbitmq_version("4.0")
def test_4_0_ignores_death_headers_from_publishers(ch: BlockingChannel) -> None:
    _dlx, dead = dead_letter_setup(ch)
    src = new_queue(ch, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    ch.basic_publish("", src, b"m", pika.BasicProperties(headers={"h": 1}))
    reject(ch, src)
    _m, first, body = get(ch, dead)
    # Sent back in with the headers it came out with: no history for 4.0.
    ch.basic_publish("", src, body, pika.BasicProperties(headers=first.headers))
    reject(ch, src)
    _m, properties, _b = get(ch, dead)
    table = wire(properties)
    [entry] = entries(table)["x-death"][1]
    assert entries(entry[1])["count"] == ("l", 1)
    assert table[-6:] == [*first_death("rejected", src), *last_death("rejected", src)]
    # Made-up death headers are dropped too.
    ch.basic_publish(
        "",
        src,
        b"m",
        pika.BasicProperties(headers={"x-death": "junk", "x-first-death-reason": "mine"}),
    )
    reject(ch, src)
    _m, properties, _b = get(ch, dead)
    assert entries(wire(properties))["x-first-death-reason"] == ("S", "rejected")


# ------------------------------------------------------------------- routing


def test_dead_letters_are_routed_by_the_original_keys_and_cc(ch: BlockingChannel) -> None:
    dlx, dead = dead_letter_setup(ch, "topic", "c1")  # bound by the CC key only
    src = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    ch.queue_bind(src, "amq.direct", "k1")
    ch.basic_publish("amq.direct", "k1", b"m", pika.BasicProperties(headers={"CC": ["c1"]}))
    reject(ch, src)
    method, properties, _b = get(ch, dead)
    assert method.routing_key == "k1"  # delivered with the publish key
    death = entries(entries(wire(properties))["x-death"][1][0][1])
    assert death["routing-keys"] == ("A", [("S", "k1"), ("S", "c1")])
    assert death["exchange"] == ("S", "amq.direct")
    assert ch.basic_get(dead)[0] is None  # one copy


def test_dead_letter_routing_key_replaces_the_keys_and_drops_cc(ch: BlockingChannel) -> None:
    dlx, dead = dead_letter_setup(ch, "topic", "#")
    src = new_queue(
        ch, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "zz"}
    )
    ch.basic_publish("", src, b"m", pika.BasicProperties(headers={"CC": ["c9"]}))
    reject(ch, src)
    method, properties, _b = get(ch, dead)
    assert method.routing_key == "zz"
    table = entries(wire(properties))
    assert "CC" not in table
    assert entries(table["x-death"][1][0][1])["routing-keys"] == ("A", [("S", src), ("S", "c9")])


def test_nack_without_requeue_dead_letters_each_message(ch: BlockingChannel) -> None:
    dlx, dead = dead_letter_setup(ch)
    src = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    for body in (b"a", b"b"):
        ch.basic_publish("", src, body)
    ch.basic_get(src)
    method, _p, _b = ch.basic_get(src)
    ch.basic_nack(method.delivery_tag, multiple=True, requeue=False)
    assert [get(ch, dead)[2] for _ in range(2)] == [b"a", b"b"]


def test_a_missing_dead_letter_exchange_drops_the_message(ch: BlockingChannel) -> None:
    src = new_queue(ch, arguments={"x-dead-letter-exchange": "nowhere"})
    ch.basic_publish("", src, b"m")
    reject(ch, src)
    assert ch.is_open
    assert ch.queue_declare(src, passive=True).method.message_count == 0


def test_requeued_rejects_are_not_dead_lettered(ch: BlockingChannel) -> None:
    dlx, dead = dead_letter_setup(ch)
    src = new_queue(ch, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", src, b"m")
    reject(ch, src, requeue=True)
    assert ch.queue_declare(dead, passive=True).method.message_count == 0
    assert ch.basic_get(src, auto_ack=True)[0].redelivered


# -------------------------------------------------------------------- cycles


def test_an_automatic_cycle_drops_the_message(ch: BlockingChannel, amqp_clock: ManualClock) -> None:
    # Expired messages dead-lettered back to their own queue would loop forever.
    src = new_queue(ch)
    ch.queue_delete(src)
    ch.queue_declare(
        src,
        arguments={
            "x-message-ttl": 50,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": src,
        },
    )
    ch.basic_publish("", src, b"m")
    amqp_clock.advance(0.05)  # expired: dead-lettered to src itself, and dropped there
    assert ch.queue_declare(src, passive=True).method.message_count == 0
    amqp_clock.advance(3600)  # nothing comes back later either
    assert ch.queue_declare(src, passive=True).method.message_count == 0


def test_a_cycle_through_a_reject_is_allowed(ch: BlockingChannel) -> None:
    src = new_queue(ch)
    ch.queue_delete(src)
    ch.queue_declare(
        src, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": src}
    )
    ch.basic_publish("", src, b"m")
    reject(ch, src)
    reject(ch, src)
    _m, properties, body = get(ch, src)
    assert body == b"m"
    death = entries(entries(wire(properties))["x-death"][1][0][1])
    assert (death["count"], death["reason"]) == (("l", 2), ("S", "rejected"))


def test_only_the_cycling_queue_misses_out(ch: BlockingChannel, amqp_clock: ManualClock) -> None:
    dlx, other = dead_letter_setup(ch)
    src = new_queue(ch, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": dlx})
    ch.queue_bind(src, dlx)  # the DLX routes back to src and to the other queue
    ch.basic_publish("", src, b"m")
    amqp_clock.advance(0.05)
    _m, _p, body = get(ch, other)
    assert body == b"m"
    assert ch.queue_declare(src, passive=True).method.message_count == 0
