"""The store contract (amqpbroker/store/base.py), run unchanged against every store.

Each test gets a ``backend``: a way to build a new store over the same data, so that a test can
close or crash a store and reopen the data as a restarted broker would. The last section holds
the SQLite-only checks (a real SIGKILL, sync modes, a failing commit).
"""

from __future__ import annotations

import datetime
import decimal
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from amqpbroker.protocol import tables
from amqpbroker.store import (
    BindingRecord,
    Definitions,
    ExchangeRecord,
    MemoryImage,
    MemoryStore,
    MessageRecord,
    SQLiteStore,
    Store,
    StoreError,
)

REPO = Path(__file__).resolve().parents[2]

# Every kind of value an AMQP field table can carry, nested.
ARGS: dict[str, Any] = {
    "x-max-length": 10,
    "x-message-ttl": 2**40,
    "x-negative": -3,
    "ratio": 0.25,
    "whole-float": 1.0,
    "flag": True,
    "off": False,
    "void": None,
    "text": "héllo",
    "raw": b"\x00\xff\x01",
    "price": decimal.Decimal("12.50"),
    "when": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
    "list": [1, "two", 3.5, False, None, b"b", [1, [2]], {"k": "v"}],
    "table": {"nested": {"deeper": [True, {"x": 1}]}, "empty": {}},
    # Looks like the encoding's own tags; must come back as a plain table.
    "tagged": {"$bytes": "not base64"},
}


@attrs.define
class Backend:
    name: str
    make: Callable[[], Store]  # a new, unopened store over the same data


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        image = MemoryImage()
        return Backend("memory", lambda: MemoryStore(image))
    return Backend("sqlite", lambda: SQLiteStore(tmp_path / "data"))


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    store = backend.make()
    store.open()
    yield store
    store.close()


def msg(seq: int, body: bytes = b"", *, redelivered: bool = False) -> MessageRecord:
    return MessageRecord(seq, "amq.direct", f"rk.{seq}", b"\x00\x3c\x00\x00hdr", body, redelivered)


def seqs(store: Store, queue_id: int) -> list[int]:
    return [m.seq for m in store.read_messages(queue_id, 0, 1_000_000)]


def reopen(backend: Backend, store: Store, *, crash: bool = False) -> tuple[Store, Definitions]:
    if crash:
        store.simulate_crash()
    else:
        store.close()
    new = backend.make()
    return new, new.open()


# -- lifecycle -----------------------------------------------------------------------------


def test_new_data_opens_empty(backend: Backend) -> None:
    store = backend.make()
    assert store.open() == Definitions([], [], [], [], 0)
    assert not store.has_pending()
    store.close()


def test_data_is_open_in_one_store_at_a_time(backend: Backend, store: Store) -> None:
    with pytest.raises(StoreError) as err:
        backend.make().open()
    assert "\n" not in str(err.value)
    store.close()
    other = backend.make()
    other.open()
    other.close()


def test_open_twice_on_one_store_raises(store: Store) -> None:
    with pytest.raises(StoreError):
        store.open()


def test_methods_after_close_or_crash_raise(backend: Backend) -> None:
    for crash in (False, True):
        store = backend.make()
        store.open()
        if crash:
            store.simulate_crash()
        else:
            store.close()
        store.close()  # idempotent
        with pytest.raises(StoreError):
            store.put_vhost("/")
        with pytest.raises(StoreError):
            store.read_messages(1, 0, 10)
        with pytest.raises(StoreError):
            store.commit()


# -- entities ------------------------------------------------------------------------------


def test_vhosts_round_trip(backend: Backend, store: Store) -> None:
    store.put_vhost("/")
    store.put_vhost("/")
    store.put_vhost("b")
    store.put_vhost("a")
    store.delete_vhost("b")
    store.delete_vhost("missing")
    _, defs = reopen(backend, store)
    assert defs.vhosts == ["/", "a"]


