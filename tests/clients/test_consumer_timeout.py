"""The delivery acknowledgement timeout (consumer_timeout) through pika.

Checked against a RabbitMQ 3.10.8 configured with consumer_timeout = 1000 ms: the
channel holding the delivery is closed with 406 and RabbitMQ's text (class and
method 0), for consumers and basic.get alike, and what it held is requeued.
These tests run a broker of their own with a short timeout, on a ManualClock: the
test moves broker time, so "not yet" and "now" are checked a moment either side.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pika.adapters.blocking_connection import BlockingConnection
from pikakit import Inbox, connect, new_queue, wait_until

import amqpbroker
from amqpbroker.cli import build_parser, settings_from_args
from amqpbroker.config import Settings

pytestmark = pytest.mark.timeout(60)

TIMEOUT_MS = 400
TIMEOUT = TIMEOUT_MS / 1000
# The broker looks for overdue deliveries this often (ack_timeout.py: a quarter of
# the timeout), so a channel is closed between TIMEOUT and TIMEOUT + SCAN after it.
SCAN = TIMEOUT / 4


@pytest.fixture(scope="module")
def clock() -> amqpbroker.ManualClock:
    return amqpbroker.ManualClock()


@pytest.fixture(scope="module")
def timeout_broker(clock: amqpbroker.ManualClock) -> Iterator[tuple[str, int]]:
    """(URL, timeout in ms) of a broker with a short acknowledgement timeout."""
    with amqpbroker.Broker(consumer_timeout=TIMEOUT_MS, clock=clock) as running:
        yield running.url, TIMEOUT_MS


@pytest.fixture
def conn(timeout_broker: tuple[str, int]) -> Iterator[BlockingConnection]:
    connection = connect(timeout_broker[0])
    yield connection
    if connection.is_open:
        connection.close()


def closed_by_broker(channel: Any) -> list[Any]:
    reasons: list[Any] = []
    channel._impl.add_on_close_callback(lambda _ch, reason: reasons.append(reason))
    return reasons


def round_trip(conn: BlockingConnection) -> None:
    """Open and close a channel, then run pika's callbacks: whatever the broker sent
    this connection before answering (a channel.close) has been seen."""
    conn.channel().close()
    conn.process_data_events(time_limit=0)


def expected(channel: int, timeout_ms: int) -> tuple[int, str]:
    return (
        406,
        f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. "
        f"Timeout value used: {timeout_ms} ms. This timeout value can be configured, see "
        "consumers doc guide to learn more",
    )


def test_an_unacked_delivery_closes_the_channel(
    conn: BlockingConnection, timeout_broker: tuple[str, int], clock: amqpbroker.ManualClock
) -> None:
    timeout_ms = timeout_broker[1]
    setup = conn.channel()
    queue = new_queue(setup)
    setup.basic_publish("", queue, b"1")
    setup.basic_publish("", queue, b"2")
    consumer = conn.channel()
    reasons = closed_by_broker(consumer)
    inbox = Inbox()
    consumer.basic_consume(queue, inbox)
    wait_until(conn, lambda: len(inbox) == 2)
    clock.advance(TIMEOUT - 0.001)
    round_trip(conn)
    assert reasons == [] and consumer.is_open
    clock.advance(SCAN + 0.001)
    wait_until(conn, lambda: bool(reasons))
    assert (reasons[0].reply_code, reasons[0].reply_text) == expected(
        consumer.channel_number, timeout_ms
    )
    assert conn.is_open and setup.is_open
    # What it held went back to the queue, redelivered.
    method, _p, body = setup.basic_get(queue, auto_ack=True)
    assert (body, method.redelivered, method.message_count) == (b"1", True, 1)


def test_basic_get_deliveries_time_out_too(
    conn: BlockingConnection, timeout_broker: tuple[str, int], clock: amqpbroker.ManualClock
) -> None:
    setup = conn.channel()
    queue = new_queue(setup)
    setup.basic_publish("", queue, b"1")
    getter = conn.channel()
    reasons = closed_by_broker(getter)
    getter.basic_get(queue)
    clock.advance(TIMEOUT + SCAN)
    wait_until(conn, lambda: bool(reasons))
    assert (reasons[0].reply_code, reasons[0].reply_text) == expected(
        getter.channel_number, timeout_broker[1]
    )


def test_deliveries_acked_in_time_keep_the_channel(
    conn: BlockingConnection, clock: amqpbroker.ManualClock
) -> None:
    setup = conn.channel()
    queue = new_queue(setup)
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=1)
    acked: list[int] = []

    def ack(ch: Any, method: Any, _p: Any, _b: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        acked.append(method.delivery_tag)

    consumer.basic_consume(queue, ack)
    for n in range(1, 7):
        setup.basic_publish("", queue, b"m")
        # With prefetch 1, delivery n means the broker has taken ack n - 1.
        wait_until(conn, lambda n=n: len(acked) == n)  # type: ignore[misc]
        clock.advance(TIMEOUT * 0.75)  # 6 x 0.3 s in all: far past one timeout
    round_trip(conn)
    assert consumer.is_open


def test_no_ack_consumers_never_time_out(
    conn: BlockingConnection, clock: amqpbroker.ManualClock
) -> None:
    setup = conn.channel()
    queue = new_queue(setup)
    consumer = conn.channel()
    inbox = Inbox()
    consumer.basic_consume(queue, inbox, auto_ack=True)
    setup.basic_publish("", queue, b"m")
    wait_until(conn, lambda: len(inbox) == 1)
    clock.advance(3600)
    round_trip(conn)
    assert consumer.is_open and len(inbox) == 1


# ------------------------------------------------------------ configuration


def test_default_is_thirty_minutes_and_the_flag_sets_it() -> None:
    assert Settings().consumer_timeout == 1_800_000
    parser = build_parser()
    assert settings_from_args(parser.parse_args([])).consumer_timeout == 1_800_000
    args = parser.parse_args(["--consumer-timeout", "5000"])
    assert settings_from_args(args).consumer_timeout == 5000
    assert settings_from_args(parser.parse_args(["--consumer-timeout", "0"])).consumer_timeout == 0


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_bad_flag_values_are_usage_errors(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--consumer-timeout", value])
    assert info.value.code == 2
    assert "--consumer-timeout" in capsys.readouterr().err


def test_zero_turns_the_timeout_off() -> None:
    clock = amqpbroker.ManualClock()
    with amqpbroker.Broker(consumer_timeout=0, clock=clock) as running:
        connection = connect(running.url)
        setup = connection.channel()
        queue = new_queue(setup)
        setup.basic_publish("", queue, b"m")
        holder = connection.channel()
        holder.basic_get(queue)
        assert running.core is not None
        assert len(running.core.timers) == 0  # no scan scheduled at all
        clock.advance(3600)
        round_trip(connection)
        assert holder.is_open
        connection.close()
