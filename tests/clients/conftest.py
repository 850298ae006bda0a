"""Fixtures shared by the client test modules (a module may define its own instead)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pikakit import connect, new_queue


@pytest.fixture
def conn(url: str) -> Iterator[BlockingConnection]:
    """A pika connection to the test's own vhost, closed afterwards."""
    connection = connect(url)
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def connection(conn: BlockingConnection) -> BlockingConnection:
    """The same connection, under the name some modules use."""
    return conn


@pytest.fixture
def channel(conn: BlockingConnection) -> BlockingChannel:
    """A plain channel (no confirm mode)."""
    return conn.channel()


@pytest.fixture
def ch(conn: BlockingConnection) -> BlockingChannel:
    """A channel in confirm mode, so every publish has been handled when it returns."""
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


@pytest.fixture
def dead(ch: BlockingChannel) -> tuple[str, str]:
    """A dead-letter exchange (fanout) and the queue behind it: (exchange, queue)."""
    queue = new_queue(ch)
    exchange = queue.replace("q-", "dlx-")
    ch.exchange_declare(exchange, "fanout")
    ch.queue_bind(queue, exchange)
    return exchange, queue
