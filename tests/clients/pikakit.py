"""Helpers shared by the pika / py-amqp client tests: bounded waits (on the one
``eventually`` of amqpbroker.testing), a consumer inbox, and a SelectConnection
runner.  Nothing here is a mock: every helper talks to the broker through a real
client over a real socket."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

import amqp
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker

from amqpbroker.testing import eventually

# Upper bound on any single wait for the broker; tests normally finish far sooner.
WAIT = 5.0


# ------------------------------------------------------------------ helpers


def channel_error(conn: BlockingConnection, action: Any) -> tuple[int, str]:
    """Run ``action(channel)`` on a fresh channel; the (code, text) it was closed with.
    Only that channel closes: the connection stays open."""
    channel = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        action(channel)
    assert channel.is_closed and conn.is_open
    return info.value.reply_code, info.value.reply_text


def connect(url: str) -> BlockingConnection:
    return pika.BlockingConnection(
        pika.URLParameters(url + "?heartbeat=0&socket_timeout=5&blocked_connection_timeout=5")
    )


def new_queue(ch: BlockingChannel, **kwargs: Any) -> str:
    name = f"q-{uuid.uuid4().hex[:12]}"
    ch.queue_declare(name, **kwargs)
    return name


def wait_until(conn: BlockingConnection, predicate: Callable[[], bool]) -> None:
    """Read what the broker sends ``conn`` (running pika's callbacks) until
    ``predicate()`` holds, bounded by WAIT."""

    def read_then_check() -> bool:
        conn.process_data_events(time_limit=0.001)
        return predicate()

    eventually(read_then_check, timeout=WAIT)


def settle(conn: BlockingConnection) -> None:
    """A round trip on ``conn``, then pika's callbacks: whatever the broker sent this
    connection before answering has been handled, so a delivery that should not
    happen (as the outcome of what the test did before) would show.  The broker
    writes a connection's frames in the order it decides them: no waiting needed."""
    conn.channel().close()
    conn.process_data_events(time_limit=0)


def get_eventually(ch: BlockingChannel, queue: str) -> tuple[Any, Any, bytes]:
    """basic.get (auto-ack) until ``queue`` has a message, bounded by WAIT."""

    def fetched() -> tuple[Any, Any, bytes]:
        method, properties, body = ch.basic_get(queue, auto_ack=True)
        assert method is not None, f"nothing arrived in {queue}"
        return method, properties, body

    return eventually(fetched, timeout=WAIT)


def ready_count(ch: BlockingChannel, queue: str) -> int:
    return int(ch.queue_declare(queue, passive=True).method.message_count)


class Inbox:
    """A pika consumer callback that keeps what it receives."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[Any, Any, bytes]] = []

    def __call__(self, _ch: Any, method: Any, properties: Any, body: bytes) -> None:
        self.deliveries.append((method, properties, body))

    def __len__(self) -> int:
        return len(self.deliveries)

    @property
    def bodies(self) -> list[bytes]:
        return [body for _m, _p, body in self.deliveries]

    @property
    def tags(self) -> list[int]:
        return [m.delivery_tag for m, _p, _b in self.deliveries]


def pyamqp_connect(url: str) -> amqp.Connection:
    parts = urlparse(url)
    conn = amqp.Connection(
        f"{parts.hostname}:{parts.port}",
        userid="guest",
        password="guest",
        virtual_host=unquote(parts.path[1:]),
        connect_timeout=WAIT,
        read_timeout=WAIT,
        write_timeout=WAIT,
    )
    conn.connect()
    return conn


def run_select(url: str, scenario: Callable[[Any, Callable[[], None]], None]) -> None:
    """Run ``scenario(channel, finish)`` on a pika SelectConnection until it calls
    ``finish`` (bounded by WAIT)."""
    state: dict[str, Any] = {"finished": False}

    def finish() -> None:
        state["finished"] = True
        if conn.is_open:
            conn.close()

    def on_open(c: Any) -> None:
        c.channel(on_open_callback=lambda ch: scenario(ch, finish))

    def on_timeout() -> None:
        if conn.is_open:
            conn.close()
        else:
            conn.ioloop.stop()

    conn = pika.SelectConnection(
        pika.URLParameters(url + "?heartbeat=0"),
        on_open_callback=on_open,
        on_open_error_callback=lambda c, err: c.ioloop.stop(),
        on_close_callback=lambda c, reason: c.ioloop.stop(),
    )
    conn.ioloop.call_later(WAIT, on_timeout)
    conn.ioloop.start()
    assert state["finished"], "the SelectConnection scenario did not finish"
