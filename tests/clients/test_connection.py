"""Connection behaviour as clients see it: handshake, login, tune, heartbeats, bad input.

pika where it can produce the case; raw pamqp frames over a socket (rawamqp) where it
cannot (AMQPLAIN, tune-ok values pika would never send, broken frames).  Every
expectation here was checked against a real RabbitMQ 3.10 first; where 3.10 differs
from what one might expect (it closes the socket without a word on a bad tune-ok) the
test says so.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pika
import pytest
from pamqp import commands, heartbeat
from pika.exceptions import (
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from pikakit import connect as pika_connect
from rawamqp import Closed, RawClient, connect, parse_url, raw_frame

from amqpbroker.testing.pytest_plugin import each_version

CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}
LOGIN_REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism {}. "
    "For details see the broker logfile."
)


def _with_password(url: str, password: str) -> str:
    return url.replace("guest:guest@", f"guest:{password}@")


def _raw(url: str) -> RawClient:
    return RawClient.for_url(url)


def _works(url: str) -> None:
    """A full round trip on a fresh pika connection: the broker still serves."""
    conn = pika_connect(url)
    try:
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", queue, b"still here")
        _method, _props, body = ch.basic_get(queue, auto_ack=True)
        assert body == b"still here"
    finally:
        conn.close()


# ---------------------------------------------------------------- handshake


# The release each --rabbitmq-version reports (3.10 and 4.0: the references here).
FULL_VERSIONS = {"3.10": "3.10.8", "4.0": "4.0.5", "4.1": "4.1.8", "4.2": "4.2.9", "4.3": "4.3.5"}


@each_version(*FULL_VERSIONS)
def test_pika_plain_login_sees_rabbitmq_server_properties(url: str, rabbitmq_version: str) -> None:
    conn = pika_connect(url)
    try:
        props = conn._impl.server_properties
        assert set(props) == {
            "product",
            "version",
            "platform",
            "copyright",
            "information",
            "cluster_name",
            "capabilities",
        }
        # kombu switches on basic.qos(global=True) only for RabbitMQ >= 3.3.
        assert props["product"] == "RabbitMQ"
        assert props["version"] == FULL_VERSIONS[rabbitmq_version]
        assert props["capabilities"] == CAPABILITIES
        assert conn.is_open
    finally:
        conn.close()
    assert conn.is_closed


# connection.start's mechanisms, as RabbitMQ 3.10.8 and 4.0.5 list them.
MECHANISMS = {"3.10": "PLAIN AMQPLAIN", "4.0": "AMQPLAIN PLAIN ANONYMOUS"}


@each_version(*MECHANISMS)
def test_start_offers_0_9_its_mechanisms_and_en_us(url: str, rabbitmq_version: str) -> None:
    with _raw(url) as client:
        start = client.start()
        assert (start.version_major, start.version_minor) == (0, 9)
        assert start.mechanisms == MECHANISMS[rabbitmq_version]
        assert start.locales == "en_US"
        assert start.server_properties["capabilities"] == CAPABILITIES


class AnonymousCredentials(pika.credentials.ExternalCredentials):
    """SASL ANONYMOUS for pika, which ships only PLAIN and EXTERNAL (and accepts only
    their classes)."""

    TYPE = "ANONYMOUS"

    def response_for(self, start: Any) -> tuple[str | None, bytes | None]:
        if b"ANONYMOUS" not in pika.compat.as_bytes(start.mechanisms).split():
            return None, None
        return self.TYPE, b""


def _anonymous(url: str) -> pika.BlockingConnection:
    host, port, vhost = parse_url(url)
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host, port, vhost, credentials=AnonymousCredentials(), socket_timeout=5
        )
    )


@each_version("4.0")
def test_anonymous_logs_in_as_guest(url: str, rabbitmq_version: str) -> None:
    # RabbitMQ 4.0.5 says the same: ANONYMOUS is guest/guest (anonymous_login_user).
    conn = _anonymous(url)
    try:
        ch = conn.channel()
        ch.confirm_delivery()  # so that basic_publish waits for the broker's answer
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.basic_publish("", "nowhere", b"x", pika.BasicProperties(user_id="nobody"))
        assert info.value.args == (
            406,
            "PRECONDITION_FAILED - user_id property set to 'nobody' but authenticated "
            "user was 'guest'",
        )
    finally:
        conn.close()


@each_version("3.10")
def test_anonymous_is_not_offered_by_3_10(url: str, rabbitmq_version: str) -> None:
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        _anonymous(url)


@each_version("3.10", "4.0")
def test_pika_update_secret_keeps_the_connection(url: str, rabbitmq_version: str) -> None:
    # RabbitMQ's internal users have no expiring credentials: any new secret is
    # accepted (update-secret-ok), as 3.10.8 and 4.0.5 answer; pika's own suite
    # sends one that is not the password.
    conn = pika_connect(url)
    try:
        conn.update_secret("new_secret", "reason")
        assert conn.channel().queue_declare("", exclusive=True).method.queue
        assert conn.is_open
    finally:
        conn.close()


@each_version("3.10", "4.0")
def test_method_during_content_is_505_naming_basic_publish(url: str, rabbitmq_version: str) -> None:
    with connect(url) as client:
        client.open_channel(1)
        client.send(commands.Basic.Publish(exchange="", routing_key="q"), 1)
        client.send(commands.Basic.Qos(prefetch_count=1), 1)
        close = client.recv_method()
        assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, "
            "got non content header frame instead",
            60,
            40,
        )


def test_old_0_9_1_header_variant_is_accepted(url: str) -> None:
    with _raw(url) as client:
        start = client.start(protocol_header=b"AMQP\x01\x01\x00\x09")
        assert (start.version_major, start.version_minor) == (0, 9)


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_login_with_each_mechanism_opens_the_vhost(url: str, mechanism: str) -> None:
    with _raw(url) as client:
        client.handshake(vhost=parse_url(url)[2], mechanism=mechanism)
        client.open_channel(1)
        client.send(commands.Queue.Declare(queue="", exclusive=True), 1)
        assert client.expect(commands.Queue.DeclareOk).queue.startswith("amq.gen-")


def test_pika_bad_password_is_an_authentication_error(url: str) -> None:
    with pytest.raises(ProbableAuthenticationError) as info:
        pika.BlockingConnection(
            pika.URLParameters(_with_password(url, "wrong") + "?connection_attempts=1")
        )
    assert "(403) '" + LOGIN_REFUSED.format("PLAIN") + "'" in str(info.value)


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
def test_bad_password_with_failure_close_gets_403(url: str, mechanism: str) -> None:
    with _raw(url) as client:
        client.start()
        close = client.login(password="wrong", mechanism=mechanism)
        assert isinstance(close, commands.Connection.Close)
        assert close.reply_code == 403
        assert close.reply_text == LOGIN_REFUSED.format(mechanism)
        client.send(commands.Connection.CloseOk())
        assert client.frames_until_closed() == []


def test_bad_password_without_failure_close_just_closes_the_socket(url: str) -> None:
    with _raw(url) as client:
        client.start()
        with pytest.raises(Closed):
            client.login(password="wrong", capabilities={})


def test_unknown_mechanism_closes_the_socket_without_a_frame(url: str) -> None:
    # RabbitMQ 3.10 sends nothing (its log says unknown authentication mechanism).
    with _raw(url) as client:
        client.start()
        with pytest.raises(Closed):
            client.login(mechanism="CRAM-MD5")


def test_pika_unknown_vhost_is_access_denied(url: str) -> None:
    host, port, _ = parse_url(url)
    with pytest.raises(ProbableAccessDeniedError) as info:
        pika.BlockingConnection(
            pika.URLParameters(f"amqp://guest:guest@{host}:{port}/no-such-vhost")
        )
    assert "(530) 'NOT_ALLOWED - vhost no-such-vhost not found'" in str(info.value)


def test_unknown_vhost_close_names_connection_open(url: str) -> None:
    with _raw(url) as client:
        client.start()
        client.login()
        client.tune_ok()
        close = client.open("no-such-vhost")
        assert isinstance(close, commands.Connection.Close)
        assert (close.reply_code, close.reply_text) == (
            530,
            "NOT_ALLOWED - vhost no-such-vhost not found",
        )
        assert (close.class_id, close.method_id) == (10, 40)


# --------------------------------------------------------------------- tune


def test_tune_offers_rabbitmq_defaults(url: str) -> None:
    with _raw(url) as client:
        client.start()
        tune = client.login()
        assert isinstance(tune, commands.Connection.Tune)
        assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)


def test_client_chosen_lower_frame_max_is_honoured(url: str) -> None:
    """With frame_max 4096 the broker splits a 10 000-byte delivery into body frames
    of at most 4088 bytes, and refuses a 5000-byte frame from the client."""
    with connect(url, frame_max=4096) as client:
        client.open_channel(1)
        client.send(commands.Queue.Declare(queue="", exclusive=True), 1)
        queue = client.expect(commands.Queue.DeclareOk).queue
        conn = pika_connect(url)
        try:
            conn.channel().basic_publish("", queue, b"x" * 10_000)
        finally:
            conn.close()
        client.send(commands.Basic.Get(queue=queue, no_ack=True), 1)
        client.expect(commands.Basic.GetOk)
        _ch, header = client.recv()
        assert header.body_size == 10_000
        sizes = []
        while sum(sizes) < 10_000:
            _ch, body = client.recv()
            sizes.append(len(body.value))
        assert sizes == [4088, 4088, 1824]
        client.send_bytes(raw_frame(3, 1, b"y" * 5000))
        close = client.recv_method()
        assert (close.reply_code, close.reply_text) == (
            501,
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}",
        )


def test_pika_with_small_frame_max_round_trips_a_large_message(url: str) -> None:
    conn = pika.BlockingConnection(
        pika.URLParameters(url + "?heartbeat=0&frame_max=4096&channel_max=16")
    )
    try:
        assert conn._impl.params.frame_max == 4096
        assert conn._impl.params.channel_max == 16
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).method.queue
        payload = bytes(range(256)) * 200
        ch.basic_publish("", queue, payload)
        _method, _props, body = ch.basic_get(queue, auto_ack=True)
        assert body == payload
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("frame_max", "channel_max"),
    [(131073, 2047), (200000, 2047), (0, 2047), (4095, 2047), (131072, 2048), (131072, 0)],
)
def test_tune_ok_out_of_bounds_closes_the_socket(
    url: str, frame_max: int, channel_max: int
) -> None:
    """RabbitMQ 3.10 logs "negotiated frame_max = 131073 is higher than the maximum
    allowed value (131072)" and closes the socket without sending connection.close
    (checked on a real broker); 0 counts as above a limited server's maximum."""
    with _raw(url) as client:
        client.start()
        client.login()
        client.tune_ok(frame_max=frame_max, channel_max=channel_max)
        assert client.frames_until_closed() == []


