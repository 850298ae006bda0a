"""Queue types through pika: quorum-style queues with RabbitMQ 3.10's rules and
delivery limits, arguments that belong to another queue type, and streams.

Every text and behaviour here was seen on a real RabbitMQ 3.10.8 first, except
streams: RabbitMQ 3.10 has them, this broker does not, and refuses them with the
406 RabbitMQ gives for a queue type it does not know (see queue_arguments.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, NackError
from pikakit import Inbox, get_eventually, new_queue, wait_until
from wirekit import entries, record_wire, wire

from amqpbroker.testing.pytest_plugin import each_version

pytestmark = pytest.mark.timeout(60)

QUORUM = {"x-queue-type": "quorum"}


@pytest.fixture
def quorum(ch: BlockingChannel) -> Iterator[str]:
    queue = new_queue(ch, durable=True, arguments=QUORUM)
    yield queue
    if ch.is_open:
        ch.queue_delete(queue)


def refusal(conn: BlockingConnection, queue: str, **kwargs: Any) -> str:
    channel = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(queue, **kwargs)
    assert info.value.reply_code == 406
    return str(info.value.reply_text)


def bodies(ch: BlockingChannel, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _p, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


# ------------------------------------------------------------------- declare


@pytest.mark.parametrize(
    ("flags", "arguments", "text"),
    [
        ({}, {}, "invalid property 'non-durable' for queue '{q}' in vhost '{v}'"),
        ({"durable": True, "exclusive": True}, {},
         "invalid property 'exclusive-owner' for queue '{q}' in vhost '{v}'"),
        ({"durable": True, "auto_delete": True}, {},
         "invalid property 'auto-delete' for queue '{q}' in vhost '{v}'"),
        ({"auto_delete": True}, {},
         "invalid property 'auto-delete' for queue '{q}' in vhost '{v}'"),
        ({"exclusive": True}, {},
         "invalid property 'exclusive-owner' for queue '{q}' in vhost '{v}'"),
        ({"durable": True}, {"x-max-priority": 5},
         "invalid arg 'x-max-priority' for queue '{q}' in vhost '{v}' of queue type "
         "rabbit_quorum_queue"),
        ({}, {"x-max-priority": 300},  # the type is checked before the value, and the flags
         "invalid arg 'x-max-priority' for queue '{q}' in vhost '{v}' of queue type "
         "rabbit_quorum_queue"),
        ({"durable": True}, {"x-queue-mode": "lazy"},
         "invalid arg 'x-queue-mode' for queue '{q}' in vhost '{v}' of queue type "
         "rabbit_quorum_queue"),
        ({"durable": True}, {"x-queue-version": 2},
         "invalid arg 'x-queue-version' for queue '{q}' in vhost '{v}' of queue type "
         "rabbit_quorum_queue"),
        ({"durable": True}, {"x-max-age": "1D"},
         "invalid arg 'x-max-age' for queue '{q}' in vhost '{v}' of queue type "
         "rabbit_quorum_queue"),
        ({}, {"x-expires": 0}, "invalid arg 'x-expires' for queue '{q}' in vhost '{v}': "
         "{{value_zero,0}}"),
        ({"durable": True}, {"x-dead-letter-strategy": "foo"},
         "invalid arg 'x-dead-letter-strategy' for queue '{q}' in vhost '{v}': "
         "invalid_dlx_strategy"),
        ({}, {"x-dead-letter-strategy": "foo"},
         "invalid arg 'x-dead-letter-strategy' for queue '{q}' in vhost '{v}': "
         "invalid_dlx_strategy"),
        ({"durable": True}, {"x-quorum-initial-group-size": 0},
         "invalid arg 'x-quorum-initial-group-size' for queue '{q}' in vhost '{v}': "
         "{{value_zero,0}}"),
        ({"durable": True}, {"x-max-in-memory-length": -1},
         "invalid arg 'x-max-in-memory-length' for queue '{q}' in vhost '{v}': "
         "{{value_negative,-1}}"),
        ({"durable": True}, {"x-queue-leader-locator": "foo"},
         "invalid arg 'x-queue-leader-locator' for queue '{q}' in vhost '{v}': "
         "invalid_queue_locator_arg"),
    ],
)  # fmt: skip
def test_quorum_declare_rules(
    conn: BlockingConnection,
    vhost: str,
    flags: dict[str, bool],
    arguments: dict[str, Any],
    text: str,
) -> None:
    queue = "qq-rules"
    assert refusal(conn, queue, arguments={**QUORUM, **arguments}, **flags) == (
        "PRECONDITION_FAILED - " + text.format(q=queue, v=vhost)
    )


@pytest.mark.parametrize(
    "arguments",
    [
        {"x-delivery-limit": 5},
        {"x-delivery-limit": "x"},  # not validated at all by RabbitMQ 3.10
        {"x-overflow": "reject-publish-dlx"},
        {"x-message-ttl": 100, "x-expires": 1000, "x-single-active-consumer": True},
        {"x-max-length": 5, "x-max-length-bytes": 5, "x-dead-letter-exchange": "x"},
        {"x-dead-letter-strategy": "at-least-once", "x-quorum-initial-group-size": 1},
        {"x-queue-leader-locator": "client-local", "x-max-in-memory-length": 5},
        {"x-ha-policy": "all", "x-custom": 1},  # unknown to every type: accepted
    ],
)
def test_quorum_declare_accepts(
    ch: BlockingChannel, conn: BlockingConnection, vhost: str, arguments: dict[str, Any]
) -> None:
    queue = new_queue(ch, durable=True, arguments={**QUORUM, **arguments})
    ok = ch.queue_declare(queue, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
    # It is a quorum queue: declaring it as a classic one is refused (RabbitMQ 3.10's text).
    assert refusal(conn, queue, durable=True, arguments=arguments) == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{queue}' in vhost "
        f"'{vhost}': received none but current is the value 'quorum' of type 'longstr'"
    )
    ch.queue_delete(queue)


def test_server_named_quorum_queue_is_refused(conn: BlockingConnection) -> None:
    assert refusal(conn, "", durable=True, arguments=QUORUM) == (
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"
    )


@pytest.mark.parametrize(
    "key", ["x-delivery-limit", "x-max-in-memory-length", "x-dead-letter-strategy",
            "x-quorum-initial-group-size", "x-max-age", "x-stream-max-segment-size-bytes",
            "x-initial-cluster-size", "x-queue-leader-locator"],
)  # fmt: skip
def test_classic_queues_refuse_other_types_arguments(
    conn: BlockingConnection, vhost: str, key: str
) -> None:
    assert refusal(conn, "cq", arguments={key: "-1"}) == (
        f"PRECONDITION_FAILED - invalid arg '{key}' for queue 'cq' in vhost '{vhost}' of "
        "queue type rabbit_classic_queue"
    )


def test_values_are_checked_before_other_types_arguments(
    conn: BlockingConnection, vhost: str
) -> None:
    assert refusal(conn, "cq", arguments={"x-max-age": "1D", "x-expires": 0}) == (
        f"PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'cq' in vhost '{vhost}': "
        "{value_zero,0}"
    )
    # Among other types' arguments, the first in the client's table is reported.
    assert refusal(conn, "cq", arguments={"x-max-age": "1D", "x-delivery-limit": 1}) == (
        f"PRECONDITION_FAILED - invalid arg 'x-max-age' for queue 'cq' in vhost '{vhost}' of "
        "queue type rabbit_classic_queue"
    )


def test_dead_letter_exchange_type_is_checked_first(conn: BlockingConnection, vhost: str) -> None:
    assert refusal(conn, "cq", arguments={"x-dead-letter-exchange": 1, "x-expires": 0}) == (
        "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in "
        f"queue 'cq' in vhost '{vhost}'"
    )


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        ({"x-delivery-limit": 1}, {"x-delivery-limit": 2}, "received '2' but current is '1'"),
        ({}, {"x-queue-type": "classic"},
         "received 'classic' but current is 'quorum'"),
        ({"x-dead-letter-strategy": "at-most-once"}, {"x-dead-letter-strategy": "at-least-once"},
         "received 'at-least-once' but current is 'at-most-once'"),
        ({"x-max-in-memory-bytes": 1}, {},
         "received none but current is the value '1' of type 'signedint'"),
        ({"x-queue-leader-locator": "client-local"}, {"x-queue-leader-locator": "random"},
         "received 'random' but current is 'client-local'"),
    ],
)  # fmt: skip
def test_quorum_redeclare_compares_its_arguments(
    ch: BlockingChannel,
    conn: BlockingConnection,
    vhost: str,
    first: dict[str, Any],
    second: dict[str, Any],
    shown: str,
) -> None:
    queue = new_queue(ch, durable=True, arguments={**QUORUM, **first})
    key = next(iter(second or first))
    text = refusal(conn, queue, durable=True, arguments={**QUORUM, **second})
    assert text == (
        f"PRECONDITION_FAILED - inequivalent arg '{key}' for queue '{queue}' in vhost '{vhost}': "
        + shown
    )
    ch.queue_delete(queue)


def test_stream_queues_are_refused(conn: BlockingConnection, vhost: str) -> None:
    for flags in ({}, {"durable": True}):
        assert refusal(conn, "sq", arguments={"x-queue-type": "stream"}, **flags) == (
            f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'sq' in vhost "
            f"'{vhost}': \"unsupported queue type 'stream'\""
        )


# ------------------------------------------------------------------ delivery


@each_version("3.10", "4.0")
def test_delivery_limit_dead_letters_poison_messages(
    ch: BlockingChannel, monkeypatch: pytest.MonkeyPatch, rabbitmq_version: str
) -> None:
    record_wire(monkeypatch)
    dead = new_queue(ch)
    queue = new_queue(
        ch,
        durable=True,
        arguments={
            **QUORUM,
            "x-delivery-limit": 2,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        },
    )
    ch.basic_publish("", queue, b"poison", pika.BasicProperties(headers={"h": 1}))
    seen = []
    for _ in range(3):
        method, properties, _b = ch.basic_get(queue)
        seen.append((method.redelivered, wire(properties)))
        ch.basic_nack(method.delivery_tag, requeue=True)
    # basic.get shows the count (3.10: 0 the first time too); headers sorted.
    assert seen == [
        (
            False,
            [("h", ("I", 1))] + [("x-delivery-count", ("l", 0))] * (rabbitmq_version == "3.10"),
        ),
        (True, [("h", ("I", 1)), ("x-delivery-count", ("l", 1))]),
        (True, [("h", ("I", 1)), ("x-delivery-count", ("l", 2))]),
    ]
    assert ch.basic_get(queue)[0] is None  # the third return went over the limit
    _m, properties, body = get_eventually(ch, dead)
    assert body == b"poison"
    table = wire(properties)
    last = ["x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"]
    assert [key for key, _v in table] == [
        "h",
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        *(last if rabbitmq_version != "3.10" else []),
    ]  # fmt: skip  (no x-delivery-count on the dead letter)
    assert entries(entries(table)["x-death"][1][0][1])["reason"] == ("S", "delivery_limit")


def _returns_until_gone(ch: BlockingChannel, queue: str, most: int) -> int:
    """How many times basic.get hands out the one message, nacked back each time
    (stops at ``most``)."""
    ch.basic_publish("", queue, b"m")
    seen = 0
    while seen < most:
        method, _p, _b = ch.basic_get(queue)
        if method is None:
            break
        seen += 1
        ch.basic_nack(method.delivery_tag, requeue=True)
    return seen


# Deliveries of a message returned every time, by x-delivery-limit (absent, -1), as
# RabbitMQ 3.10.8 and 4.0.5 give them: 4.0's default limit is 20, -1 lifts it; 3.10
# has no default and takes -1 as a limit exceeded by the first return.
DEFAULT_LIMIT = {"3.10": {None: 25, -1: 1}, "4.0": {None: 21, -1: 25}}


@each_version("3.10", "4.0")
@pytest.mark.parametrize("limit", [None, -1])
def test_default_delivery_limit(
    ch: BlockingChannel, rabbitmq_version: str, limit: int | None
) -> None:
    arguments = dict(QUORUM) if limit is None else {**QUORUM, "x-delivery-limit": limit}
    queue = new_queue(ch, durable=True, arguments=arguments)
    assert _returns_until_gone(ch, queue, 25) == DEFAULT_LIMIT[rabbitmq_version][limit]


# (body, redelivered, x-delivery-count) by basic.get after 1 and 0 were nacked back
# in that order, as RabbitMQ 3.10.8 and 4.0.5 answer: 3.10 puts returns at the back
# and shows a count of 0; 4.0 serves returns first, in the order they came back, and
# shows the count only once a message was returned.
RETURN_ORDER = {
    "3.10": [(b"2", False, 0), (b"3", False, 0), (b"1", True, 1), (b"0", True, 1)],
    "4.0": [(b"1", True, 1), (b"0", True, 1), (b"2", False, None), (b"3", False, None)],
}


@each_version(*RETURN_ORDER)
def test_where_returned_messages_go(ch: BlockingChannel, rabbitmq_version: str) -> None:
    queue = new_queue(ch, durable=True, arguments=QUORUM)
    for i in range(4):
        ch.basic_publish("", queue, str(i).encode())
    first, _p, _b = ch.basic_get(queue)
    second, _p, _b = ch.basic_get(queue)
    ch.basic_nack(second.delivery_tag, requeue=True)
    ch.basic_nack(first.delivery_tag, requeue=True)
    seen = []
    while True:
        method, properties, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        seen.append((body, method.redelivered, (properties.headers or {}).get("x-delivery-count")))
    assert seen == RETURN_ORDER[rabbitmq_version]


def test_consumers_see_the_delivery_count_only_on_redeliveries(
    ch: BlockingChannel, conn: BlockingConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_wire(monkeypatch)
    queue = new_queue(ch, durable=True, arguments={**QUORUM, "x-delivery-limit": 1})
    ch.basic_publish("", queue, b"m", pika.BasicProperties(headers={"x": "y"}))
    seen: list[Any] = []

    def nack(channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        seen.append((method.redelivered, wire(properties)))
        channel.basic_nack(method.delivery_tag, requeue=True)

    ch.basic_consume(queue, nack)
    wait_until(conn, lambda: len(seen) == 2)
    assert seen == [
        (False, [("x", ("S", "y"))]),
        (True, [("x", ("S", "y")), ("x-delivery-count", ("l", 1))]),
    ]
    assert ch.queue_declare(queue, passive=True).method.message_count == 0


@pytest.mark.rabbitmq_version("3.10")
def test_returned_messages_go_to_the_back(ch: BlockingChannel, quorum: str) -> None:
    for i in range(4):
        ch.basic_publish("", quorum, b"o%d" % i)
    first = ch.basic_get(quorum)[0]
    second = ch.basic_get(quorum)[0]
    ch.basic_nack(second.delivery_tag, requeue=True)
    ch.basic_nack(first.delivery_tag, requeue=True)
    assert bodies(ch, quorum) == [b"o2", b"o3", b"o1", b"o0"]


def test_a_closed_channel_returns_count_as_deliveries(
    ch: BlockingChannel, conn: BlockingConnection, quorum: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_wire(monkeypatch)
    ch.basic_publish("", quorum, b"m")
    holder = conn.channel()
    holder.basic_get(quorum)
    holder.close()
    method, properties, _b = ch.basic_get(quorum, auto_ack=True)
    assert method.redelivered
    assert wire(properties) == [("x-delivery-count", ("l", 1))]


def test_rejected_messages_are_dead_lettered(
    ch: BlockingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_wire(monkeypatch)
    dead = new_queue(ch)
    queue = new_queue(
        ch,
        durable=True,
        arguments={**QUORUM, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
    )
    ch.basic_publish("", queue, b"m")
    ch.basic_reject(ch.basic_get(queue)[0].delivery_tag, requeue=False)
    _m, properties, _b = get_eventually(ch, dead)
    assert entries(entries(wire(properties))["x-death"][1][0][1])["reason"] == ("S", "rejected")


def test_reject_publish_is_a_soft_limit(ch: BlockingChannel) -> None:
    queue = new_queue(
        ch,
        durable=True,
        arguments={**QUORUM, "x-max-length": 1, "x-overflow": "reject-publish"},
    )
    ch.basic_publish("", queue, b"1")
    ch.basic_publish("", queue, b"2")  # accepted: the queue was not over its limit yet
    with pytest.raises(NackError):
        ch.basic_publish("", queue, b"3")
    assert bodies(ch, queue) == [b"1", b"2"]


def test_reject_publish_dlx_drops_the_head(ch: BlockingChannel) -> None:
    dead = new_queue(ch)
    queue = new_queue(
        ch,
        durable=True,
        arguments={
            **QUORUM,
            "x-max-length": 1,
            "x-overflow": "reject-publish-dlx",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        },
    )
    ch.basic_publish("", queue, b"1")
    ch.basic_publish("", queue, b"2")  # acked, not nacked
    assert bodies(ch, queue) == [b"2"]
    assert get_eventually(ch, dead)[2] == b"1"


@each_version("4.2", "4.3")
def test_global_qos_is_not_supported(
    conn: BlockingConnection, quorum: str, vhost: str, rabbitmq_version: str
) -> None:
    channel = conn.channel()
    channel.basic_qos(prefetch_count=5, global_qos=True)
    if rabbitmq_version == "4.3":  # global=true is per-consumer there: nothing to refuse
        channel.basic_consume(quorum, Inbox())
        return
    with pytest.raises(ConnectionClosedByBroker) as info:
        channel.basic_consume(quorum, Inbox())
    assert (info.value.reply_code, info.value.reply_text) == (
        540,
        f"NOT_IMPLEMENTED - queue '{quorum}' in vhost '{vhost}' does not support global qos",
    )


def test_exclusive_consumers_are_not_enforced(conn: BlockingConnection, quorum: str) -> None:
    # RabbitMQ 3.10's quorum queues accept both orders: all three are consumers.
    conn.channel().basic_consume(quorum, Inbox())
    conn.channel().basic_consume(quorum, Inbox(), exclusive=True)
    conn.channel().basic_consume(quorum, Inbox())
    assert conn.channel().queue_declare(quorum, passive=True).method.consumer_count == 3