def test_exchange_round_trip_with_nested_arguments(backend: Backend, store: Store) -> None:
    ex = ExchangeRecord("/", "logs", "topic", True, True, True, ARGS)
    store.put_exchange(ex)
    store.put_exchange(ExchangeRecord("/", "plain", "fanout", True, False, False, {}))
    _, defs = reopen(backend, store)
    assert defs.exchanges[0] == ex
    got = defs.exchanges[0].arguments
    # == treats 1 == 1.0 == True; the types must survive too.
    assert type(got["whole-float"]) is float
    assert type(got["flag"]) is bool
    assert type(got["x-max-length"]) is int
    assert type(got["raw"]) is bytes
    assert got["tagged"] == {"$bytes": "not base64"}
    assert [e.name for e in defs.exchanges] == ["logs", "plain"]


def test_wire_typed_argument_values_keep_their_type(backend: Backend, store: Store) -> None:
    # What the codec reads off the wire: ints and floats that remember their field type,
    # which is part of a binding's identity (an unbind after a restart must match).
    wire = tables.decode_table(
        tables.encode_table(
            {
                "int": tables.SignedInt(1),
                "short": tables.Short(-2),
                "float": tables.Float(1.5),
                "when": datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC),
                "list": [tables.Long(3), {"deep": tables.UnsignedByte(4)}],
            }
        )[4:]
    )
    rec = BindingRecord("/", "hx", "queue", "q", "", wire)
    store.put_binding(rec)
    _, defs = reopen(backend, store)
    [got] = defs.bindings
    assert got == rec
    for key in ("int", "short", "float", "when"):
        assert type(got.arguments[key]) is type(wire[key]), key
    assert type(got.arguments["list"][0]) is tables.Long
    assert type(got.arguments["list"][1]["deep"]) is tables.UnsignedByte
    assert got.arguments["when"].raw == wire["when"].raw


def test_put_exchange_replaces_attributes(backend: Backend, store: Store) -> None:
    store.put_exchange(ExchangeRecord("/", "x", "direct", True, False, False, {"a": 1}))
    store.put_exchange(ExchangeRecord("/", "x", "headers", True, True, False, {"b": [2]}))
    _, defs = reopen(backend, store)
    assert defs.exchanges == [ExchangeRecord("/", "x", "headers", True, True, False, {"b": [2]})]


def test_put_queue_is_idempotent_and_ids_are_never_reused(backend: Backend, store: Store) -> None:
    a = store.put_queue("/", "a", True, False, {})
    b = store.put_queue("/", "b", True, False, {})
    assert a != b
    assert store.put_queue("/", "a", True, False, {}) == a
    assert store.put_queue("other", "a", True, False, {}) not in (a, b)
    store.delete_queue(b)
    c = store.put_queue("/", "b", True, False, {})
    assert c not in (a, b)
    store, _ = reopen(backend, store)
    # Still not reused after a restart, even though b (once the largest id) is gone.
    store.delete_queue(c)
    assert store.put_queue("/", "d", True, False, {}) > c
    store.close()


def test_queue_round_trip(backend: Backend, store: Store) -> None:
    qid = store.put_queue("/", "jobs", True, False, {"x-max-length": 1})
    assert store.put_queue("/", "jobs", True, True, ARGS) == qid  # replaces the attributes
    _, defs = reopen(backend, store)
    [queue] = defs.queues
    assert (queue.vhost, queue.name, queue.durable, queue.auto_delete) == ("/", "jobs", True, True)
    assert (queue.arguments, queue.queue_id) == (ARGS, qid)


def test_binding_identity_includes_arguments(backend: Backend, store: Store) -> None:
    b1 = BindingRecord("/", "hx", "queue", "q", "", {"x-match": "all", "a": 1})
    same = BindingRecord("/", "hx", "queue", "q", "", {"a": 1, "x-match": "all"})
    other_args = BindingRecord("/", "hx", "queue", "q", "", {"x-match": "any", "a": 1})
    as_bool = BindingRecord("/", "hx", "queue", "q", "", {"x-match": "all", "a": True})
    for b in (b1, same, other_args, as_bool):
        store.put_binding(b)
    store.put_binding(BindingRecord("/", "hx", "exchange", "q", "", {}))  # another kind
    store, defs = reopen(backend, store)
    assert len(defs.bindings) == 4
    store.delete_binding(same)  # the same binding, keys in another order
    store.delete_binding(BindingRecord("/", "hx", "queue", "q", "", {"no": "such"}))
    _, defs = reopen(backend, store)
    # Compared by type as well: BindingRecord's == would take True for 1.
    left = sorted(
        (b.arguments["x-match"], type(b.arguments["a"]).__name__)
        for b in defs.bindings
        if b.destination_kind == "queue"
    )
    assert left == [("all", "bool"), ("any", "int")]
    assert len(defs.bindings) == 3


