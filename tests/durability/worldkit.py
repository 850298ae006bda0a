"""pika helpers for the restart tests: bounded waits and "does it exist" checks that spend
a channel, never the connection."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from amqpbroker.testing import eventually

# Upper bound on any one wait for a broker.
WAIT = 5.0
PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


def connect(port: int, vhost: str = "/") -> BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            "127.0.0.1",
            port,
            vhost,
            heartbeat=0,
            socket_timeout=WAIT,
            blocked_connection_timeout=WAIT,
            connection_attempts=1,
        )
    )


def wait_until(conn: BlockingConnection, predicate: Callable[[], bool]) -> None:
    def read_then_check() -> bool:
        conn.process_data_events(time_limit=0.001)
        return predicate()

    eventually(read_then_check, timeout=WAIT)


def broker_error(conn: BlockingConnection, action: Callable[[BlockingChannel], Any]) -> str:
    """Run ``action`` on a fresh channel; return the channel error it causes as
    "CODE TEXT", or "" if it succeeds."""
    ch = conn.channel()
    try:
        action(ch)
    except pika.exceptions.ChannelClosedByBroker as exc:
        return f"{exc.reply_code} {exc.reply_text}"
    with contextlib.suppress(pika.exceptions.AMQPError):
        ch.close()
    return ""


def queue_exists(conn: BlockingConnection, name: str) -> bool:
    error = broker_error(conn, lambda ch: ch.queue_declare(name, passive=True))
    assert error == "" or error.startswith("404 "), error
    return error == ""


def exchange_exists(conn: BlockingConnection, name: str) -> bool:
    error = broker_error(conn, lambda ch: ch.exchange_declare(name, passive=True))
    assert error == "" or error.startswith("404 "), error
    return error == ""


def count(ch: BlockingChannel, queue: str) -> int:
    return int(ch.queue_declare(queue, passive=True).method.message_count)


def get_all(ch: BlockingChannel, queue: str) -> list[tuple[bytes, bool]]:
    """(body, redelivered) of every message in the queue, in order; each is acked."""
    got: list[tuple[bytes, bool]] = []
    while True:
        method, _props, body = ch.basic_get(queue)
        if method is None:
            return got
        got.append((body, bool(method.redelivered)))
        ch.basic_ack(method.delivery_tag)


def closing(conn: BlockingConnection) -> None:
    """Close a connection whose broker may already be gone."""
    with contextlib.suppress(Exception):
        if conn.is_open:
            conn.close()
