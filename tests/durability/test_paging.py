"""Durable queues larger than memory: the tail of a long queue is paged out to the
store and read back as the head drains, without the client seeing any difference.

The window is shrunk to 100 messages here (it is 10,000 by default) so the tests
need only hundreds of messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

import amqpbroker
from amqpbroker.broker import queue as queue_module
from amqpbroker.server import pager as pager_module
from amqpbroker.store import MessageRecord, StoreError
from amqpbroker.testing import eventually
from amqpbroker.testing.pytest_plugin import each_version, marked_version

WINDOW = 100
DEAD_LETTER_TO_DEAD = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "PAGE_OUT_AT", WINDOW)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def clock() -> amqpbroker.ManualClock:
    """Broker time, moved by the tests that need message TTLs to run out."""
    return amqpbroker.ManualClock()


@pytest.fixture
def broker(
    small_window: None,
    data_dir: Path,
    clock: amqpbroker.ManualClock,
    request: pytest.FixtureRequest,
) -> Iterator[amqpbroker.Broker]:
    version = marked_version(request.node)
    extra = {} if version is None else {"rabbitmq_version": version}
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off", clock=clock, **extra) as running:
        yield running


def _channel(broker: amqpbroker.Broker) -> tuple[pika.BlockingConnection, object]:
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    return connection, connection.channel()


def _publish(channel, bodies: list[tuple[bytes, bool]], queue: str = "long") -> None:
    channel.confirm_delivery()
    for body, persistent in bodies:
        channel.basic_publish(
            "", queue, body, pika.BasicProperties(delivery_mode=2 if persistent else 1)
        )


def _queue_state(broker: amqpbroker.Broker, name: str = "long") -> tuple[str, int]:
    assert broker.core is not None
    core = broker.core

    def read() -> tuple[str, int]:
        queue = core.vhosts["/"].queues[name]
        # Its parts, named as "Paged" (a tail on disk) + "Feature" (rules) + "Queue".
        kind = ("Paged" if queue.tail is not None else "") + (
            "FeatureQueue" if queue.rules is not None else "Queue"
        )
        return kind, len(queue.ready)

    return broker.call(read)


def _drain(channel, queue: str = "long", limit: int = 10_000) -> list[bytes]:
    return [body for _props, body in _drain_messages(channel, queue, limit)]


def _drain_messages(channel, queue: str = "long", limit: int = 10_000) -> list[tuple[Any, bytes]]:
    """Consume and ack until the queue stays empty for 2 s: (properties, body) pairs."""
    got = []
    for method, props, body in channel.consume(queue, inactivity_timeout=2):
        if method is None:
            break
        got.append((props, body))
        channel.basic_ack(method.delivery_tag)
        if len(got) >= limit:
            break
    channel.cancel()
    return got


def test_long_queue_pages_out_and_delivers_in_order(broker: amqpbroker.Broker) -> None:
    connection, channel = _channel(broker)
    try:
        channel.queue_declare("long", durable=True)
        # Mostly persistent, with transient messages in between (they wait in memory,
        # in their place, since they must not be stored).
        bodies = [(b"m%04d" % i, i % 7 != 3) for i in range(600)]
        _publish(channel, bodies)
        kind, in_memory = _queue_state(broker)
        assert kind == "PagedQueue"
        assert in_memory <= WINDOW
        assert channel.queue_declare("long", passive=True).method.message_count == 600

        assert _drain(channel) == [body for body, _ in bodies]
        assert channel.queue_declare("long", passive=True).method.message_count == 0
        assert _queue_state(broker) == ("Queue", 0)
    finally:
        connection.close()


def test_basic_get_reads_through_the_tail(broker: amqpbroker.Broker) -> None:
    connection, channel = _channel(broker)
    try:
        channel.queue_declare("long", durable=True)
        bodies = [(b"g%04d" % i, True) for i in range(350)]
        _publish(channel, bodies)
        got = []
        for _ in range(400):
            method, _props, body = channel.basic_get("long", auto_ack=True)
            if method is None:
                break
            assert method.message_count == 350 - len(got) - 1
            got.append(body)
        assert got == [body for body, _ in bodies]
    finally:
        connection.close()


def test_purge_of_a_paged_queue_keeps_unacked_messages(small_window: None, data_dir: Path) -> None:
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off") as broker:
        connection, channel = _channel(broker)
        channel.queue_declare("long", durable=True)
        _publish(channel, [(b"p%04d" % i, True) for i in range(400)])
        channel.basic_qos(prefetch_count=5)
        held = []
        for _method, _props, body in channel.consume("long", inactivity_timeout=2):
            held.append(body)
            if len(held) == 5:
                break
        assert channel.queue_purge("long").method.message_count == 395
        # Purge drops only ready messages: the five unacked ones stay stored, and come
        # back (redelivered) once this broker stops with them still unacked.
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off") as broker:
        connection, channel = _channel(broker)
        try:
            count = channel.queue_declare("long", passive=True).method.message_count
            assert count == 5
            assert _drain(channel) == held
        finally:
            connection.close()


def test_restart_reads_one_window_and_pages_in_the_rest(small_window: None, data_dir: Path) -> None:
    bodies = [(b"r%04d" % i, True) for i in range(450)]
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off") as broker:
        connection, channel = _channel(broker)
        channel.queue_declare("long", durable=True)
        _publish(channel, bodies)
        connection.close()
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off") as broker:
        kind, in_memory = _queue_state(broker)
        assert (kind, in_memory) == ("PagedQueue", WINDOW)
        connection, channel = _channel(broker)
        try:
            assert channel.queue_declare("long", passive=True).method.message_count == 450
            assert _drain(channel) == [body for body, _ in bodies]
        finally:
            connection.close()


def test_a_failed_page_in_read_is_logged_and_retried_losing_nothing(
    broker: amqpbroker.Broker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pager_module, "RETRY_FIRST_S", 0.05)
    assert broker.core is not None and broker.core.store is not None
    store = broker.core.store
    real_read = store.read_messages
    failures = []

    def failing_read(queue_id: int, after_seq: int, limit: int) -> list[MessageRecord]:
        if len(failures) < 2:  # an I/O error twice in a row, then the disk is back
            failures.append(after_seq)
            raise StoreError("read from the store failed: disk I/O error")
        return real_read(queue_id, after_seq, limit)

    connection, channel = _channel(broker)
    try:
        channel.queue_declare("long", durable=True)
        bodies = [(b"f%04d" % i, True) for i in range(300)]
        _publish(channel, bodies)
        monkeypatch.setattr(store, "read_messages", failing_read)
        with caplog.at_level(logging.ERROR, logger="amqpbroker.pager"):
            assert _drain(channel) == [body for body, _ in bodies]
        assert len(failures) == 2
        errors = [r.getMessage() for r in caplog.records if r.name == "amqpbroker.pager"]
        assert len(errors) == 2
        assert "queue 'long' in vhost '/': reading its next messages failed" in errors[0]
        assert "disk I/O error" in errors[0]
    finally:
        connection.close()


# -- queues with features page too -------------------------------------------------------


def _confirmed_channel(broker: amqpbroker.Broker) -> tuple[pika.BlockingConnection, object]:
    connection, channel = _channel(broker)
    channel.confirm_delivery()  # type: ignore[attr-defined]
    return connection, channel


def _dead_letter_queue(channel, name: str = "dead") -> None:
    channel.queue_declare(name, durable=True)


def _publish_confirmed(channel, queue: str, bodies: list[bytes], **props) -> int:
    """Publish persistent messages with confirms; the number the broker refused."""
    refused = 0
    for body in bodies:
        try:
            channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, **props))
        except pika.exceptions.NackError:
            refused += 1
    return refused


def _count(channel, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


def _wait_for_count(channel, queue: str, want: int, timeout: float = 10.0) -> int:
    """The count, once it is ``want`` (pages are read in by a worker thread)."""
    eventually(lambda: _count(channel, queue) == want, timeout=timeout)
    return _count(channel, queue)


def test_paged_ttl_queue_expires_and_dead_letters_the_messages_on_disk_too(
    broker: amqpbroker.Broker, clock: amqpbroker.ManualClock
) -> None:
    connection, channel = _confirmed_channel(broker)
    try:
        _dead_letter_queue(channel)
        args = {"x-message-ttl": 2000, **DEAD_LETTER_TO_DEAD}
        channel.queue_declare("long", durable=True, arguments=args)
        bodies = [b"t%04d" % i for i in range(350)]
        _publish_confirmed(channel, "long", bodies)
        assert _queue_state(broker)[0] == "PagedFeatureQueue"
        assert _count(channel, "long") == 350
        clock.advance(2.001)  # those paged out have their deadlines stored to the ms
        # No consumer: the head expires on its timer, and what was on disk is read in
        # and expires in turn, in order, every one dead-lettered.
        assert _wait_for_count(channel, "dead", 350) == 350
        assert _count(channel, "long") == 0
        dead = _drain_messages(channel, "dead")
        assert [body for _props, body in dead] == bodies
        assert {props.headers["x-death"][0]["reason"] for props, _body in dead} == {"expired"}
    finally:
        connection.close()


def test_paged_drop_head_queue_keeps_the_newest_and_dead_letters_the_rest(
    broker: amqpbroker.Broker,
) -> None:
    connection, channel = _confirmed_channel(broker)
    try:
        _dead_letter_queue(channel)
        args = {"x-max-length": 250, **DEAD_LETTER_TO_DEAD}
        channel.queue_declare("long", durable=True, arguments=args)
        bodies = [b"d%04d" % i for i in range(400)]
        _publish_confirmed(channel, "long", bodies)
        assert _queue_state(broker)[0] == "PagedFeatureQueue"
        assert _count(channel, "long") == 250
        assert _wait_for_count(channel, "dead", 150) == 150
        assert _drain(channel) == bodies[150:]
        assert _drain(channel, "dead") == bodies[:150]
    finally:
        connection.close()


def test_paged_reject_publish_queue_counts_its_tail(broker: amqpbroker.Broker) -> None:
    connection, channel = _confirmed_channel(broker)
    try:
        args = {"x-max-length": 250, "x-overflow": "reject-publish"}
        channel.queue_declare("long", durable=True, arguments=args)
        bodies = [b"r%04d" % i for i in range(300)]
        assert _publish_confirmed(channel, "long", bodies) == 50
        assert _count(channel, "long") == 250
        assert _drain(channel) == bodies[:250]
    finally:
        connection.close()


def test_paged_byte_limit_counts_the_tail_after_a_restart(
    small_window: None, data_dir: Path
) -> None:
    args = {"x-max-length-bytes": 250 * 5}
    bodies = [b"b%04d" % i for i in range(260)]  # 5 bytes each
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off") as broker:
        connection, channel = _confirmed_channel(broker)
        channel.queue_declare("long", durable=True, arguments=args)
        _publish_confirmed(channel, "long", bodies[:250])
        assert _queue_state(broker)[0] == "PagedFeatureQueue"
        connection.close()
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off") as broker:
        # Recovered with 150 of its 250 messages on disk: the byte limit knows them,
        # so ten more push the ten oldest out.
        assert _queue_state(broker) == ("PagedFeatureQueue", WINDOW)
        connection, channel = _confirmed_channel(broker)
        try:
            _publish_confirmed(channel, "long", bodies[250:])
            assert _count(channel, "long") == 250
            assert _drain(channel) == bodies[10:]
        finally:
            connection.close()


def test_message_with_expiration_in_a_paged_plain_queue_expires(
    broker: amqpbroker.Broker, clock: amqpbroker.ManualClock
) -> None:
    connection, channel = _confirmed_channel(broker)
    try:
        channel.queue_declare("long", durable=True)
        bodies = [b"e%04d" % i for i in range(300)]
        _publish_confirmed(channel, "long", bodies)
        assert _queue_state(broker)[0] == "PagedQueue"
        _publish_confirmed(channel, "long", [b"short-lived"], expiration="100")
        _publish_confirmed(channel, "long", [b"last"])
        assert _queue_state(broker)[0] == "PagedFeatureQueue"
        clock.advance(0.101)  # paged out, its deadline is stored to the ms
        # It expires when it reaches the head, so it is never delivered.
        assert _drain(channel) == [*bodies, b"last"]
    finally:
        connection.close()


def test_message_stored_with_expiration_behind_the_recovered_window_expires(
    small_window: None, data_dir: Path, clock: amqpbroker.ManualClock
) -> None:
    bodies = [b"w%04d" % i for i in range(300)]
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off", clock=clock) as broker:
        connection, channel = _confirmed_channel(broker)
        channel.queue_declare("long", durable=True)
        _publish_confirmed(channel, "long", bodies)
        _publish_confirmed(channel, "long", [b"short-lived"], expiration="200")
        connection.close()
    clock.advance(0.201)  # while no broker runs (deadlines are stored to the ms)
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off", clock=clock) as broker:
        # The first window has no TTL in it: the queue comes back plain and paged, and
        # gains its features when the stored deadline is read in.
        assert _queue_state(broker)[0] == "PagedQueue"
        connection, channel = _confirmed_channel(broker)
        try:
            assert _drain(channel) == bodies
            assert _count(channel, "long") == 0
        finally:
            connection.close()


@each_version("3.10", "4.0")
def test_paged_quorum_queue_returns_a_message(
    broker: amqpbroker.Broker, rabbitmq_version: str
) -> None:
    connection, channel = _confirmed_channel(broker)
    try:
        channel.queue_declare("long", durable=True, arguments={"x-queue-type": "quorum"})
        bodies = [b"q%04d" % i for i in range(300)]
        _publish_confirmed(channel, "long", bodies)
        assert _queue_state(broker)[0] == "PagedFeatureQueue"
        method, _props, body = channel.basic_get("long")
        assert body == bodies[0]
        channel.basic_nack(method.delivery_tag, requeue=True)
        got = [
            (body, (props.headers or {}).get("x-delivery-count"))
            for props, body in _drain_messages(channel)
        ]
        if rabbitmq_version == "3.10":
            # Returned to the back of the queue, behind the 299 on disk, counted.
            assert got == [(b, None) for b in bodies[1:]] + [(bodies[0], 1)]
        else:
            # 4.x serves returns first, ahead of the in-memory head and the disk tail.
            assert got == [(bodies[0], 1)] + [(b, None) for b in bodies[1:]]
    finally:
        connection.close()