def test_delete_exchange_removes_bindings_from_and_to_it(backend: Backend, store: Store) -> None:
    for name in ("a", "b", "c"):
        store.put_exchange(ExchangeRecord("/", name, "fanout", True, False, False, {}))
    keep = [
        BindingRecord("/", "c", "queue", "q", "", {}),
        BindingRecord("/", "c", "queue", "b", "", {}),  # a queue named like the exchange
        BindingRecord("other", "b", "queue", "q", "", {}),  # same name, other vhost
    ]
    gone = [
        BindingRecord("/", "b", "queue", "q", "", {}),
        BindingRecord("/", "a", "exchange", "b", "", {}),
        BindingRecord("/", "b", "exchange", "c", "", {}),
    ]
    for b in keep + gone:
        store.put_binding(b)
    store.delete_exchange("/", "b")
    store.delete_exchange("/", "missing")
    _, defs = reopen(backend, store)
    assert [e.name for e in defs.exchanges] == ["a", "c"]
    assert sorted(defs.bindings, key=repr) == sorted(keep, key=repr)


def test_delete_queue_removes_messages_and_bindings(backend: Backend, store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    other = store.put_queue("/", "other", True, False, {})
    keep = BindingRecord("/", "amq.direct", "queue", "other", "k", {})
    store.put_binding(BindingRecord("/", "amq.direct", "queue", "q", "k", {}))
    store.put_binding(BindingRecord("/", "amq.direct", "exchange", "q", "k", {}))
    store.put_binding(keep)
    store.enqueue(q, msg(1))
    store.enqueue(other, msg(2))
    store.commit()
    store.delete_queue(q)
    store.delete_queue(12345)
    assert store.read_messages(q, 0, 10) == []
    assert store.queue_depth(q) == (0, 0)
    _, defs = reopen(backend, store)
    assert [x.name for x in defs.queues] == ["other"]
    assert keep in defs.bindings
    assert BindingRecord("/", "amq.direct", "queue", "q", "k", {}) not in defs.bindings
    # An exchange-kind destination of the same name is not a binding to the queue.
    assert len(defs.bindings) == 2


def test_delete_queue_discards_its_buffered_operations(backend: Backend, store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1))
    store.commit()
    store.enqueue(q, msg(7))
    store.mark_delivered(q, 1)
    store.delete_queue(q)
    store.enqueue(q, msg(8))  # late operation for the deleted queue
    assert store.commit() == 3
    again = store.put_queue("/", "q", True, False, {})
    assert again != q
    assert seqs(store, again) == []
    assert seqs(store, q) == []
    _, defs = reopen(backend, store)
    assert defs.max_seq == 8  # the numbers were used, the messages were not kept


def test_delete_vhost_cascades(backend: Backend, store: Store) -> None:
    for vhost in ("/", "gone"):
        store.put_vhost(vhost)
        store.put_exchange(ExchangeRecord(vhost, "x", "direct", True, False, False, {}))
        store.put_binding(BindingRecord(vhost, "x", "queue", "q", "k", {}))
    kept = store.put_queue("/", "q", True, False, {})
    doomed = store.put_queue("gone", "q", True, False, {})
    store.enqueue(kept, msg(1))
    store.enqueue(doomed, msg(2))
    store.commit()
    store.delete_vhost("gone")
    assert seqs(store, doomed) == []
    _, defs = reopen(backend, store)
    assert defs.vhosts == ["/"]
    assert {e.vhost for e in defs.exchanges} == {"/"}
    assert [(x.vhost, x.queue_id) for x in defs.queues] == [("/", kept)]
    assert {b.vhost for b in defs.bindings} == {"/"}


