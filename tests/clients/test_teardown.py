"""Connection teardown as RabbitMQ does it: no reset under a client that is still sending.

A client whose connection.close overtakes publishes still queued on a channel (node's
amqplib writes each channel's buffer in turn) must read close-ok and then a clean end
of stream, not ECONNRESET: after close-ok the broker reads and drops what still comes
until the client closes its side, or the closing timeout (RabbitMQ's 30 s, or the
heartbeat when shorter) passes.  The raw-socket scenarios run against RabbitMQ too
(AMQPBROKER_REFERENCE_URL, as in test_differential.py) and must give the same outcome,
but for how the broker ends the stream once the client is done: RabbitMQ closes its
sockets with SO_LINGER 0 (its default tcp_listen_options), a reset the client sees
only after close-ok; we close with a plain FIN.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pika
import pika.exceptions
import pytest
from pamqp import body, commands, frame, header
from pikakit import connect, new_queue, ready_count
from rawamqp import Closed, RawClient, parse_url
from rawamqp import connect as raw_connect

import amqpbroker

REFERENCE_URL = os.environ.get("AMQPBROKER_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5673/")
TIMEOUT = 10.0
CLIENT_CLOSE = frame.marshal(commands.Connection.Close(200, "bye", 0, 0), 0)
# Behind the close: more than the socket buffers of both sides hold (loopback autotunes
# to a few MB), so a broker that closes at close-ok leaves bytes unread (a reset).
BURST = 8 * 1024 * 1024


def _listening(url: str) -> bool:
    host, port, _ = parse_url(url)
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


# How each broker ends the stream after the client has closed its side (see above).
STREAM_END = {"amqpbroker": "eof", "rabbitmq": "reset"}


@pytest.fixture(params=["amqpbroker", "rabbitmq"])
def target(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(name, URL) of our broker (a vhost of the test's own) or of the reference."""
    if request.param == "rabbitmq":
        if not _listening(REFERENCE_URL):
            pytest.skip(f"no reference broker at {REFERENCE_URL}")
        return request.param, REFERENCE_URL
    return request.param, request.getfixturevalue("url")


