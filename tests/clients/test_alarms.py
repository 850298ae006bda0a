"""Resource alarms as clients see them: connection.blocked / unblocked, publishers
not read while blocked, consumers still served (RabbitMQ's flow-control contract)."""

from __future__ import annotations

import pika
import pytest

import amqpbroker
from amqpbroker.broker import alarms
from amqpbroker.server import monitor
from amqpbroker.testing import eventually


def _raise(broker: amqpbroker.Broker, name: str) -> None:
    assert broker.core is not None
    broker.call(broker.core.alarms.raise_alarm, name)


def _clear(broker: amqpbroker.Broker, name: str) -> None:
    assert broker.core is not None
    broker.call(broker.core.alarms.clear_alarm, name)


def _pump_until(connection: pika.BlockingConnection, predicate, timeout: float = 5.0) -> None:
    def pumped() -> bool:
        connection.process_data_events(time_limit=0.001)
        return predicate()

    eventually(pumped, timeout=timeout)


def _drain(channel, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def test_publisher_is_blocked_and_unblocked(
    broker: amqpbroker.Broker, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    publisher = pika.BlockingConnection(pika.URLParameters(url))
    consumer = pika.BlockingConnection(pika.URLParameters(url))
    try:
        publisher.add_on_connection_blocked_callback(
            lambda _conn, frame: events.append(f"blocked:{frame.method.reason}")
        )
        publisher.add_on_connection_unblocked_callback(
            lambda _conn, _frame: events.append("unblocked")
        )
        pch = publisher.channel()
        pch.queue_declare("alarmed")
        pch.basic_publish("", "alarmed", b"before")
        # The broker's memory monitor (a check a second) finds it over its high
        # watermark; it tells the publisher it is blocked and stops reading it.
        monkeypatch.setattr(monitor, "resident_memory", lambda: 2**62)
        _pump_until(publisher, lambda: "blocked:low on memory" in events)
        pch.basic_publish("", "alarmed", b"during")
        # A read already under way when the alarm went up completes (as in RabbitMQ);
        # give it time, so that what is sent next is certainly not read. (Whether the
        # broker's reader was parked or mid-read is not visible to a client, so these
        # two pauses stay; the other waits in this module are bounded polls.)
        publisher.process_data_events(time_limit=0.2)
        pch.basic_publish("", "alarmed", b"held back")
        publisher.process_data_events(time_limit=0.3)  # were it read, it would be in

        cch = consumer.channel()
        # Consumers keep draining. "during" may or may not have been read before the
        # broker stopped reading; the publish sent after `blocked` waits in the socket.
        seen = _drain(cch, "alarmed")
        assert seen in ([b"before"], [b"before", b"during"])

        monkeypatch.undo()  # memory back under the watermark: the monitor clears it
        _pump_until(publisher, lambda: "unblocked" in events)
        eventually(lambda: seen[-1] == b"held back" or seen.extend(_drain(cch, "alarmed")))
        assert seen == [b"before", b"during", b"held back"]
        assert events == ["blocked:low on memory", "unblocked"]
    finally:
        monkeypatch.undo()  # a blocked publisher's close would wait for the alarm to clear
        publisher.close()
        consumer.close()


def test_consumer_only_connection_is_not_blocked(broker: amqpbroker.Broker, url: str) -> None:
    events: list[str] = []
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
        channel = connection.channel()
        channel.queue_declare("drain")
        _raise(broker, alarms.DISK)
        try:
            # Declares and gets are still served: the connection never published.
            channel.queue_declare("drain-2")
            assert channel.basic_get("drain", auto_ack=True)[0] is None
            # Answered, and no connection.blocked ahead of the answers: a round trip
            # shows every frame the broker sent before it.
            connection.channel().close()
            connection.process_data_events(time_limit=0)
            assert events == []
        finally:
            _clear(broker, alarms.DISK)
    finally:
        connection.close()


def test_disk_free_limit_blocks_publishers(tmp_path) -> None:
    """A data partition under --disk-free-limit raises the disk alarm at startup."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "amqpbroker",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--disk-free-limit",
            "1000000000GB",
            "--sync",
            "off",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("amqpbroker: listening on amqp://"), line
        port = int(line.rsplit(":", 1)[1])
        events: list[str] = []
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        connection.add_on_connection_blocked_callback(
            lambda _c, frame: events.append(frame.method.reason)
        )
        channel = connection.channel()
        channel.basic_publish("amq.fanout", "", b"x")
        _pump_until(connection, lambda: events == ["low on disk"])
        # A blocked connection is not read, so it cannot close politely (as with
        # RabbitMQ); stopping the broker closes it with 320 instead.
        proc.terminate()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            _pump_until(connection, lambda: connection.is_closed, timeout=10)
        assert closed.value.reply_code == 320
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert "disk alarm" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
