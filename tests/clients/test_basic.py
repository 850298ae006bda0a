"""The basic class through pika (BlockingConnection, a few SelectConnection) and, where
pika decides things on the client side (consumer tags, immediate), through py-amqp.

Every expectation here was first checked against RabbitMQ 3.10.8 with the same client.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import amqp
import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pikakit import (
    WAIT,
    Inbox,
    connect,
    new_queue,
    pyamqp_connect,
    ready_count,
    run_select,
    settle,
    wait_until,
)

from amqpbroker.testing.pytest_plugin import each_version

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pyamqp(url: str) -> Iterator[amqp.Connection]:
    conn = pyamqp_connect(url)
    yield conn
    if conn.connected:
        conn.close()


# --------------------------------------------------------------------- qos


def test_prefetch_stops_delivery_at_the_limit_and_ack_resumes_it(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    for i in range(5):
        channel.basic_publish("", queue, b"%d" % i)
    channel.basic_qos(prefetch_count=2)
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    wait_until(connection, lambda: len(inbox) == 2)
    settle(connection)
    assert inbox.bodies == [b"0", b"1"]
    assert ready_count(channel, queue) == 3

    channel.basic_ack(inbox.tags[0])
    wait_until(connection, lambda: len(inbox) == 3)
    settle(connection)
    assert inbox.bodies == [b"0", b"1", b"2"]

    channel.basic_ack(inbox.tags[2], multiple=True)
    wait_until(connection, lambda: len(inbox) == 5)
    assert inbox.bodies == [b"0", b"1", b"2", b"3", b"4"]
    assert ready_count(channel, queue) == 0


def test_per_consumer_prefetch_applies_to_consumers_started_after_it(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    before_q, after_q = new_queue(channel), new_queue(channel)
    before, after = Inbox(), Inbox()
    channel.basic_consume(before_q, before)
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(after_q, after)
    for i in range(4):
        channel.basic_publish("", before_q, b"%d" % i)
        channel.basic_publish("", after_q, b"%d" % i)
    wait_until(connection, lambda: len(before) == 4 and len(after) == 1)
    settle(connection)
    assert len(before) == 4
    assert after.bodies == [b"0"]
    assert ready_count(channel, after_q) == 3


def test_per_consumer_prefetch_is_per_consumer_not_per_channel(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue_a, queue_b = new_queue(channel), new_queue(channel)
    channel.basic_qos(prefetch_count=2)
    inbox_a, inbox_b = Inbox(), Inbox()
    channel.basic_consume(queue_a, inbox_a)
    channel.basic_consume(queue_b, inbox_b)
    for i in range(3):
        channel.basic_publish("", queue_a, b"%d" % i)
        channel.basic_publish("", queue_b, b"%d" % i)
    wait_until(connection, lambda: len(inbox_a) == 2 and len(inbox_b) == 2)
    settle(connection)
    assert (len(inbox_a), len(inbox_b)) == (2, 2)


def test_global_prefetch_is_shared_by_the_channel(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue_a, queue_b = new_queue(channel), new_queue(channel)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    inbox = Inbox()
    channel.basic_consume(queue_a, inbox)
    channel.basic_consume(queue_b, inbox)
    for i in range(5):
        channel.basic_publish("", queue_a, b"a%d" % i)
        channel.basic_publish("", queue_b, b"b%d" % i)
    wait_until(connection, lambda: len(inbox) == 3)
    settle(connection)
    assert len(inbox) == 3
    assert ready_count(channel, queue_a) + ready_count(channel, queue_b) == 7

    channel.basic_ack(inbox.tags[0])
    wait_until(connection, lambda: len(inbox) == 4)
    settle(connection)
    assert len(inbox) == 4


@each_version("4.2", "4.3")
def test_global_qos_by_version(
    connection: BlockingConnection, channel: BlockingChannel, rabbitmq_version: str
) -> None:
    # 4.3 denies the deprecated global QoS: global=true limits each new consumer
    # instead of the channel (rabbit_channel at v4.3.5).  Durable queues: 4.3 also
    # refuses transient non-exclusive ones.
    queue_a, queue_b = new_queue(channel, durable=True), new_queue(channel, durable=True)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    inbox = Inbox()
    channel.basic_consume(queue_a, inbox)
    channel.basic_consume(queue_b, inbox)
    for i in range(5):
        channel.basic_publish("", queue_a, b"a%d" % i)
        channel.basic_publish("", queue_b, b"b%d" % i)
    expected = 3 if rabbitmq_version == "4.2" else 6
    wait_until(connection, lambda: len(inbox) == expected)
    settle(connection)
    assert len(inbox) == expected


def test_basic_get_deliveries_do_not_count_against_the_global_prefetch(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    for i in range(3):
        channel.basic_publish("", queue, b"%d" % i)
    channel.basic_qos(prefetch_count=1, global_qos=True)
    fetched = channel.basic_get(queue)[0]
    assert fetched is not None  # unacked, but not a consumer delivery
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    wait_until(connection, lambda: len(inbox) == 1)
    settle(connection)
    assert inbox.bodies == [b"1"]


def test_global_and_per_consumer_prefetch_both_apply(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue_a, queue_b = new_queue(channel), new_queue(channel)
    channel.basic_qos(prefetch_count=2)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    inbox_a, inbox_b = Inbox(), Inbox()
    channel.basic_consume(queue_a, inbox_a)
    channel.basic_consume(queue_b, inbox_b)
    for i in range(5):
        channel.basic_publish("", queue_a, b"%d" % i)
        channel.basic_publish("", queue_b, b"%d" % i)
    wait_until(connection, lambda: len(inbox_a) + len(inbox_b) == 3)
    settle(connection)
    assert len(inbox_a) + len(inbox_b) == 3
    assert max(len(inbox_a), len(inbox_b)) == 2


def test_per_consumer_qos_after_global_qos_lifts_the_channel_limit(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    # RabbitMQ 3.x: basic.qos(global=false) resets the channel-wide limit
    # (rabbit_limiter:unlimit_prefetch), releasing consumers that were blocked by it.
    queue = new_queue(channel)
    channel.basic_qos(prefetch_count=2, global_qos=True)
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    for i in range(6):
        channel.basic_publish("", queue, b"%d" % i)
    wait_until(connection, lambda: len(inbox) == 2)
    settle(connection)
    assert len(inbox) == 2

    channel.basic_qos(prefetch_count=0)
    wait_until(connection, lambda: len(inbox) == 6)
    assert inbox.bodies == [b"%d" % i for i in range(6)]


def test_prefetch_size_is_not_implemented(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        channel.basic_qos(prefetch_size=10)
    assert info.value.reply_code == 540
    assert info.value.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (10)"
    assert connection.is_closed


# ----------------------------------------------------------------- consume


def test_server_generates_consumer_tags(pyamqp: amqp.Connection) -> None:
    # pika makes up its own tags, so this goes through py-amqp, which sends an empty one.
    ch = pyamqp.channel()
    queue = ch.queue_declare("", exclusive=True).queue
    first = ch.basic_consume(queue, callback=lambda m: None)
    second = ch.basic_consume(queue, callback=lambda m: None)
    for tag in (first, second):
        assert tag.startswith("amq.ctag-")
        assert len(tag) == len("amq.ctag-") + 22
    assert first != second


def test_reusing_a_consumer_tag_on_a_channel_is_530(pyamqp: amqp.Connection) -> None:
    ch = pyamqp.channel()
    queue = ch.queue_declare("", exclusive=True, auto_delete=False).queue
    # The same tag on another channel is fine.
    assert pyamqp.channel().basic_consume(queue, "x", callback=lambda m: None) == "x"
    assert ch.basic_consume(queue, "x", callback=lambda m: None) == "x"
    with pytest.raises(amqp.exceptions.NotAllowed) as info:
        ch.basic_consume(queue, "x", callback=lambda m: None)
    assert info.value.reply_code == 530
    assert info.value.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'x'"
    assert not pyamqp.connected


def test_tag_reuse_is_checked_before_the_queue_lookup(pyamqp: amqp.Connection) -> None:
    ch = pyamqp.channel()
    queue = ch.queue_declare("", exclusive=True, auto_delete=False).queue
    ch.basic_consume(queue, "x", callback=lambda m: None)
    with pytest.raises(amqp.exceptions.NotAllowed) as info:
        ch.basic_consume("no-such-queue", "x", callback=lambda m: None)
    assert info.value.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'x'"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("high", "longstr"),
        (True, "bool"),
        (1.5, "double"),  # py-amqp sends floats as doubles
        (None, "void"),
        ({"a": 1}, "table"),
        ([1], "array"),
        (Decimal("1.5"), "decimal"),
        (datetime.datetime(2020, 1, 1), "timestamp"),
    ],
)
def test_consumer_priority_must_be_an_integer(
    pyamqp: amqp.Connection, vhost: str, value: Any, type_name: str
) -> None:
    ch = pyamqp.channel()
    queue = ch.queue_declare("", exclusive=True, auto_delete=False).queue
    with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
        ch.basic_consume(queue, callback=lambda m: None, arguments={"x-priority": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{queue}' in vhost "
        f"'{vhost}': \"expected integer, got {type_name}\""
    )
    # Any integer width is fine, negative too.
    ch = pyamqp.channel()
    for priority in (-3, 2**40):
        ch.basic_consume(queue, callback=lambda m: None, arguments={"x-priority": priority})


def test_exclusive_consumer_conflicts_are_403(connection: BlockingConnection, vhost: str) -> None:
    owner = connection.channel()
    taken, shared = new_queue(owner), new_queue(owner)
    owner.basic_consume(taken, Inbox(), exclusive=True)
    owner.basic_consume(shared, Inbox())

    for queue, exclusive in ((taken, False), (shared, True)):
        other = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            other.basic_consume(queue, Inbox(), exclusive=exclusive)
        assert info.value.reply_code == 403
        assert info.value.reply_text == (
            f"ACCESS_REFUSED - queue '{queue}' in vhost '{vhost}' in exclusive use"
        )
    assert connection.is_open and owner.is_open


def test_no_ack_consumer_takes_messages_for_good(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    for i in range(3):
        channel.basic_publish("", queue, b"%d" % i)
    consumer_channel = connection.channel()
    consumer_channel.basic_qos(prefetch_count=1)  # no effect on no_ack consumers
    inbox = Inbox()
    consumer_channel.basic_consume(queue, inbox, auto_ack=True)
    wait_until(connection, lambda: len(inbox) == 3)
    assert inbox.bodies == [b"0", b"1", b"2"]
    assert inbox.tags == [1, 2, 3]
    consumer_channel.close()
    assert ready_count(channel, queue) == 0


def test_higher_priority_consumers_get_messages_first(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    channel.basic_qos(prefetch_count=2)
    low, high, default = Inbox(), Inbox(), Inbox()
    channel.basic_consume(queue, low, arguments={"x-priority": 1})
    channel.basic_consume(queue, high, arguments={"x-priority": 10})
    channel.basic_consume(queue, default)
    for i in range(7):
        channel.basic_publish("", queue, b"%d" % i)
    wait_until(connection, lambda: len(default) == 2)
    settle(connection)
    assert high.bodies == [b"0", b"1"]
    assert low.bodies == [b"2", b"3"]
    assert default.bodies == [b"4", b"5"]
    assert ready_count(channel, queue) == 1

    channel.basic_ack(low.tags[0])  # the high-priority ones are still full
    wait_until(connection, lambda: len(low) == 3)
    assert low.bodies[-1] == b"6"


def test_equal_consumers_share_round_robin(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    order: list[str] = []
    for name in "abc":
        channel.basic_consume(
            queue, lambda _c, _m, _p, _b, name=name: order.append(name), auto_ack=True
        )
    for i in range(9):
        channel.basic_publish("", queue, b"%d" % i)
    wait_until(connection, lambda: len(order) == 9)
    assert "".join(order) == "abcabcabc"


def test_cancel_stops_deliveries_and_keeps_unacked_messages(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"first")
    inbox = Inbox()
    tag = channel.basic_consume(queue, inbox)
    wait_until(connection, lambda: len(inbox) == 1)
    channel.basic_cancel(tag)
    channel.basic_publish("", queue, b"second")
    settle(connection)
    assert inbox.bodies == [b"first"]
    assert ready_count(channel, queue) == 1
    # The delivery made before the cancel is still ours to settle.
    channel.basic_ack(inbox.tags[0])
    method, _props, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"second" and not method.redelivered


def test_cancel_nowait_and_cancel_of_unknown_tag(pyamqp: amqp.Connection) -> None:
    ch = pyamqp.channel()
    queue = ch.queue_declare("", exclusive=True, auto_delete=False).queue
    tag = ch.basic_consume(queue, callback=lambda m: None)
    assert ch.queue_declare(queue, passive=True).consumer_count == 1
    ch.basic_cancel(tag, nowait=True)
    assert ch.queue_declare(queue, passive=True).consumer_count == 0
    # RabbitMQ answers cancel-ok for a tag it does not know.
    assert ch.basic_cancel("never-used") == "never-used"


def test_consume_ok_arrives_before_the_first_delivery(url: str) -> None:
    events: list[str] = []

    def scenario(ch: Any, finish: Callable[[], None]) -> None:
        def on_message(_ch: Any, _m: Any, _p: Any, body: bytes) -> None:
            events.append(body.decode())
            if len(events) == 4:
                finish()

        def on_declared(frame: Any) -> None:
            name = frame.method.queue
            for i in range(3):
                ch.basic_publish("", name, b"m%d" % i)
            ch.basic_consume(
                name, on_message, auto_ack=True, callback=lambda _f: events.append("consume-ok")
            )

        ch.queue_declare("", exclusive=True, callback=on_declared)

    run_select(url, scenario)
    assert events == ["consume-ok", "m0", "m1", "m2"]


def test_deleting_the_queue_cancels_its_consumers(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    cancelled: list[str] = []
    channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = channel.basic_consume(queue, Inbox())
    connection.channel().queue_delete(queue)
    wait_until(connection, lambda: bool(cancelled))
    assert cancelled == [tag]


# ----------------------------------------------------------------- publish


def test_mandatory_unroutable_message_is_returned(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    returned: list[tuple[Any, Any, bytes]] = []
    channel.add_on_return_callback(lambda _ch, m, p, b: returned.append((m, p, b)))
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"routed", mandatory=True)
    channel.basic_publish(
        "amq.direct", "nowhere", b"lost", pika.BasicProperties(message_id="m-1"), mandatory=True
    )
    channel.basic_publish("amq.direct", "nowhere", b"dropped")  # not mandatory: silent
    wait_until(connection, lambda: bool(returned))
    settle(connection)
    assert len(returned) == 1
    method, props, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == ("amq.direct", "nowhere")
    assert (props.message_id, body) == ("m-1", b"lost")
    assert ready_count(channel, queue) == 1


def test_mandatory_return_comes_before_the_confirm(channel: BlockingChannel) -> None:
    # pika's blocking channel raises UnroutableError only if the return precedes the ack.
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as info:
        channel.basic_publish("", "no-such-queue", b"lost", mandatory=True)
    [message] = info.value.messages
    assert (message.method.reply_code, message.method.reply_text) == (312, "NO_ROUTE")
    assert message.body == b"lost"


def test_return_then_ack_order_on_the_wire(url: str) -> None:
    events: list[tuple[Any, ...]] = []

    def scenario(ch: Any, finish: Callable[[], None]) -> None:
        def on_confirm(frame: Any) -> None:
            method = frame.method
            events.append((method.NAME, method.delivery_tag, method.multiple))
            if method.delivery_tag == 2:
                finish()

        def on_return(_ch: Any, method: Any, _props: Any, body: bytes) -> None:
            events.append(("return", method.reply_code, body))

        def on_select_ok(_frame: Any) -> None:
            ch.basic_publish("", "no-such-queue", b"lost", mandatory=True)
            ch.basic_publish("amq.fanout", "", b"unrouted, not mandatory")

        ch.add_on_return_callback(on_return)
        ch.confirm_delivery(on_confirm, callback=on_select_ok)

    run_select(url, scenario)
    assert events[0] == ("return", 312, b"lost")
    acked = set()
    for name, tag, multiple in events[1:]:
        assert name == "Basic.Ack"
        acked |= set(range(1, tag + 1)) if multiple else {tag}
    assert acked == {1, 2}


def test_immediate_publish_is_not_implemented(pyamqp: amqp.Connection) -> None:
    # pika cannot set immediate; py-amqp can.
    ch = pyamqp.channel()
    ch.basic_publish(amqp.Message(b"x"), "", "anything", immediate=True)
    with pytest.raises(amqp.exceptions.AMQPNotImplementedError) as info:
        pyamqp.drain_events(timeout=WAIT)
    assert info.value.reply_code == 540
    assert info.value.reply_text == "NOT_IMPLEMENTED - immediate=true"
    assert not pyamqp.connected


def test_publish_to_a_missing_exchange_closes_the_channel_with_404(
    connection: BlockingConnection, channel: BlockingChannel, vhost: str
) -> None:
    channel.basic_publish("no-such-exchange", "key", b"x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == (
        f"NOT_FOUND - no exchange 'no-such-exchange' in vhost '{vhost}'"
    )
    assert connection.is_open


# ------------------------------------------------------------ get and acks


def test_get_and_get_empty(channel: BlockingChannel) -> None:
    queue = new_queue(channel)
    assert channel.basic_get(queue) == (None, None, None)
    for i in range(3):
        channel.basic_publish("", queue, b"%d" % i)
    seen = []
    for _ in range(3):
        method, _props, body = channel.basic_get(queue)
        seen.append((method.delivery_tag, method.message_count, method.redelivered, body))
        assert (method.exchange, method.routing_key) == ("", queue)
    assert seen == [(1, 2, False, b"0"), (2, 1, False, b"1"), (3, 0, False, b"2")]
    assert channel.basic_get(queue) == (None, None, None)


def test_multiple_ack_settles_everything_up_to_the_tag(channel: BlockingChannel) -> None:
    queue = new_queue(channel)
    for i in range(5):
        channel.basic_publish("", queue, b"%d" % i)
    tags = [channel.basic_get(queue)[0].delivery_tag for _ in range(5)]
    assert tags == [1, 2, 3, 4, 5]
    channel.basic_ack(3, multiple=True)
    channel.basic_recover(requeue=True)  # what is still unacked comes back
    bodies = [channel.basic_get(queue, auto_ack=True)[2] for _ in range(2)]
    assert bodies == [b"3", b"4"]
    assert channel.basic_get(queue) == (None, None, None)


def test_nack_multiple_requeue_and_reject_without_requeue(channel: BlockingChannel) -> None:
    queue = new_queue(channel)
    for i in range(1, 6):
        channel.basic_publish("", queue, b"%d" % i)
    for _ in range(5):
        channel.basic_get(queue)
    channel.basic_nack(3, multiple=True, requeue=True)  # 1, 2, 3 go back
    channel.basic_reject(5, requeue=False)  # 5 is dropped
    again = []
    for _ in range(3):
        method, _props, body = channel.basic_get(queue)
        again.append((method.delivery_tag, body, method.redelivered))
    assert again == [(6, b"1", True), (7, b"2", True), (8, b"3", True)]
    assert channel.basic_get(queue) == (None, None, None)
    # Message 4 (tag 4) is still unacked; tag 0 with multiple acks everything.
    channel.basic_ack(0, multiple=True)
    channel.basic_ack(4)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_get(queue)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 4"


def test_nack_zero_multiple_requeues_everything(channel: BlockingChannel) -> None:
    queue = new_queue(channel)
    for i in range(3):
        channel.basic_publish("", queue, b"%d" % i)
    for _ in range(3):
        channel.basic_get(queue)
    channel.basic_nack(0, multiple=True, requeue=True)
    got = [channel.basic_get(queue, auto_ack=True) for _ in range(3)]
    assert [(m.redelivered, body) for m, _p, body in got] == [
        (True, b"0"),
        (True, b"1"),
        (True, b"2"),
    ]


def test_requeued_message_goes_back_to_its_original_position(channel: BlockingChannel) -> None:
    queue = new_queue(channel)
    for i in range(1, 6):
        channel.basic_publish("", queue, b"%d" % i)
    first, second, _third = (channel.basic_get(queue)[0] for _ in range(3))
    channel.basic_nack(second.delivery_tag, requeue=True)
    channel.basic_reject(first.delivery_tag, requeue=True)
    got = [channel.basic_get(queue, auto_ack=True) for _ in range(4)]
    assert [(body, m.redelivered) for m, _p, body in got] == [
        (b"1", True),
        (b"2", True),
        (b"4", False),
        (b"5", False),
    ]


@pytest.mark.parametrize("settle_with", ["ack", "nack", "reject", "ack-twice"])
def test_settling_an_unknown_delivery_tag_is_406(
    connection: BlockingConnection, channel: BlockingChannel, settle_with: str
) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"x")
    method = channel.basic_get(queue)[0]
    if settle_with == "ack":
        channel.basic_ack(7)
        bad = 7
    elif settle_with == "nack":
        channel.basic_nack(7, multiple=True)
        bad = 7
    elif settle_with == "reject":
        channel.basic_reject(0)  # tag 0 only means "all" together with multiple
        bad = 0
    else:
        channel.basic_ack(method.delivery_tag)
        channel.basic_ack(method.delivery_tag)
        bad = method.delivery_tag
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_get(queue)
    assert info.value.reply_code == 406
    assert info.value.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {bad}"
    assert connection.is_open
    if settle_with != "ack-twice":
        # The channel died holding the message: it is back in the queue.
        assert ready_count(connection.channel(), queue) == 1


def test_recover_requeue_redelivers_with_redelivered_set(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    for i in range(3):
        channel.basic_publish("", queue, b"%d" % i)
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    wait_until(connection, lambda: len(inbox) == 3)
    channel.basic_recover(requeue=True)
    wait_until(connection, lambda: len(inbox) == 6)
    seen = [(m.delivery_tag, body, m.redelivered) for m, _p, body in inbox.deliveries]
    assert seen == [
        (1, b"0", False),
        (2, b"1", False),
        (3, b"2", False),
        (4, b"0", True),
        (5, b"1", True),
        (6, b"2", True),
    ]


def test_recover_without_requeue_is_not_implemented(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        channel.basic_recover(requeue=False)
    assert info.value.reply_code == 540
    assert info.value.reply_text == "NOT_IMPLEMENTED - requeue=false"
    assert connection.is_closed


@pytest.mark.parametrize("close", ["channel", "connection"])
def test_unacked_messages_return_to_their_original_positions(
    url: str, connection: BlockingConnection, channel: BlockingChannel, close: str
) -> None:
    queue = new_queue(channel)
    for i in range(1, 11):
        channel.basic_publish("", queue, b"%d" % i)

    other = connect(url)
    try:
        consumer_channel = other.channel()
        consumer_channel.basic_qos(prefetch_count=5)
        first = Inbox()
        consumer_channel.basic_consume(queue, first)
        wait_until(other, lambda: len(first) == 5)
        assert first.bodies == [b"%d" % i for i in range(1, 6)]
        if close == "channel":
            consumer_channel.close()
    finally:
        other.close()

    again = Inbox()
    channel.basic_consume(queue, again, auto_ack=True)
    wait_until(connection, lambda: len(again) == 10)
    assert [(body, m.redelivered) for m, _p, body in again.deliveries] == [
        (b"%d" % i, i <= 5) for i in range(1, 11)
    ]


def test_partially_acked_deliveries_requeue_in_order(
    url: str, connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    for i in range(1, 8):
        channel.basic_publish("", queue, b"%d" % i)
    other = connect(url)
    try:
        ch = other.channel()
        tags = [ch.basic_get(queue)[0].delivery_tag for _ in range(5)]
        ch.basic_ack(tags[1])
        ch.basic_ack(tags[3])
    finally:
        other.close()
    got = [channel.basic_get(queue, auto_ack=True) for _ in range(5)]
    assert [(body, m.redelivered) for m, _p, body in got] == [
        (b"1", True),
        (b"3", True),
        (b"5", True),
        (b"6", False),
        (b"7", False),
    ]


def test_interleaved_requeues_restore_publish_order(
    url: str, connection: BlockingConnection, channel: BlockingChannel
) -> None:
    # Two consumers take 1,3,5 and 2,4,6 round robin; closing one channel and then
    # the other must weave the messages back into their original places.
    queue = new_queue(channel)
    other = connect(url)
    try:
        first, second = other.channel(), other.channel()
        inboxes = Inbox(), Inbox()
        for ch, inbox in zip((first, second), inboxes, strict=True):
            ch.basic_qos(prefetch_count=3)
            ch.basic_consume(queue, inbox)
        for i in range(1, 11):
            channel.basic_publish("", queue, b"%d" % i)
        wait_until(other, lambda: len(inboxes[0]) == 3 and len(inboxes[1]) == 3)
        assert inboxes[0].bodies == [b"1", b"3", b"5"]
        assert inboxes[1].bodies == [b"2", b"4", b"6"]
        first.close()
        second.close()
    finally:
        other.close()
    got = [channel.basic_get(queue, auto_ack=True) for _ in range(10)]
    assert [(body, m.redelivered) for m, _p, body in got] == [
        (b"%d" % i, i <= 6) for i in range(1, 11)
    ]