def test_non_durable_entities_do_not_survive_restart(backend: Backend, store: Store) -> None:
    store.put_exchange(ExchangeRecord("/", "durable", "direct", True, False, False, {}))
    store.put_exchange(ExchangeRecord("/", "transient", "direct", False, False, False, {}))
    durable = store.put_queue("/", "dq", True, False, {})
    transient = store.put_queue("/", "tq", False, False, {})
    store.put_binding(BindingRecord("/", "durable", "queue", "dq", "", {}))
    store.put_binding(BindingRecord("/", "durable", "queue", "tq", "", {}))
    store.put_binding(BindingRecord("/", "transient", "queue", "dq", "", {}))
    store.put_binding(BindingRecord("/", "durable", "exchange", "transient", "", {}))
    store.enqueue(durable, msg(1))
    store.enqueue(transient, msg(2))
    store.commit()
    store, defs = reopen(backend, store, crash=True)
    assert [e.name for e in defs.exchanges] == ["durable"]
    assert [x.queue_id for x in defs.queues] == [durable]
    assert defs.bindings == [BindingRecord("/", "durable", "queue", "dq", "", {})]
    assert seqs(store, durable) == [1]
    assert seqs(store, transient) == []
    store.close()


# -- messages ------------------------------------------------------------------------------


