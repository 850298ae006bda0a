"""Channel lifecycle as clients see it: many per connection, opened and closed from
either side, and which errors close a channel versus the whole connection.

Expectations checked against RabbitMQ 3.10 first (raw frames where pika refuses to
send the broken sequence itself).
"""

from __future__ import annotations

from typing import Any

import pytest
from pamqp import commands
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker
from pikakit import connect as pika_connect
from pikakit import run_select
from rawamqp import connect, raw_frame


def test_many_channels_on_one_connection(url: str) -> None:
    conn = pika_connect(url)
    try:
        channels = [conn.channel() for _ in range(100)]
        assert len({ch.channel_number for ch in channels}) == 100
        queue = channels[0].queue_declare("", exclusive=True).method.queue
        for i, ch in enumerate(channels):
            ch.basic_publish("", queue, str(i).encode())
        for ch in channels[::2]:
            ch.close()
        assert all(ch.is_closed for ch in channels[::2])
        bodies = []
        for ch in channels[1::2]:
            _m, _p, body = ch.basic_get(queue, auto_ack=True)
            bodies.append(int(body))
        assert channels[1].queue_declare(queue, passive=True).method.message_count == 50
        while len(bodies) < 100:
            _m, _p, body = channels[-1].basic_get(queue, auto_ack=True)
            bodies.append(int(body))
        # One queue, 100 publishing channels: order is kept per channel only.
        assert sorted(bodies) == list(range(100))
    finally:
        conn.close()


def test_client_closes_a_channel_and_opens_it_again(url: str) -> None:
    with connect(url) as client:
        client.open_channel(5)
        client.send(
            commands.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0), 5
        )
        client.expect(commands.Channel.CloseOk)
        client.open_channel(5)  # the same number is free again
        client.send(commands.Queue.Declare(queue="", exclusive=True), 5)
        assert client.expect(commands.Queue.DeclareOk).queue.startswith("amq.gen-")


def test_broker_closes_a_channel_and_the_client_reopens_it(url: str) -> None:
    with connect(url) as client:
        client.open_channel(1)
        client.send(commands.Queue.Declare(queue="no-such-queue", passive=True), 1)
        close = client.expect(commands.Channel.Close)
        assert client.last_channel == 1
        assert close.reply_code == 404
        assert (close.class_id, close.method_id) == (50, 10)
        # Until close-ok, everything else on the channel is dropped.
        client.send(commands.Queue.Declare(queue="", exclusive=True), 1)
        client.send(commands.Channel.CloseOk(), 1)
        client.open_channel(1)
        client.send(commands.Queue.Declare(queue="", exclusive=True), 1)
        assert client.expect(commands.Queue.DeclareOk).queue.startswith("amq.gen-")


def test_channel_error_closes_only_that_channel(url: str, vhost: str) -> None:
    conn = pika_connect(url)
    try:
        healthy, doomed = conn.channel(), conn.channel()
        queue = healthy.queue_declare("", exclusive=True).method.queue
        with pytest.raises(ChannelClosedByBroker) as info:
            doomed.queue_declare("missing", passive=True)
        assert (info.value.reply_code, info.value.reply_text) == (
            404,
            f"NOT_FOUND - no queue 'missing' in vhost '{vhost}'",
        )
        assert doomed.is_closed
        assert healthy.is_open and conn.is_open
        healthy.basic_publish("", queue, b"after")
        assert healthy.basic_get(queue, auto_ack=True)[2] == b"after"
        assert conn.channel().queue_declare(queue, passive=True).method.message_count == 0
    finally:
        conn.close()


def test_second_channel_open_is_a_connection_error(url: str) -> None:
    with connect(url) as client:
        client.open_channel(1)
        client.send(commands.Channel.Open(), 1)
        close = client.recv_method()
        assert isinstance(close, commands.Connection.Close)
        assert client.last_channel == 0
        assert (close.reply_code, close.reply_text) == (
            504,
            "CHANNEL_ERROR - second 'channel.open' seen",
        )
        assert (close.class_id, close.method_id) == (20, 10)


@pytest.mark.parametrize(
    ("method", "ids"),
    [
        (commands.Queue.Declare(queue=""), (50, 10)),
        (commands.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0), (20, 40)),
        (commands.Channel.CloseOk(), (20, 41)),
    ],
    ids=["queue.declare", "channel.close", "channel.close-ok"],
)
def test_method_on_a_never_opened_channel(url: str, method: Any, ids: tuple[int, int]) -> None:
    with connect(url) as client:
        client.send(method, 7)
        close = client.recv_method()
        assert isinstance(close, commands.Connection.Close)
        assert (close.reply_code, close.reply_text) == (
            504,
            "CHANNEL_ERROR - expected 'channel.open'",
        )
        assert (close.class_id, close.method_id) == ids


def test_content_frame_on_a_never_opened_channel(url: str) -> None:
    with connect(url) as client:
        client.send_bytes(raw_frame(3, 4, b"abc"))
        close = client.recv_method()
        assert (close.reply_code, close.reply_text) == (
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        )


def test_channel_flow_active_is_acknowledged(url: str) -> None:
    conn = pika_connect(url)
    try:
        assert conn.channel().flow(True) is True
    finally:
        conn.close()


def test_channel_flow_inactive_is_not_implemented(url: str) -> None:
    conn = pika_connect(url)
    try:
        with pytest.raises(ConnectionClosedByBroker) as info:
            conn.channel().flow(False)
        assert (info.value.reply_code, info.value.reply_text) == (
            540,
            "NOT_IMPLEMENTED - active=false",
        )
    finally:
        if conn.is_open:
            conn.close()


def test_channel_max_limits_how_many_are_open_not_their_numbers(url: str) -> None:
    """RabbitMQ counts open channels against channel_max: with 3 negotiated, channels
    1, 5 and 3000 open fine and the fourth is refused."""
    with connect(url, channel_max=3) as client:
        for number in (1, 5, 3000):
            client.open_channel(number)
        client.send(commands.Channel.Open(), 7)
        close = client.recv_method()
        assert isinstance(close, commands.Connection.Close)
        assert (close.reply_code, close.reply_text) == (
            530,
            "NOT_ALLOWED - number of channels opened (3) has reached the "
            "negotiated channel_max (3)",
        )


def test_channel_max_counts_only_open_channels(url: str) -> None:
    with connect(url, channel_max=2) as client:
        client.open_channel(1)
        client.open_channel(2)
        client.send(
            commands.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0), 1
        )
        client.expect(commands.Channel.CloseOk)
        client.open_channel(3)


def test_select_connection_channel_error_leaves_sibling_working(url: str, vhost: str) -> None:
    seen: dict[str, Any] = {}

    def scenario(ch: Any, finish: Any) -> None:
        conn = ch.connection

        def on_closed(_ch: Any, reason: Any) -> None:
            seen["closed"] = reason
            conn.channel(on_open_callback=on_sibling)

        def on_sibling(sibling: Any) -> None:
            def on_declared(frame: Any) -> None:
                seen["declared"] = frame.method.queue
                finish()

            sibling.queue_declare("", exclusive=True, callback=on_declared)

        ch.add_on_close_callback(on_closed)
        ch.exchange_declare("missing", passive=True, callback=lambda _f: None)

    run_select(url, scenario)
    reason = seen["closed"]
    assert isinstance(reason, ChannelClosedByBroker)
    assert (reason.reply_code, reason.reply_text) == (
        404,
        f"NOT_FOUND - no exchange 'missing' in vhost '{vhost}'",
    )
    assert seen["declared"].startswith("amq.gen-")