def test_connection_open_before_tune_ok_closes_the_socket(url: str) -> None:
    with _raw(url) as client:
        client.start()
        client.login()
        client.send(commands.Connection.Open(virtual_host=parse_url(url)[2]))
        assert client.frames_until_closed() == []


# --------------------------------------------------------------- heartbeats


def test_broker_sends_heartbeats_and_keeps_a_live_peer(url: str) -> None:
    with connect(url, heartbeat=1) as client:
        beats = 0
        deadline = time.monotonic() + 2.2
        while time.monotonic() < deadline:
            try:
                _ch, value = client.recv(timeout=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                break
            assert isinstance(value, heartbeat.Heartbeat), value
            beats += 1
            client.send_bytes(raw_frame(8, 0, b""))
        assert beats >= 2
        # More than two intervals have passed; our heartbeats kept us connected.
        client.open_channel(1)


def test_silent_peer_is_dropped_after_two_intervals(url: str) -> None:
    # Heartbeats run on real time (the client measures them too): the socket closes
    # within a bound. The exact moment, two intervals of silence, is checked on the
    # test's own clock in tests/unit/test_heartbeats.py.
    with connect(url, heartbeat=1) as client:
        frames = client.frames_until_closed(timeout=5)
    # Only heartbeats, then the socket closes: no connection.close (as RabbitMQ).
    assert frames and all(isinstance(f, heartbeat.Heartbeat) for f in frames)


def test_pika_heartbeat_keeps_an_idle_connection_open(url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url + "?heartbeat=1"))
    try:
        assert conn._impl.params.heartbeat == 1
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert conn.is_open
        assert conn.channel().queue_declare("", exclusive=True).method.queue
    finally:
        conn.close()


