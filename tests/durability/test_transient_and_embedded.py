"""``--data-dir :memory:`` and ``--transient`` keep nothing; the embedding API with a data
dir keeps what it is given, vhosts included."""

from __future__ import annotations

import os
from pathlib import Path

import pika.exceptions
import pytest
from brokerproc import BrokerProcesses
from worldkit import PERSISTENT, closing, connect, count, exchange_exists, get_all, queue_exists

import amqpbroker


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(
    ("data_dir", "args"),
    [(":memory:", ()), (None, ("--transient",))],
    ids=["data-dir-memory", "transient"],
)
def test_in_memory_broker_keeps_nothing(
    brokers: BrokerProcesses, tmp_path: Path, data_dir: str | None, args: tuple[str, ...]
) -> None:
    # Wherever the broker could write (its working dir, the per-user data dir), nothing.
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / "data"))
    broker = brokers.start(data_dir, None, *args, env=env, cwd=cwd)
    conn = connect(broker.port)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("dx", "fanout", durable=True)
        ch.queue_declare("dq", durable=True)
        ch.queue_bind("dq", "dx")
        ch.basic_publish("dx", "", b"persistent", PERSISTENT)
        assert count(ch, "dq") == 1
    finally:
        closing(conn)
    broker = brokers.restart(broker)
    conn = connect(broker.port)
    try:
        assert not queue_exists(conn, "dq")
        assert not exchange_exists(conn, "dx")
    finally:
        closing(conn)
    assert broker.terminate() == 0
    assert files_under(home) == []
    assert files_under(cwd) == []


def test_vhosts_created_through_the_embedding_api_survive(
    brokers: BrokerProcesses, tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    with amqpbroker.Broker(data_dir=data) as embedded:
        embedded.add_vhost("kept")
        embedded.add_vhost("dropped")
        conn = connect(embedded.port, "kept")
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("dq", durable=True)
            ch.basic_publish("", "dq", b"in vhost kept", PERSISTENT)
        finally:
            closing(conn)
    # Embedded again: both vhosts came back; a deletion is kept too.
    with amqpbroker.Broker(data_dir=data) as embedded:
        closing(connect(embedded.port, "dropped"))
        embedded.delete_vhost("dropped")
    # And the command line broker on the same data dir sees the same.
    broker = brokers.start(data)
    conn = connect(broker.port, "kept")
    try:
        assert get_all(conn.channel(), "dq") == [(b"in vhost kept", False)]
    finally:
        closing(conn)
    with pytest.raises(pika.exceptions.AMQPConnectionError) as refused:
        connect(broker.port, "dropped")
    assert "NOT_ALLOWED - vhost dropped not found" in repr(refused.value)
