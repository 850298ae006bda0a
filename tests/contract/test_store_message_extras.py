"""Store contract for what queue features keep per message: the TTL deadline
(``expires``, epoch ms) and the quorum delivery count (``deliveries``), on every
backend, through commits, replacement, crashes, and a schema-v1 SQLite upgrade."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from amqpbroker.store import (
    MemoryImage,
    MemoryStore,
    MessageRecord,
    SQLiteStore,
    Store,
    sqlite_schema,
)
from amqpbroker.store.stored_arguments import encode_arguments

Make = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    if request.param == "memory":
        image = MemoryImage()
        return lambda: MemoryStore(image)
    return lambda: SQLiteStore(tmp_path / "data")


def record(seq: int, expires: int = 0, deliveries: int = 0) -> MessageRecord:
    return MessageRecord(seq, "", "q", b"\x00\x3c\x00\x00hdr", b"body", False, expires, deliveries)


def test_expiry_and_delivery_count_round_trip(make: Make) -> None:
    store = make()
    store.open()
    queue = store.put_queue("/", "q", True, False, {})
    store.enqueue(queue, record(1, expires=1_700_000_000_123, deliveries=2))
    store.enqueue(queue, record(2))
    store.commit()
    assert store.read_messages(queue, 0, 10) == [
        record(1, expires=1_700_000_000_123, deliveries=2),
        record(2),
    ]
    # Re-enqueuing a seq replaces the record, extras included (a quorum return).
    store.enqueue(queue, record(1, expires=5, deliveries=3))
    store.mark_delivered(queue, 2)
    store.commit()
    got = store.read_messages(queue, 0, 10)
    assert [(m.expires, m.deliveries, m.redelivered) for m in got] == [(5, 3, False), (0, 0, True)]
    store.simulate_crash()
    again = make()
    again.open()
    assert [(m.expires, m.deliveries) for m in again.read_messages(queue, 0, 10)] == [
        (5, 3),
        (0, 0),
    ]
    again.close()


def test_a_schema_v1_database_is_upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A database as a broker from before the per-message extras left it.
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "amqpbroker.sqlite3", isolation_level=None)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:1])
        sqlite_schema.migrate(conn)
    conn.execute("UPDATE meta SET value = 1 WHERE key IN ('last_queue_id', 'max_seq')")
    conn.execute("INSERT INTO vhosts (name) VALUES ('/')")
    conn.execute(
        "INSERT INTO queues (queue_id, vhost, name, durable, auto_delete, arguments)"
        " VALUES (1, '/', 'q', 1, 0, ?)",
        (encode_arguments({}),),
    )
    conn.execute(
        "INSERT INTO messages (queue_id, seq, exchange, routing_key, header, body, redelivered)"
        " VALUES (1, 1, '', 'q', ?, ?, 0)",
        (b"\x00\x3c\x00\x00hdr", b"body"),
    )
    conn.close()
    upgraded = SQLiteStore(data)
    definitions = upgraded.open()
    assert [q.name for q in definitions.queues] == ["q"]
    assert upgraded.read_messages(1, 0, 10) == [record(1)]  # expires 0, deliveries 0
    upgraded.enqueue(1, record(2, expires=7, deliveries=1))
    upgraded.commit()
    assert upgraded.read_messages(1, 1, 10) == [record(2, expires=7, deliveries=1)]
    upgraded.close()