# ------------------------------------------------------- header, close, bad frames


# What a header we do not speak gets back before the close (checked on RabbitMQ
# 3.10.8 and 4.0.5): 3.10 always the 0-9-1 header; 4.x the 0-9-1 header only to
# "AMQP" 0 0 >=9 x, to anything else AMQP 1.0's SASL header (it speaks 1.0 too).
AMQP_091 = b"AMQP\x00\x00\x09\x01"
AMQP_10_SASL = b"AMQP\x03\x01\x00\x00"
BAD_HEADERS = {
    "3.10": {b"HTTP/1.1 200\r\n": AMQP_091, b"AMQP\x00\x00\x08\x00": AMQP_091,
             b"AMQP\x00\x00\x0a\x00": AMQP_091, b"AMQP\x03\x01\x00\x00": AMQP_091},
    "4.0": {b"HTTP/1.1 200\r\n": AMQP_10_SASL, b"AMQP\x00\x00\x08\x00": AMQP_10_SASL,
            b"AMQP\x00\x00\x0a\x00": AMQP_091, b"AMQP\x03\x01\x00\x00": AMQP_10_SASL},
}  # fmt: skip


@each_version(*BAD_HEADERS)
def test_bad_protocol_header_gets_a_header_and_close(url: str, rabbitmq_version: str) -> None:
    for header, reply in BAD_HEADERS[rabbitmq_version].items():
        with _raw(url) as client:
            client.send_bytes(header)
            assert client.recv_bytes(8) == reply, header
            assert client.frames_until_closed() == []


