"""Publisher confirms and transactions through pika (Blocking and Select connections).

Every expectation here was first checked against RabbitMQ 3.10.8 with the same client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import amqp
import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pikakit import (
    new_queue,
    pyamqp_connect,
    ready_count,
    run_select,
    settle,
    wait_until,
)

pytestmark = pytest.mark.timeout(30)


def assert_all_acked(confirms: list[tuple[str, int, bool]], total: int) -> None:
    """Every sequence number 1..total settled by exactly one basic.ack, never a nack.

    Acks may arrive out of order (RabbitMQ acks an unroutable publish at once,
    ahead of earlier persistent ones) and multiple=true settles every outstanding
    number up to its tag."""
    outstanding = set(range(1, total + 1))
    for name, tag, multiple in confirms:
        assert name == "Basic.Ack", f"unexpected {name} for {tag}"
        settled = {t for t in outstanding if t <= tag} if multiple else {tag} & outstanding
        assert settled, f"ack {tag} (multiple={multiple}) settles nothing new"
        outstanding -= settled
    assert not outstanding, f"never confirmed: {sorted(outstanding)}"


# ------------------------------------------------------------------ confirms


def test_every_publish_is_acked_with_sequence_numbers_from_one(url: str) -> None:
    confirms: list[tuple[str, int, bool]] = []
    total = 60
    pending = set(range(1, total + 1))

    def scenario(ch: Any, finish: Callable[[], None]) -> None:
        def on_confirm(frame: Any) -> None:
            m = frame.method
            confirms.append((m.NAME, m.delivery_tag, m.multiple))
            pending.discard(m.delivery_tag)
            if m.multiple:
                pending.difference_update(range(1, m.delivery_tag))
            if not pending:
                finish()

        def on_declared(frame: Any) -> None:
            name = frame.method.queue
            for i in range(total):
                if i % 10 == 9:
                    # Unroutable publishes are confirmed too (acked, not nacked).
                    ch.basic_publish("amq.direct", "nowhere", b"%d" % i)
                else:
                    props = pika.BasicProperties(delivery_mode=2 if i % 2 else 1)
                    ch.basic_publish("", name, b"%d" % i, props)

        ch.confirm_delivery(
            on_confirm, callback=lambda _f: ch.queue_declare("", callback=on_declared)
        )

    run_select(url, scenario)
    assert_all_acked(confirms, total)


def test_blocking_confirms_report_every_publish(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    # pika's blocking channel raises NackError / UnroutableError; none may happen.
    channel.confirm_delivery()
    queue = new_queue(channel, durable=True)
    for i in range(20):
        channel.basic_publish(
            "", queue, b"%d" % i, pika.BasicProperties(delivery_mode=2), mandatory=True
        )
    assert ready_count(channel, queue) == 20


def test_confirm_select_twice_is_fine(url: str) -> None:
    # pika refuses a second select on its side; py-amqp sends it.
    conn = pyamqp_connect(url)
    try:
        ch = conn.channel()
        ch.confirm_select()
        ch.confirm_select()
        queue = ch.queue_declare("", exclusive=True).queue
        # basic_publish_confirm selects once more, publishes and waits for the ack.
        ch.basic_publish_confirm(amqp.Message(b"x"), "", queue)
        assert ch.queue_declare(queue, passive=True).message_count == 1
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("first", "second", "text"),
    [
        ("confirm", "tx", "PRECONDITION_FAILED - cannot switch from confirm to tx mode"),
        ("tx", "confirm", "PRECONDITION_FAILED - cannot switch from tx to confirm mode"),
    ],
)
def test_mixing_confirms_and_transactions_is_406(
    connection: BlockingConnection, first: str, second: str, text: str
) -> None:
    ch = connection.channel()
    select = {"confirm": ch.confirm_delivery, "tx": ch.tx_select}
    select[first]()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        select[second]()
    assert (info.value.reply_code, info.value.reply_text) == (406, text)
    assert connection.is_open


@pytest.mark.parametrize("method", ["tx_commit", "tx_rollback"])
def test_commit_or_rollback_without_select_is_406(
    connection: BlockingConnection, channel: BlockingChannel, method: str
) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        getattr(channel, method)()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"
    assert connection.is_open


# -------------------------------------------------------------- transactions


def test_transactional_publishes_are_invisible_until_commit(
    connection: BlockingConnection,
) -> None:
    watcher, tx = connection.channel(), connection.channel()
    queue = new_queue(watcher)
    tx.tx_select()
    tx.tx_select()  # selecting again is allowed
    tx.basic_publish("", queue, b"1")
    tx.basic_publish("", queue, b"2")
    settle(connection)
    assert ready_count(watcher, queue) == 0
    tx.tx_commit()
    assert ready_count(watcher, queue) == 2
    got = [watcher.basic_get(queue, auto_ack=True)[2] for _ in range(2)]
    assert got == [b"1", b"2"]


def test_rollback_discards_publishes(connection: BlockingConnection) -> None:
    watcher, tx = connection.channel(), connection.channel()
    queue = new_queue(watcher)
    tx.tx_select()
    tx.basic_publish("", queue, b"discarded")
    tx.tx_rollback()
    tx.tx_commit()  # nothing left to commit
    assert ready_count(watcher, queue) == 0
    tx.basic_publish("", queue, b"kept")
    tx.tx_commit()
    assert watcher.basic_get(queue, auto_ack=True)[2] == b"kept"


def test_closing_a_channel_discards_its_uncommitted_publishes(
    connection: BlockingConnection,
) -> None:
    watcher, tx = connection.channel(), connection.channel()
    queue = new_queue(watcher)
    tx.tx_select()
    tx.basic_publish("", queue, b"never")
    tx.close()
    assert ready_count(watcher, queue) == 0


def test_rolled_back_ack_leaves_the_message_unacked(connection: BlockingConnection) -> None:
    watcher, tx = connection.channel(), connection.channel()
    queue = new_queue(watcher)
    watcher.basic_publish("", queue, b"m")
    tx.tx_select()
    method = tx.basic_get(queue)[0]
    tx.basic_ack(method.delivery_tag)
    tx.tx_rollback()
    # Neither acked nor requeued: it stays with the channel...
    assert ready_count(watcher, queue) == 0
    tx.close()
    # ...until the channel closes and it comes back, redelivered.
    again, _props, body = watcher.basic_get(queue, auto_ack=True)
    assert (body, again.redelivered) == (b"m", True)


def test_ack_takes_effect_at_commit(connection: BlockingConnection) -> None:
    watcher, tx = connection.channel(), connection.channel()
    queue = new_queue(watcher)
    watcher.basic_publish("", queue, b"m")
    tx.tx_select()
    method = tx.basic_get(queue)[0]
    tx.basic_ack(method.delivery_tag)
    tx.tx_rollback()
    tx.basic_ack(method.delivery_tag)  # still a known tag after the rollback
    tx.tx_commit()
    tx.close()
    assert ready_count(watcher, queue) == 0


def test_rolled_back_reject_leaves_the_message_unacked(channel: BlockingChannel) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"m")
    channel.tx_select()
    first = channel.basic_get(queue)[0]
    channel.basic_reject(first.delivery_tag, requeue=True)
    channel.tx_rollback()
    assert ready_count(channel, queue) == 0
    channel.basic_reject(first.delivery_tag, requeue=True)
    channel.tx_commit()
    again = channel.basic_get(queue)[0]
    assert (again.delivery_tag, again.redelivered) == (2, True)


def test_transactional_ack_of_unknown_tag_is_406(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    channel.tx_select()
    channel.basic_ack(3)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.tx_commit()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 3"


def test_transactional_publish_to_missing_exchange_is_404(
    connection: BlockingConnection, channel: BlockingChannel, vhost: str
) -> None:
    channel.tx_select()
    channel.basic_publish("no-such-exchange", "k", b"x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.tx_commit()
    assert info.value.reply_code == 404
    assert info.value.reply_text == (
        f"NOT_FOUND - no exchange 'no-such-exchange' in vhost '{vhost}'"
    )


@pytest.mark.parametrize("bad", ["missing exchange", "internal exchange", "user_id"])
def test_a_refused_publish_fails_the_channel_before_commit(
    connection: BlockingConnection, bad: str
) -> None:
    # RabbitMQ checks each publish when it arrives: the channel closes at once and
    # the publishes before it in the transaction are never committed.
    watcher, tx = connection.channel(), connection.channel()
    queue = new_queue(watcher)
    tx.tx_select()
    tx.basic_publish("", queue, b"good")
    if bad == "missing exchange":
        tx.basic_publish("no-such-exchange", "k", b"bad")
    elif bad == "internal exchange":
        tx.basic_publish("amq.rabbitmq.trace", "k", b"bad")
    else:
        tx.basic_publish("", queue, b"bad", pika.BasicProperties(user_id="bob"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        tx.tx_commit()
    assert info.value.reply_code == {"missing exchange": 404, "internal exchange": 403}.get(
        bad, 406
    )
    assert ready_count(watcher, queue) == 0


def test_transactional_mandatory_return_comes_with_the_commit(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    returned: list[tuple[int, bytes]] = []
    channel.add_on_return_callback(lambda _c, m, _p, body: returned.append((m.reply_code, body)))
    channel.tx_select()
    channel.basic_publish("", "no-such-queue", b"lost", mandatory=True)
    settle(connection)
    assert returned == []
    channel.tx_commit()
    wait_until(connection, lambda: bool(returned))
    assert returned == [(312, b"lost")]
