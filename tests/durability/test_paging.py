"""Durable queues larger than memory: the tail of a long queue is paged out to the
store and read back as the head drains, without the client seeing any difference.

The window is shrunk to 100 messages here (it is 10,000 by default) so the tests
need only hundreds of messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

import amqpbroker
from amqpbroker.broker import queue as queue_module
from amqpbroker.server import pager as pager_module
from amqpbroker.store import MessageRecord, StoreError

WINDOW = 100


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "PAGE_OUT_AT", WINDOW)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def broker(small_window: None, data_dir: Path) -> Iterator[amqpbroker.Broker]:
    with amqpbroker.Broker(data_dir=str(data_dir), sync="off") as running:
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
        return type(queue).__name__, len(queue.ready)

    return broker.call(read)


def _drain(channel, queue: str = "long", limit: int = 10_000) -> list[bytes]:
    got = []
    for method, _props, body in channel.consume(queue, inactivity_timeout=2):
        if method is None:
            break
        got.append(body)
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