def test_pika_client_close_releases_exclusive_queue(url: str) -> None:
    conn = pika_connect(url)
    queue = conn.channel().queue_declare("", exclusive=True).method.queue
    conn.close()
    assert conn.is_closed
    other = pika_connect(url)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            other.channel().queue_declare(queue, passive=True)
        assert info.value.reply_code == 404
    finally:
        other.close()


def test_raw_client_close_gets_close_ok(url: str) -> None:
    with connect(url) as client:
        client.open_channel(1)
        client.send(
            commands.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
        )
        assert isinstance(client.recv_method(), commands.Connection.CloseOk)


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        (
            raw_frame(1, 0, b"\x00\x0a\x00\x28xx", end=0x00),
            "FRAME_ERROR - type 1, all octets = <<0,10,0,40,120,120>>: "
            "{invalid_frame_end_marker,0}",
        ),
        (
            raw_frame(3, 1, b"x" * 200_000),
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,200000,131064}",
        ),
        (raw_frame(9, 0, b"abc"), 'FRAME_ERROR - type 9, all octets = <<"abc">>: unknown_frame'),
    ],
    ids=["bad-frame-end", "oversized", "unknown-type"],
)
def test_malformed_frame_closes_only_that_connection(url: str, frame: bytes, text: str) -> None:
    bystander = pika_connect(url)
    try:
        with connect(url) as client:
            client.open_channel(1)
            client.send_bytes(frame)
            close = client.recv_method()
            assert isinstance(close, commands.Connection.Close)
            assert (close.reply_code, close.reply_text) == (501, text)
            assert client.last_channel == 0
        bystander.channel().queue_declare("", exclusive=True)
        assert bystander.is_open
        _works(url)
    finally:
        bystander.close()


