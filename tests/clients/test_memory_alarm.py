"""The memory alarm weighs what the broker holds, so it clears when a backlog drains
(issue 15's reproduction: on RSS it never cleared, since freed memory stays resident)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pika
import pytest

from amqpbroker.server.monitor import total_memory

# The watermark as a fraction of this machine's RAM that comes to 48 MB: some 36,000
# 1 KiB messages, a few seconds of publishing, and past the broker's resident size at
# start (~30 MB), as RabbitMQ's 0.4 of RAM is past an idle node's.
MARK = 48_000_000
BODY = b"m" * 1024
KEPT_EVERY = 100  # every 100th message goes to a queue nobody drains


@pytest.fixture
def broker_port() -> Iterator[int]:
    fraction = MARK / total_memory()
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "--transient", "--port", "0", "--no-management",
         "--memory-high-watermark", f"{fraction:.6f}", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("amqpbroker: listening on amqp://"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _pump(connections: list[pika.BlockingConnection], done: Callable[[], bool], timeout: float):
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"
        for connection in connections:
            connection.process_data_events(time_limit=0.02)


def test_memory_alarm_clears_when_the_backlog_drains(broker_port: int) -> None:
    params = pika.ConnectionParameters("127.0.0.1", broker_port)
    events: list[list[str]] = [[], []]
    publishers = [pika.BlockingConnection(params) for _ in range(2)]
    consumer = pika.BlockingConnection(params)
    try:
        for i, publisher in enumerate(publishers):
            publisher.add_on_connection_blocked_callback(lambda _c, _f, i=i: events[i].append("b"))
            publisher.add_on_connection_unblocked_callback(
                lambda _c, _f, i=i: events[i].append("u")
            )
        channels = [p.channel() for p in publishers]
        channels[0].queue_declare("kept")
        channels[0].queue_declare("drained")
        # Two publishers until the broker blocks them (a blocked one is not read).
        sent = 0
        while not (events[0] and events[1]):
            for _ in range(500):
                key = "kept" if sent % KEPT_EVERY == 0 else "drained"
                channels[sent % 2].basic_publish("", key, BODY)
                sent += 1
            for publisher in publishers:
                publisher.process_data_events(time_limit=0)
            assert sent < 400_000, "never blocked"
        assert events == [["b"], ["b"]]
        # Drain one queue: what is left is the 1% in "kept", far under the mark.
        drained = [0]

        def take(channel, method, _props, body) -> None:  # type: ignore[no-untyped-def]
            drained[0] += 1

        cch = consumer.channel()
        cch.basic_consume("drained", take, auto_ack=True)
        _pump([consumer, *publishers], lambda: events == [["b", "u"], ["b", "u"]], timeout=60)
        # Unblocked, the publishers' unread messages come in, and so does a new one.
        channels[0].basic_publish("", "kept", b"after")
        expected_kept = (sent + KEPT_EVERY - 1) // KEPT_EVERY + 1
        _pump(
            [consumer, *publishers],
            lambda: cch.queue_declare("kept", passive=True).method.message_count == expected_kept,
            timeout=30,
        )
        assert events == [["b", "u"], ["b", "u"]]
    finally:
        for connection in (*publishers, consumer):
            if connection.is_open:
                connection.close()