def test_pending_bytes_count_buffered_messages_until_commit(store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    store.commit()
    assert store.pending_bytes() == 0
    store.enqueue(q, msg(1, b"x" * 5000))
    with_one = store.pending_bytes()
    assert with_one >= 5000
    store.enqueue(q, msg(2, b"y" * 5000))
    assert store.pending_bytes() >= with_one + 5000
    store.commit()
    assert store.pending_bytes() == 0


def test_buffered_operations_are_invisible_until_commit(store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    assert store.commit() == 0
    store.enqueue(q, msg(1, b"abc"))
    store.enqueue(q, msg(2, b"de"))
    assert store.has_pending()
    assert store.read_messages(q, 0, 10) == []
    assert store.queue_depth(q) == (0, 0)
    assert store.commit() == 2
    assert not store.has_pending()
    assert store.read_messages(q, 0, 10) == [msg(1, b"abc"), msg(2, b"de")]
    assert store.queue_depth(q) == (2, 5)
    store.remove(q, 1)
    assert seqs(store, q) == [1, 2]
    assert store.commit() == 1
    assert seqs(store, q) == [2]
    assert store.commit() == 0


def test_read_messages_pages_in_seq_order(store: Store) -> None:
    a = store.put_queue("/", "a", True, False, {})
    b = store.put_queue("/", "b", True, False, {})
    for seq in range(1, 31):
        store.enqueue(a if seq % 3 else b, msg(seq))
    store.commit()
    want = [s for s in range(1, 31) if s % 3]
    pages: list[int] = []
    after = 0
    while page := store.read_messages(a, after, 7):
        assert len(page) <= 7
        pages.extend(m.seq for m in page)
        after = page[-1].seq
    assert pages == want
    assert seqs(store, b) == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert [m.seq for m in store.read_messages(a, 10, 3)] == [11, 13, 14]
    assert store.read_messages(a, 0, 0) == []
    assert store.read_messages(999, 0, 10) == []
    assert store.queue_depth(999) == (0, 0)


def test_header_and_body_bytes_are_unchanged(backend: Backend, store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    records = [
        MessageRecord(1, "", "", b"", b"", False),
        MessageRecord(2, "ex", "k", bytes(range(256)), bytes(range(255, -1, -1)), False),
        MessageRecord(3, "ex", "ü.k", b"\x00" * 100, os.urandom(1 << 20), True),
    ]
    for rec in records:
        store.enqueue(q, rec)
    store.commit()
    store, _ = reopen(backend, store)
    got = store.read_messages(q, 0, 10)
    assert got == records
    assert all(type(m.header) is bytes and type(m.body) is bytes for m in got)
    assert store.queue_depth(q) == (3, 256 + (1 << 20))
    store.close()


def test_enqueue_then_remove_in_one_batch_leaves_nothing(store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1))
    store.enqueue(q, msg(2))
    store.remove(q, 1)
    store.mark_delivered(q, 2)
    store.remove(q, 2)
    assert store.commit() == 5
    assert seqs(store, q) == []


def test_remove_and_mark_delivered_of_earlier_batch(store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    for seq in (1, 2, 3):
        store.enqueue(q, msg(seq))
    store.commit()
    store.remove(q, 1)
    store.mark_delivered(q, 2)
    store.mark_delivered(q, 2)
    store.remove(q, 99)  # missing seqs are ignored
    store.mark_delivered(q, 98)
    store.commit()
    assert store.read_messages(q, 0, 10) == [msg(2, redelivered=True), msg(3)]


@pytest.mark.parametrize("n", [1, 255, 256, 257, 1000])
def test_large_batches_of_inserts_and_removes(store: Store, n: int) -> None:
    # Sizes around the SQLite store's statement chunk (256 rows), over two queues.
    q1 = store.put_queue("/", "q1", True, False, {})
    q2 = store.put_queue("/", "q2", True, False, {})
    for seq in range(1, n + 1):
        store.enqueue(q1, msg(seq, b"a%d" % seq))
        store.enqueue(q2, msg(n + seq, b"b%d" % seq))
    store.commit()
    assert store.read_messages(q1, 0, n + 1) == [msg(seq, b"a%d" % seq) for seq in range(1, n + 1)]
    for seq in range(1, n + 1, 2):
        store.remove(q1, seq)
    kept = {n + 1 + n // 2, 2 * n}  # runs of removed seqs on either side of a kept one
    for seq in range(n + 1, 2 * n + 1):
        if seq not in kept:
            store.remove(q2, seq)
    store.commit()
    assert seqs(store, q1) == list(range(2, n + 1, 2))
    assert seqs(store, q2) == sorted(kept)


def test_mark_delivered_in_same_batch_and_then_remove(store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1))
    store.commit()
    store.enqueue(q, msg(2))
    store.mark_delivered(q, 2)
    store.mark_delivered(q, 1)
    store.remove(q, 1)
    store.commit()
    assert store.read_messages(q, 0, 10) == [msg(2, redelivered=True)]


def test_purge_is_ordered_with_the_other_operations(store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    other = store.put_queue("/", "other", True, False, {})
    for seq in (1, 2):
        store.enqueue(q, msg(seq))
    store.enqueue(other, msg(3))
    store.commit()
    store.mark_delivered(q, 1)
    store.enqueue(q, msg(4))
    store.purge(q)  # removes 1, 2 and 4
    store.enqueue(q, msg(5))
    store.mark_delivered(q, 5)
    store.enqueue(q, msg(6))
    store.remove(q, 6)
    store.remove(q, 2)  # already purged
    store.enqueue(q, msg(7))
    assert store.commit() == 9
    assert store.read_messages(q, 0, 10) == [msg(5, redelivered=True), msg(7)]
    assert seqs(store, other) == [3]
    store.purge(q)
    store.commit()
    assert seqs(store, q) == []


def test_purge_from_a_seq_keeps_the_lower_ones(store: Store) -> None:
    """A paged queue drops its on-disk tail; messages delivered from its head (lower
    seqs, still unacked) must stay stored."""
    q = store.put_queue("/", "q", True, False, {})
    for seq in (1, 2, 3):
        store.enqueue(q, msg(seq))
    store.commit()
    store.enqueue(q, msg(4))
    store.mark_delivered(q, 3)
    store.purge(q, from_seq=3)  # removes 3 and 4
    store.enqueue(q, msg(5))  # after the purge: stays
    store.purge(q, from_seq=10)  # nothing at or above 10
    store.commit()
    assert seqs(store, q) == [1, 2, 5]
    store.purge(q, from_seq=2)
    store.remove(q, 1)
    store.commit()
    assert seqs(store, q) == []


def test_enqueue_of_an_existing_seq_replaces_it(store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1, b"old"))
    store.commit()
    store.enqueue(q, msg(1, b"new"))
    store.commit()
    assert store.read_messages(q, 0, 10) == [msg(1, b"new")]


def test_queue_depth_counts_committed_messages_and_body_bytes(store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    for seq in range(1, 11):
        store.enqueue(q, msg(seq, b"x" * seq))
    store.commit()
    assert store.queue_depth(q) == (10, 55)
    assert store.message_count(q) == 10
    store.remove(q, 10)
    store.enqueue(q, msg(11, b"uncommitted"))
    assert store.queue_depth(q) == (10, 55)  # neither buffered operation counts yet
    assert store.message_count(q) == 10
    store.commit()
    assert store.queue_depth(q) == (10, 56)
    assert store.message_count(q) == 10


def test_max_seq_survives_removal_and_restart(backend: Backend, store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(40))
    store.enqueue(q, msg(41))
    store.commit()
    store.remove(q, 40)
    store.remove(q, 41)
    store.commit()
    store.enqueue(q, msg(50))  # never committed: not counted
    store, defs = reopen(backend, store, crash=True)
    assert defs.max_seq == 41
    assert seqs(store, q) == []
    store.close()


def test_close_writes_pending_operations(backend: Backend, store: Store) -> None:
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1))
    store.commit()
    store.enqueue(q, msg(2))
    store.mark_delivered(q, 1)
    store, defs = reopen(backend, store)
    assert defs.max_seq == 2
    assert store.read_messages(q, 0, 10) == [msg(1, redelivered=True), msg(2)]
    store.close()


def test_crash_keeps_committed_and_loses_buffered(backend: Backend, store: Store) -> None:
    store.put_vhost("/")  # entities are committed at once
    q = store.put_queue("/", "q", True, False, {"x-max-length": 5})
    for seq in (1, 2, 3, 4):
        store.enqueue(q, msg(seq))
    store.commit()
    store.mark_delivered(q, 2)
    store.mark_delivered(q, 3)
    store.remove(q, 4)
    store.commit()
    store.remove(q, 1)  # buffered only: lost, so 1 comes back
    store.mark_delivered(q, 1)
    store.enqueue(q, msg(5))
    store, defs = reopen(backend, store, crash=True)
    assert defs.vhosts == ["/"]
    assert [x.queue_id for x in defs.queues] == [q]
    assert defs.max_seq == 4
    assert store.read_messages(q, 0, 10) == [
        msg(1),
        msg(2, redelivered=True),
        msg(3, redelivered=True),
    ]
    assert not store.has_pending()
    # The recovered store carries on normally.
    store.remove(q, 2)
    store.commit()
    store, _ = reopen(backend, store, crash=True)
    assert seqs(store, q) == [1, 3]
    store.close()


def test_operations_buffered_during_a_commit_go_to_the_next(store: Store) -> None:
    """The broker buffers from its event loop while commit() runs in a worker thread."""
    q = store.put_queue("/", "q", True, False, {})
    total = 20_000
    done = threading.Event()
    committed = 0

    def committer() -> None:
        nonlocal committed
        while not done.is_set():
            committed += store.commit()

    worker = threading.Thread(target=committer)
    worker.start()
    try:
        for seq in range(1, total + 1):
            store.enqueue(q, msg(seq))
            if seq % 2 == 0:
                store.remove(q, seq)
    finally:
        done.set()
        worker.join()
    committed += store.commit()
    assert committed == total + total // 2
    assert seqs(store, q) == list(range(1, total + 1, 2))


# -- SQLite only ---------------------------------------------------------------------------

CRASH_CHILD = textwrap.dedent(
    """
    import sys, time
    from amqpbroker.store import MessageRecord, SQLiteStore

    store = SQLiteStore(sys.argv[1], sync="full")
    store.open()
    q = store.put_queue("/", "q", True, False, {})
    for seq in range(1, 101):
        store.enqueue(q, MessageRecord(seq, "", "q", b"h", b"b%d" % seq, False))
    store.commit()
    for seq in range(1, 11):
        store.mark_delivered(q, seq)
    for seq in range(91, 101):
        store.remove(q, seq)
    store.commit()
    store.enqueue(q, MessageRecord(101, "", "q", b"h", b"never committed", False))
    store.remove(q, 1)
    print("committed", flush=True)
    time.sleep(60)
    """
)


def test_sqlite_recovers_after_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(data)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"committed\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (data / "amqpbroker.sqlite3-wal").exists()  # recovery has work to do
    store = SQLiteStore(data)
    defs = store.open()  # the kernel dropped the dead process's lock
    assert defs.max_seq == 100
    [queue] = defs.queues
    got = store.read_messages(queue.queue_id, 0, 1000)
    assert [m.seq for m in got] == list(range(1, 91))
    assert [m.seq for m in got if m.redelivered] == list(range(1, 11))
    assert got[41].body == b"b42"
    store.close()


@pytest.mark.parametrize(("sync", "pragma"), [("full", 2), ("normal", 1), ("off", 0)])
def test_sqlite_sync_modes(tmp_path: Path, sync: str, pragma: int) -> None:
    store = SQLiteStore(tmp_path, sync=sync)
    store.open()
    conn = store._conn  # white box: the pragma is per connection
    assert conn is not None
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == pragma
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1))
    store.commit()
    store.close()


