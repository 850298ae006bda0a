"""Sender-selected distribution (CC and BCC headers) through pika, as RabbitMQ 3.10
does it (seen on a real broker first).  user_id validation is in test_content.py."""

from __future__ import annotations

from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker
from pikakit import new_queue, settle
from wirekit import record_wire, wire

from amqpbroker.testing.pytest_plugin import each_version

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bound(ch: BlockingChannel) -> dict[str, str]:
    """A queue bound to amq.direct by each of these keys: key -> queue."""
    queues = {}
    for key in ("k1", "c1", "c2", "b1"):
        queues[key] = new_queue(ch)
        ch.queue_bind(queues[key], "amq.direct", key)
    return queues


@each_version("3.10", "4.0")
def test_cc_and_bcc_add_routing_keys_and_bcc_is_removed(
    ch: BlockingChannel,
    bound: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    rabbitmq_version: str,
) -> None:
    record_wire(monkeypatch)
    ch.basic_publish(
        "amq.direct",
        "k1",
        b"m",
        pika.BasicProperties(headers={"z": 1, "CC": ["c1", "c2"], "BCC": ["b1"], "a": 2}),
    )
    for queue in bound.values():
        method, properties, _b = ch.basic_get(queue, auto_ack=True)
        assert method.routing_key == "k1"  # the publish key, whichever key routed it
        # BCC gone, everything else in its order (4.0: sorted) and types.
        table = [("z", ("I", 1)), ("CC", ("A", [("S", "c1"), ("S", "c2")])), ("a", ("I", 2))]
        if rabbitmq_version != "3.10":
            table = [table[1], table[2], table[0]]
        assert wire(properties) == table


def test_a_queue_reached_by_several_keys_gets_one_copy(
    ch: BlockingChannel, bound: dict[str, str]
) -> None:
    ch.basic_publish("amq.direct", "k1", b"m", pika.BasicProperties(headers={"CC": ["k1", "k1"]}))
    assert ch.queue_declare(bound["k1"], passive=True).method.message_count == 1


def test_bcc_alone_leaves_an_empty_headers_table(
    ch: BlockingChannel, bound: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record_wire(monkeypatch)
    ch.basic_publish("amq.direct", "nokey", b"m", pika.BasicProperties(headers={"BCC": ["b1"]}))
    method, properties, _b = ch.basic_get(bound["b1"], auto_ack=True)
    assert method.routing_key == "nokey"
    assert properties.headers == {}
    assert wire(properties) == []


def test_cc_on_the_default_exchange_names_queues(ch: BlockingChannel) -> None:
    queue = new_queue(ch)
    ch.basic_publish("", "no-such-queue", b"m", pika.BasicProperties(headers={"CC": [queue]}))
    assert ch.queue_declare(queue, passive=True).method.message_count == 1


def test_cc_routed_messages_are_not_returned(
    conn: BlockingConnection, ch: BlockingChannel, bound: dict[str, str]
) -> None:
    returned: list[Any] = []
    ch.add_on_return_callback(lambda *args: returned.append(args))
    ch.basic_publish(
        "amq.direct", "nokey", b"m", pika.BasicProperties(headers={"CC": ["c1"]}), mandatory=True
    )
    settle(conn)
    assert returned == []
    assert ch.queue_declare(bound["c1"], passive=True).method.message_count == 1


def test_non_string_entries_are_ignored(ch: BlockingChannel, bound: dict[str, str]) -> None:
    ch.basic_publish("amq.direct", "k1", b"m", pika.BasicProperties(headers={"CC": [5, "c1"]}))
    assert ch.queue_declare(bound["c1"], passive=True).method.message_count == 1


@pytest.mark.parametrize("header", ["CC", "BCC"])
def test_a_header_that_is_not_an_array_is_406(conn: BlockingConnection, header: str) -> None:
    channel = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.basic_publish(
            "amq.direct", "k1", b"m", pika.BasicProperties(headers={header: "c1"})
        )
        channel.queue_declare("", exclusive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        "PRECONDITION_FAILED - invalid message: "
        f'{{unacceptable_type_in_header,"{header}",longstr}}',
    )
