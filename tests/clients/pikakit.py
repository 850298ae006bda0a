"""Helpers shared by the pika / py-amqp client tests: bounded waits, a consumer
inbox, and a SelectConnection runner.  Nothing here is a mock: every helper talks
to the broker through a real client over a real socket."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

import amqp
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker

# Upper bound on any single wait for the broker; tests normally finish far sooner.
WAIT = 5.0
# How long a test keeps listening to show that nothing more arrives.
SETTLE = 0.1


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
    deadline = time.monotonic() + WAIT
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("timed out waiting for the broker")
        conn.process_data_events(time_limit=min(remaining, 0.05))


def settle(conn: BlockingConnection) -> None:
    """Keep reading for a moment, so a delivery that should not happen would show."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.02)


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