def test_sqlite_rejects_an_unknown_sync_mode(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid sync mode 'fsync'"):
        SQLiteStore(tmp_path, sync="fsync")


def test_sqlite_failed_commit_keeps_operations_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from amqpbroker.store import sqlite_batch as sqlite_module

    store = SQLiteStore(tmp_path)
    store.open()
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1))
    store.enqueue(q, msg(2))
    real_execute = sqlite_module.NetEffect.execute

    def failing(self: Any, conn: sqlite3.Connection) -> None:
        real_execute(self, conn)  # written inside the transaction, then the disk "fails"
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_module.NetEffect, "execute", failing)
    with pytest.raises(StoreError) as err:
        store.commit()
    assert "\n" not in str(err.value) and "disk I/O error" in str(err.value)
    assert seqs(store, q) == []  # rolled back
    assert store.has_pending()
    store.remove(q, 1)  # buffered after the failed batch: must apply after it
    monkeypatch.setattr(sqlite_module.NetEffect, "execute", real_execute)
    assert store.commit() == 3
    assert seqs(store, q) == [2]
    store.close()


def test_sqlite_written_batch_aborted_before_its_commit_is_buffered_again(tmp_path: Path) -> None:
    # The group committer writes a batch on the event loop and commits it in a worker
    # thread; cancelled in between, it aborts the batch.
    store = SQLiteStore(tmp_path)
    store.open()
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1))
    store.enqueue(q, msg(2))
    assert store.write_batch() == 2
    store.remove(q, 1)  # buffered while the batch is written: applies after it
    store.abort_batch()
    store.abort_batch()  # nothing left to abort
    assert not store.read_messages(q, 0, 10)
    assert store.commit() == 3
    assert seqs(store, q) == [2]
    store.close()


def test_sqlite_failed_commit_statement_keeps_operations_pending(tmp_path: Path) -> None:
    import sqlite3

    class FailingCommit:
        """The store's connection, except that COMMIT fails (say, the fsync)."""

        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "COMMIT":
                raise sqlite3.OperationalError("disk I/O error")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

    store = SQLiteStore(tmp_path)
    store.open()
    q = store.put_queue("/", "q", True, False, {})
    store.enqueue(q, msg(1))
    conn = store._conn  # white box: the connection the commit uses
    store._conn = FailingCommit(conn)  # type: ignore[assignment]
    assert store.write_batch() == 1
    with pytest.raises(StoreError, match="disk I/O error"):
        store.sync_batch()
    store._conn = conn
    assert store.has_pending()
    assert not store.read_messages(q, 0, 10)  # rolled back
    assert store.commit() == 1
    assert seqs(store, q) == [1]
    store.close()
