"""Limits against greedy or hostile clients, with RabbitMQ's defaults and texts: the
pre-auth frame size, the handshake timeout, message size, connections, channels,
consumers per channel and queues per vhost."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pika
import pytest
import trio
import trio.testing
from pamqp import commands
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker
from rawamqp import RawClient, connect, parse_url, raw_frame

import amqpbroker
from amqpbroker.broker.broker import Broker as BrokerCore
from amqpbroker.cli import build_parser, settings_from_args
from amqpbroker.config import Settings
from amqpbroker.server.server import ReadGate, handle_connection
from amqpbroker.testing.pytest_plugin import each_version


@pytest.fixture
def limited() -> Iterator[amqpbroker.Broker]:
    with amqpbroker.Broker(
        max_connections=3,
        channel_max=3,
        max_consumers_per_channel=2,
        max_queues_per_vhost=2,
        max_message_size=1000,
    ) as broker:
        yield broker


def pika_connect(broker: amqpbroker.Broker) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(broker.url + "?heartbeat=0"))


# ------------------------------------------------------------- before open


def test_pre_auth_frames_larger_than_4096_close_the_socket(url: str) -> None:
    # As RabbitMQ 3.10: before tune-ok, frame_max is AMQP's minimum; no close frame.
    with RawClient.for_url(url) as client:
        client.start()
        client.send_bytes(raw_frame(1, 0, b"\x00" * 5000))
        assert client.frames_until_closed() == []


# The largest frame a client may send before tune-ok (RabbitMQ's FRAME_MIN_SIZE:
# 4096, 8192 from 4.1, whose release notes name JWT tokens in start-ok as the reason).
PRE_AUTH_FRAME_MAX = {"4.0": 4096, "4.1": 8192}


@each_version(*PRE_AUTH_FRAME_MAX)
def test_pre_auth_frame_max_follows_the_version(url: str, rabbitmq_version: str) -> None:
    def login(property_size: int, frame_max: int = 0) -> pika.BlockingConnection:
        host, port, vhost = parse_url(url)
        return pika.BlockingConnection(
            pika.ConnectionParameters(
                host, port, vhost, socket_timeout=5, heartbeat=0,
                client_properties={"pad": "x" * property_size},
                **({"frame_max": frame_max} if frame_max else {}),
            )
        )  # fmt: skip

    # A start-ok of about 6 KiB: too big for 4.0's 4096, fine for 4.1's 8192.
    if PRE_AUTH_FRAME_MAX[rabbitmq_version] < 6000:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            login(6000)
    else:
        login(6000).close()
    # And tune-ok may not ask for frames smaller than that minimum (pika itself
    # refuses less than 4096): the socket closes without a word, as RabbitMQ does.
    smallest = PRE_AUTH_FRAME_MAX[rabbitmq_version]
    login(0, frame_max=smallest).close()
    with RawClient.for_url(url) as client:
        client.start()
        client.login()
        client.tune_ok(frame_max=smallest - 1)
        assert client.frames_until_closed() == []


def test_handshake_timeout_is_ten_seconds() -> None:
    # In simulated time: a client that sends the protocol header and then nothing.
    async def main() -> float:
        core = BrokerCore(Settings(consumer_timeout=0))
        client, server = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handle_connection, core, server, ReadGate())
            await client.send_all(b"AMQP\x00\x00\x09\x01")
            started = trio.current_time()
            while await client.receive_some(65536):
                pass  # connection.start, then EOF when the broker gives up
            return trio.current_time() - started

    elapsed = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert 10.0 <= elapsed <= 11.5


# ----------------------------------------------------------- message size


def test_message_larger_than_max_message_size_is_406(limited: amqpbroker.Broker) -> None:
    conn = pika_connect(limited)
    try:
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"x" * 1000)  # at the limit: fine
        with pytest.raises(ChannelClosedByBroker) as err:
            ch.basic_publish("", queue, b"x" * 1001)
        assert (err.value.reply_code, err.value.reply_text) == (
            406,
            "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000",
        )
        # Only the channel: the connection goes on.
        assert conn.channel().queue_declare(queue, passive=True).method.message_count == 1
    finally:
        conn.close()


def test_max_message_size_is_checked_from_the_content_header(limited: amqpbroker.Broker) -> None:
    # The header alone announces 2 GB: refused without waiting for (or buffering) a body.
    with connect(limited.url, channel_max=3) as client:
        client.open_channel(1)
        client.send(commands.Basic.Publish(exchange="", routing_key="q"), 1)
        client.send_bytes(raw_frame(2, 1, struct.pack(">HHQH", 60, 0, 2**31, 0)))
        close = client.recv_method()
        assert isinstance(close, commands.Channel.Close)
        assert close.reply_text == (
            "PRECONDITION_FAILED - message size 2147483648 is larger than configured max size 1000"
        )


# The default body limit of each release (RabbitMQ's max_message_size default).
DEFAULT_MAX_MESSAGE_SIZE = {"3.10": 128 * 1024 * 1024, "4.0": 16 * 1024 * 1024}


@each_version(*DEFAULT_MAX_MESSAGE_SIZE)
def test_default_max_message_size_follows_the_version(url: str, rabbitmq_version: str) -> None:
    limit = DEFAULT_MAX_MESSAGE_SIZE[rabbitmq_version]
    with connect(url) as client:
        client.open_channel(1)
        client.send(commands.Basic.Publish(exchange="", routing_key="q"), 1)
        client.send_bytes(raw_frame(2, 1, struct.pack(">HHQH", 60, 0, limit + 1, 0)))
        close = client.recv_method()
        assert isinstance(close, commands.Channel.Close)
        assert close.reply_text == (
            f"PRECONDITION_FAILED - message size {limit + 1} is larger than configured max size "
            f"{limit}"
        )


# ------------------------------------------------------------ connections


def test_connections_past_max_connections_are_refused_at_open(
    limited: amqpbroker.Broker,
) -> None:
    conns = [pika_connect(limited) for _ in range(3)]
    try:
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as err:
            pika_connect(limited)
        assert (
            "(530) 'NOT_ALLOWED - connection refused: node connection limit (3) is reached'"
        ) in str(err.value)
        conns.pop().close()
        conns.append(pika_connect(limited))  # room again
    finally:
        for conn in conns:
            conn.close()


def test_channel_max_is_offered_and_enforced(limited: amqpbroker.Broker) -> None:
    with connect(limited.url, channel_max=3) as client:
        for number in (1, 2, 3):
            client.open_channel(number)
        client.send(commands.Channel.Open(), 4)
        close = client.recv_method()
        assert isinstance(close, commands.Connection.Close)
        assert (close.reply_code, close.reply_text) == (
            530,
            "NOT_ALLOWED - number of channels opened (3) has reached the negotiated "
            "channel_max (3)",
        )
    conn = pika_connect(limited)
    assert conn._impl.params.channel_max == 3
    conn.close()


# ------------------------------------------------------ consumers, queues


def test_consumers_per_channel(limited: amqpbroker.Broker) -> None:
    conn = pika_connect(limited)
    ch = conn.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(queue, lambda *a: None, consumer_tag="one")
    ch.basic_consume(queue, lambda *a: None, consumer_tag="two")
    with pytest.raises(ConnectionClosedByBroker) as err:
        ch.basic_consume(queue, lambda *a: None, consumer_tag="three")
    assert (err.value.reply_code, err.value.reply_text) == (
        530,
        "NOT_ALLOWED - reached maximum (2) of consumers per channel",
    )


def test_a_reused_tag_is_reported_before_the_consumer_limit(limited: amqpbroker.Broker) -> None:
    # pika refuses a reused tag itself, so this one speaks raw AMQP.
    with connect(limited.url, channel_max=3) as client:
        client.open_channel(1)
        client.send(commands.Queue.Declare(queue="", exclusive=True), 1)
        queue = client.expect(commands.Queue.DeclareOk).queue
        for tag in ("one", "two", "two"):
            client.send(commands.Basic.Consume(queue=queue, consumer_tag=tag), 1)
        client.expect(commands.Basic.ConsumeOk)
        client.expect(commands.Basic.ConsumeOk)
        close = client.recv_method()
        assert isinstance(close, commands.Connection.Close)
        assert close.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'two'"


def test_queues_per_vhost(limited: amqpbroker.Broker) -> None:
    conn = pika_connect(limited)
    try:
        ch = conn.channel()
        ch.queue_declare("q1", auto_delete=True)
        ch.queue_declare("q2", auto_delete=True)
        ch.queue_declare("q1", auto_delete=True)  # redeclaring is no new queue
        ch.queue_declare("q2", passive=True)
        with pytest.raises(ChannelClosedByBroker) as err:
            ch.queue_declare("q3")
        # RabbitMQ 3.10's text for its vhost limit max-queues.
        assert (err.value.reply_code, err.value.reply_text) == (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) "
            "is reached",
        )
        with pytest.raises(ChannelClosedByBroker) as err:
            conn.channel().queue_declare("", exclusive=True)
        text = err.value.reply_text
        assert text.startswith("PRECONDITION_FAILED - cannot declare queue 'amq.gen-")
        assert text.endswith("': queue limit in vhost '/' (2) is reached")
        ch = conn.channel()
        ch.queue_delete("q1")
        ch.queue_declare("q3", auto_delete=True)  # room again
    finally:
        ch = conn.channel()
        for name in ("q1", "q2", "q3"):
            ch.queue_delete(name)
        conn.close()


# -------------------------------------------------------------- flags


def test_limit_flags_reach_the_settings() -> None:
    args = build_parser().parse_args(
        [
            "--max-connections",
            "10",
            "--channel-max",
            "16",
            "--max-consumers-per-channel",
            "4",
            "--max-queues-per-vhost",
            "100",
            "--max-message-size",
            "1048576",
            "--handshake-timeout",
            "2.5",
        ]
    )
    settings = settings_from_args(args)
    assert (
        settings.max_connections,
        settings.channel_max,
        settings.max_consumers_per_channel,
        settings.max_queues_per_vhost,
        settings.max_message_size,
        settings.handshake_timeout,
    ) == (10, 16, 4, 100, 1048576, 2.5)
    defaults = settings_from_args(build_parser().parse_args([]))
    assert (defaults.max_connections, defaults.channel_max, defaults.max_message_size) == (
        0,
        2047,
        None,  # the RabbitMQ version's default
    )
    # RabbitMQ 4.x's default body limit is 16 MiB, 3.10's 128 MiB.
    assert defaults.message_size_limit == 16 * 1024 * 1024
    old = settings_from_args(build_parser().parse_args(["--rabbitmq-version", "3.10"]))
    assert old.message_size_limit == 128 * 1024 * 1024
