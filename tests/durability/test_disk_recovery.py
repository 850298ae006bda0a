"""A full data disk that recovers without a restart (issue 15 items 2 and 3), on a
64 MB tmpfs mounted for the test: publishers blocked by the disk alarm are unblocked
once consumers drain the queue, whether the alarm came from the free-space limit or
from commits failing with ENOSPC; nothing confirmed is lost."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
from brokerproc import BrokerProcesses

BODY = b"d" * 8192
PERSISTENT = pika.BasicProperties(delivery_mode=2)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB tmpfs, unmounted at teardown."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        # Lazy: a broker killed a moment ago may still hold its files open.
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def _pump(
    connections: list[pika.BlockingConnection],
    done: Callable[[], bool],
    timeout: float,
    what: Callable[[], object] = lambda: None,
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"condition not reached in time: {what()}"
        for connection in connections:
            connection.process_data_events(time_limit=0.02)


def _fill_drain_and_publish_again(port: int) -> None:
    params = pika.ConnectionParameters("127.0.0.1", port)
    publisher = pika.BlockingConnection(params)
    consumer = pika.BlockingConnection(params)
    events: list[str] = []
    try:
        publisher.add_on_connection_blocked_callback(lambda _c, _f: events.append("b"))
        publisher.add_on_connection_unblocked_callback(lambda _c, _f: events.append("u"))
        channel = publisher.channel()
        channel.queue_declare("backlog", durable=True)
        sent = 0
        while not events:
            for _ in range(100):
                channel.basic_publish("", "backlog", BODY, PERSISTENT)
                sent += 1
            publisher.process_data_events(time_limit=0.05)
            assert sent < 20_000, "the disk never filled"
        # Drain everything, acking: the acked rows must give their space back.
        got = [0]

        def take(ch, method, _props, _body) -> None:  # type: ignore[no-untyped-def]
            got[0] += 1
            ch.basic_ack(method.delivery_tag)

        cch = consumer.channel()
        cch.basic_qos(prefetch_count=200)
        cch.basic_consume("backlog", take)
        _pump(
            [consumer, publisher],
            lambda: events == ["b", "u"],
            timeout=60,
            what=lambda: (got[0], sent),
        )
        # Unblocked: the rest of what was sent comes in, then a new message.
        channel.basic_publish("", "backlog", b"after", PERSISTENT)
        _pump(
            [consumer, publisher],
            lambda: got[0] == sent + 1,
            timeout=60,
            what=lambda: (got[0], sent),
        )
        assert events[-1] == "u"
    finally:
        # A still-blocked publisher cannot close politely (it is not read); the
        # broker's teardown closes it.
        for connection in (publisher, consumer) if events[-1:] == ["u"] else (consumer,):
            if connection.is_open:
                connection.close()


def test_disk_alarm_clears_when_consumers_drain(brokers: BrokerProcesses, small_disk: Path) -> None:
    broker = brokers.start(
        small_disk / "data", "normal", "--disk-free-limit", "20MB", "--no-management"
    )
    _fill_drain_and_publish_again(broker.port)


def test_store_recovers_from_a_full_disk_without_a_restart(
    brokers: BrokerProcesses, small_disk: Path
) -> None:
    # A limit too low to stop publishers before the disk is really full: commits fail
    # with ENOSPC, which raises the disk alarm; acks still commit (the reserve).
    broker = brokers.start(
        small_disk / "data", "normal", "--disk-free-limit", "1kB", "--no-management"
    )
    _fill_drain_and_publish_again(broker.port)
    assert "commit failed" in broker.log()