def test_heartbeat_on_a_channel_is_unexpected_frame(url: str) -> None:
    with connect(url) as client:
        client.open_channel(1)
        client.send_bytes(raw_frame(8, 1, b""))
        close = client.recv_method()
        assert (close.reply_code, close.reply_text) == (
            505,
            "UNEXPECTED_FRAME - type 8, all octets = <<>>",
        )


@pytest.mark.parametrize(
    ("method", "ids"),
    [(commands.Channel.Open(), (20, 10)), (commands.Queue.Declare(queue=""), (50, 10))],
    ids=["channel.open", "queue.declare"],
)
def test_channel_method_on_channel_zero_is_a_channel_error(
    url: str, method: object, ids: tuple[int, int]
) -> None:
    with connect(url) as client:
        client.send(method, 0)
        close = client.recv_method()
        assert isinstance(close, commands.Connection.Close)
        assert (close.reply_code, close.reply_text) == (
            504,
            "CHANNEL_ERROR - unexpected method in connection state running",
        )
        assert (close.class_id, close.method_id) == ids


@pytest.mark.rabbitmq_version("3.10")
def test_connection_error_is_reported_to_pika(url: str) -> None:
    conn = pika_connect(url)
    try:
        with pytest.raises(ConnectionClosedByBroker) as info:
            conn.channel().exchange_declare("delayed", "x-delayed-message")
        assert (info.value.reply_code, info.value.reply_text) == (
            503,
            "COMMAND_INVALID - unknown exchange type 'x-delayed-message'",
        )
        assert conn.is_closed
    finally:
        if conn.is_open:
            conn.close()


def test_half_open_socket_does_not_disturb_others(url: str) -> None:
    host, port, _ = parse_url(url)
    sock = socket.create_connection((host, port), timeout=5)
    try:
        sock.sendall(b"AMQP")  # an incomplete header: the broker just waits
        _works(url)
        # ... and still waits: the rest of the header gets connection.start.
        sock.sendall(b"\x00\x00\x09\x01")
        assert sock.recv(7)[:3] == b"\x01\x00\x00"  # a method frame on channel 0
    finally:
        sock.close()


def _run_select_until_closed(url: str, on_open: Any) -> dict[str, Any]:
    """Drive a SelectConnection until the connection fails or closes (bounded)."""
    seen: dict[str, Any] = {}

    def stop(key: str) -> Any:
        def record(_conn: Any, reason: Any) -> None:
            seen[key] = reason
            conn.ioloop.stop()

        return record

    conn = pika.SelectConnection(
        pika.URLParameters(url + "?heartbeat=0&connection_attempts=1"),
        on_open_callback=on_open,
        on_open_error_callback=stop("open_error"),
        on_close_callback=stop("closed"),
    )
    conn.ioloop.call_later(5, conn.ioloop.stop)
    conn.ioloop.start()
    if conn.is_open:
        conn.close()
        conn.ioloop.start()
    return seen


def test_select_connection_to_unknown_vhost_reports_open_error(url: str) -> None:
    host, port, _ = parse_url(url)
    seen = _run_select_until_closed(
        f"amqp://guest:guest@{host}:{port}/no-such-vhost", on_open=lambda _c: None
    )
    assert isinstance(seen["open_error"], ProbableAccessDeniedError)
    assert "NOT_ALLOWED - vhost no-such-vhost not found" in str(seen["open_error"])


@pytest.mark.rabbitmq_version("3.10")
def test_select_connection_sees_the_connection_error(url: str) -> None:
    def on_open(conn: Any) -> None:
        conn.channel(on_open_callback=lambda ch: ch.exchange_declare("x", "topik"))

    seen = _run_select_until_closed(url, on_open)
    reason = seen["closed"]
    assert isinstance(reason, ConnectionClosedByBroker)
    assert (reason.reply_code, reason.reply_text) == (
        503,
        "COMMAND_INVALID - unknown exchange type 'topik'",
    )