def publishes(size: int) -> bytes:
    """Unroutable publishes on channel 1 (the default exchange, no such queue): the
    reference broker keeps nothing."""
    content = b"x" * 1000
    one = (
        frame.marshal(commands.Basic.Publish(exchange="", routing_key="teardown-nowhere"), 1)
        + frame.marshal(header.ContentHeader(0, len(content)), 1)
        + frame.marshal(body.ContentBody(content), 1)
    )
    return one * (size // len(one) + 1)


def read_to_end(client: RawClient, deadline: float) -> str:
    """'eof' when the broker closes the stream cleanly, 'reset' on ECONNRESET."""
    sock = client.sock
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            if not sock.recv(65536):
                return "eof"
        except ConnectionResetError:
            return "reset"


def await_close_ok(client: RawClient) -> str:
    try:
        while True:
            _channel, value = client.recv(TIMEOUT)
            if isinstance(value, commands.Connection.CloseOk):
                return "close-ok"
    except Closed:  # rawamqp reads a reset as Closed too
        return "closed before close-ok"


def close_overtaking_publishes(url: str) -> list[str]:
    """amqplib's shape: connection.close with publishes before and behind it."""
    with raw_connect(url, timeout=TIMEOUT) as client:
        client.open_channel(1)
        seen = []
        try:
            client.sock.sendall(publishes(64 * 1024) + CLIENT_CLOSE + publishes(BURST))
        except OSError as exc:  # EPIPE / ECONNRESET: the broker closed under us
            seen.append(f"send failed: {type(exc).__name__}")
        seen.append(await_close_ok(client))
        with contextlib.suppress(OSError):  # ENOTCONN once reset
            client.sock.shutdown(socket.SHUT_WR)  # the client is done: closes its side
        seen.append(read_to_end(client, time.monotonic() + TIMEOUT))
        return seen


def test_close_overtaking_publishes_reads_close_ok_without_a_reset(
    target: tuple[str, str],
) -> None:
    name, url = target
    assert close_overtaking_publishes(url) == ["close-ok", STREAM_END[name]]


def test_after_close_ok_the_socket_stays_until_the_closing_timeout(
    target: tuple[str, str],
) -> None:
    """With heartbeat 1 s the closing timeout is 1 s (RabbitMQ: the heartbeat when it is
    shorter than 30 s): a client that never closes its side is closed on then."""
    name, url = target
    with raw_connect(url, timeout=TIMEOUT, heartbeat=1) as client:
        client.open_channel(1)
        client.sock.sendall(CLIENT_CLOSE + publishes(64 * 1024))
        assert await_close_ok(client) == "close-ok"
        ok_at = time.monotonic()
        # Still open after close-ok: what the client sends is read and dropped.
        client.sock.sendall(publishes(256 * 1024))
        assert read_to_end(client, ok_at + TIMEOUT) == STREAM_END[name]
        assert 0.5 < time.monotonic() - ok_at < 5


def test_pika_close_after_a_burst_of_publishes(url: str) -> None:
    """pika writes in order, so its close follows the publishes: every one of them is
    routed, and close() returns on close-ok (no StreamLostError)."""
    conn = connect(url)
    ch = conn.channel()
    queue = new_queue(ch)
    for i in range(2000):
        ch.basic_publish("", queue, b"%d" % i + b"x" * 1000)
    conn.close()
    assert conn.is_closed
    check = connect(url)
    try:
        assert ready_count(check.channel(), queue) == 2000
    finally:
        check.close()


def test_pika_publishing_while_the_broker_stops_sees_320_not_a_reset() -> None:
    """SIGTERM's path (Server.shutdown): connection.close 320 to a client in the middle of
    publishing; its publishes are dropped until its close-ok, then it is closed."""
    outcome: list[BaseException] = []
    started = threading.Event()

    def publish_until_closed(url: str) -> None:
        params = pika.URLParameters(url + "?heartbeat=0&socket_timeout=5")
        try:
            with pika.BlockingConnection(params) as conn:
                ch = conn.channel()
                started.set()
                deadline = time.monotonic() + TIMEOUT
                while time.monotonic() < deadline:
                    ch.basic_publish("", "teardown-nowhere", b"x" * 1000)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            started.set()

    broker = amqpbroker.Broker()
    broker.start()
    try:
        thread = threading.Thread(target=publish_until_closed, args=(broker.url,), daemon=True)
        thread.start()
        assert started.wait(TIMEOUT)
    finally:
        broker.stop()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert len(outcome) == 1
    closed = outcome[0]
    assert isinstance(closed, pika.exceptions.ConnectionClosedByBroker), repr(closed)
    assert closed.reply_code == 320


def test_a_peer_that_stops_reading_is_closed_on_after_the_closing_timeout() -> None:
    """Our connection.close stuck behind deliveries the client does not read: the closing
    timeout (1 s with heartbeat 1) still runs, and the connection is gone in seconds
    (then the writer's final flush is bounded too), not kept until the broker stops."""
    with amqpbroker.Broker() as broker:
        conn = connect(broker.url)
        ch = conn.channel()
        queue = new_queue(ch)
        for _ in range(3000):  # 12 MB: more than both sides' socket buffers
            ch.basic_publish("", queue, b"x" * 4096)
        conn.close()
        assert broker.core is not None
        core = broker.core

        def connections() -> int:
            return broker.call(lambda: len(core.sessions))

        with RawClient.for_url(broker.url, timeout=TIMEOUT) as client:
            # A small receive window, so the deliveries stop in our writer's send.
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.handshake(vhost=parse_url(broker.url)[2], heartbeat=1)
            client.open_channel(1)
            client.send(commands.Basic.Consume(queue=queue, no_ack=True), 1)
            # A connection error (503, channel.open on channel 0) while deliveries fill
            # the socket; from now on the client neither reads nor writes.
            client.send(commands.Channel.Open(), 0)
            deadline = time.monotonic() + 15
            while connections() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert connections() == 0
