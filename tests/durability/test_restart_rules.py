"""What survives a restart of a broker process, rule by rule, as in RabbitMQ 3.10.

One world is built on a broker started with ``--data-dir``: every kind of entity and message
state, some of it held by connections that are still open when the broker stops. The broker
is then stopped (SIGTERM: a clean shutdown, or SIGKILL: a crash) and started again on the
same data dir, and each test checks one rule against the restarted broker, with its own
queues and exchanges so the tests do not depend on each other.

RabbitMQ facts checked on a real RabbitMQ 3.10.8 for the auto-delete cases: a durable
auto-delete queue that never had a consumer survives a restart with its messages; one whose
consumer was connected at a clean shutdown is deleted (closing the connection cancels the
consumer, which deletes the queue); after a crash it survives, its delivered message
redelivered=true. A durable auto-delete exchange survives.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pika
import pytest
import rawflow
from brokerproc import BrokerProcess, BrokerProcesses
from pamqp import commands
from pika.adapters.blocking_connection import BlockingConnection
from worldkit import (
    PERSISTENT,
    TRANSIENT,
    broker_error,
    closing,
    connect,
    count,
    exchange_exists,
    get_all,
    queue_exists,
    wait_until,
)

BOUND_ARGS = {"x-note": "kept", "n": 1}
E2E_ARGS = {"x-k": 1, "why": "e2e"}
QUEUE_ARGS = {
    "x-max-length": 100,
    "x-dead-letter-exchange": "dx.ae",
    "x-custom": "unknown arguments are kept too",
}
MISSING_MAX_LENGTH = {k: v for k, v in QUEUE_ARGS.items() if k != "x-max-length"}
# Every basic property, and a headers table with every field type pamqp writes.
ALL_PROPERTIES = {
    "content_type": "application/octet-stream",
    "content_encoding": "identity",
    "headers": {
        "str": "text é",
        "int": 2**40,
        "neg": -7,
        "float": 1.5,
        "bool": True,
        "void": None,
        "decimal": decimal.Decimal("3.14"),
        "time": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
        "list": [1, "two", [3.0], {"four": 4}],
        "table": {"nested": {"deep": "yes"}},
    },
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-1",
    "reply_to": "replies",
    "expiration": "3600000",
    "message_id": "msg-1",
    "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    "message_type": "kind",
    "user_id": "guest",
    "app_id": "durability-tests",
}
# Empty, tiny, one frame, and several frames (frame_max is 131072).
BODY_SIZES = (0, 1, 1000, 300_000)


@attrs.define
class World:
    """What the setup published, for the tests to compare with."""

    raw_messages: list[tuple[bytes, bytes]] = attrs.Factory(list)
    # What redeclaring dq.args without x-max-length said before the restart.
    inequivalent_text: str = ""
    # Connections kept open while the broker stops, closed after the restart.
    held: list[BlockingConnection] = attrs.Factory(list)


def redeclare_args_queue(conn: BlockingConnection, arguments: dict[str, Any]) -> str:
    return broker_error(
        conn, lambda ch: ch.queue_declare("dq.args", durable=True, arguments=arguments)
    )


def build_topology(conn: BlockingConnection, world: World) -> None:
    ch = conn.channel()
    ch.exchange_declare("dx.ae", "fanout", durable=True)
    ch.exchange_declare(
        "dx.direct", "direct", durable=True, arguments={"alternate-exchange": "dx.ae"}
    )
    ch.exchange_declare("dx.topic", "topic", durable=True)
    ch.exchange_declare("dx.fanout", "fanout", durable=True, auto_delete=True)
    ch.exchange_declare("dx.headers", "headers", durable=True)
    ch.exchange_declare("dx.internal", "topic", durable=True, internal=True)
    ch.queue_declare("dq.args", durable=True, arguments=QUEUE_ARGS)
    world.inequivalent_text = redeclare_args_queue(conn, MISSING_MAX_LENGTH)
    ch.queue_declare("dq.ae", durable=True)
    ch.queue_bind("dq.ae", "dx.ae")
    ch.queue_declare("dq.bound", durable=True)
    ch.queue_bind("dq.bound", "dx.direct", "k1", arguments=BOUND_ARGS)
    ch.queue_bind("dq.bound", "amq.topic", "a.*.c")
    ch.queue_declare("dq.headers", durable=True)
    ch.queue_bind(
        "dq.headers", "dx.headers", arguments={"x-match": "any", "color": "red", "size": 3}
    )
    # Exchange to exchange, with arguments: dx.topic -> dx.fanout -> dq.e2e.
    ch.exchange_bind("dx.fanout", "dx.topic", "a.#", arguments=E2E_ARGS)
    ch.queue_declare("dq.e2e", durable=True)
    ch.queue_bind("dq.e2e", "dx.fanout")
    # Transient things, and durable things bound to them.
    ch.exchange_declare("tx.ex", "fanout", durable=False)
    ch.queue_declare("dq.from-transient", durable=True)
    ch.queue_bind("dq.from-transient", "tx.ex")
    ch.queue_declare("tq", durable=False)
    ch.queue_bind("tq", "dx.direct", "to-transient")
    ch.basic_publish("", "tq", b"persistent, in a transient queue", PERSISTENT)
    # Deleted durable things.
    ch.exchange_declare("dx.deleted", "direct", durable=True)
    ch.queue_declare("dq.deleted", durable=True)
    ch.queue_bind("dq.deleted", "dx.deleted", "k")
    ch.queue_bind("dq.deleted", "dx.topic", "del.#")
    ch.basic_publish("", "dq.deleted", b"in a deleted queue", PERSISTENT)
    ch.queue_delete("dq.deleted")
    ch.exchange_delete("dx.deleted")
    ch.close()


def build_messages(conn: BlockingConnection, port: int, world: World) -> None:
    ch = conn.channel()
    # Byte-identical content: published raw, so the test knows the exact header bytes.
    ch.queue_declare("dq.msgs", durable=True)
    with rawflow.connect(port) as raw:
        for i, size in enumerate(BODY_SIZES):
            props = dict(ALL_PROPERTIES, message_id=f"msg-{i}")
            head = rawflow.content_header(commands.Basic.Properties(**props), size)
            body = bytes((i + j) % 256 for j in range(size))
            raw.send_bytes(rawflow.publish_frames("", "dq.msgs", head, body))
            world.raw_messages.append((head, body))
        assert rawflow.message_count(raw, "dq.msgs") == len(BODY_SIZES)
    ch.queue_declare("dq.mixed", durable=True)
    for body in (b"p1", b"t1", b"p2", b"t2", b"p3"):
        ch.basic_publish("", "dq.mixed", body, PERSISTENT if body[0:1] == b"p" else TRANSIENT)
    # One message, two durable queues and a transient one.
    ch.exchange_declare("dx.two", "fanout", durable=True)
    for queue, durable in (("dq.two.a", True), ("dq.two.b", True), ("tq.two", False)):
        ch.queue_declare(queue, durable=durable)
        ch.queue_bind(queue, "dx.two")
    ch.basic_publish("dx.two", "", b"to both", PERSISTENT)
    ch.queue_declare("dq.purged", durable=True)
    for body in (b"purged-1", b"purged-2", b"purged-3"):
        ch.basic_publish("", "dq.purged", body, PERSISTENT)
    assert ch.queue_purge("dq.purged").method.message_count == 3
    ch.basic_publish("", "dq.purged", b"after the purge", PERSISTENT)
    # Settled one way or another through basic.get.
    ch.queue_declare("dq.settled", durable=True)
    for i in range(1, 6):
        ch.basic_publish("", "dq.settled", b"s%d" % i, PERSISTENT)
    tags = [ch.basic_get("dq.settled")[0].delivery_tag for _ in range(4)]
    ch.basic_ack(tags[0])
    ch.basic_ack(tags[1])
    ch.basic_reject(tags[2], requeue=False)
    ch.basic_nack(tags[3], requeue=True)
    # Acked through a consumer, with one multiple ack.
    ch.queue_declare("dq.acked", durable=True)
    for i in range(1, 5):
        ch.basic_publish("", "dq.acked", b"a%d" % i, PERSISTENT)
    seen: list[int] = []
    ch.basic_qos(prefetch_count=3)
    tag = ch.basic_consume("dq.acked", lambda _c, m, _p, _b: seen.append(m.delivery_tag))
    wait_until(conn, lambda: len(seen) == 3)
    ch.basic_cancel(tag)  # so that the ack frees no room for a4, which stays undelivered
    ch.basic_ack(seen[-1], multiple=True)
    ch.close()
    ch = conn.channel()
    # Two channels' worth of messages, all handled: a synchronous round trip on the
    # connection shows the broker has processed everything sent before it.
    assert count(ch, "dq.settled") == 2
    ch.close()


def build_held_state(port: int, world: World) -> None:
    """State owned by connections that stay open while the broker stops."""
    conn = connect(port)
    world.held.append(conn)
    ch = conn.channel()
    # Unacked at shutdown: 4 messages, 2 delivered to a consumer that never acks.
    ch.queue_declare("dq.unacked", durable=True)
    for i in range(1, 5):
        ch.basic_publish("", "dq.unacked", b"u%d" % i, PERSISTENT)
    received: list[bytes] = []
    ch.basic_qos(prefetch_count=2)
    ch.basic_consume("dq.unacked", lambda _c, _m, _p, body: received.append(body))
    wait_until(conn, lambda: len(received) == 2)
    # Durable auto-delete queues: one never consumed, one consumed at shutdown.
    ch.queue_declare("dq.ad.idle", durable=True, auto_delete=True)
    ch.basic_publish("", "dq.ad.idle", b"idle", PERSISTENT)
    ch.queue_declare("dq.ad.consumed", durable=True, auto_delete=True)
    ch.basic_publish("", "dq.ad.consumed", b"consumed", PERSISTENT)
    ch.basic_consume("dq.ad.consumed", lambda *_: None)
    # Exclusive, declared durable (RabbitMQ drops durable for exclusive queues).
    ch.queue_declare("dq.exclusive", durable=True, exclusive=True)
    ch.basic_publish("", "dq.exclusive", b"exclusive", PERSISTENT)
    # Transactions: committed, rolled back, and still open at shutdown.
    tx = conn.channel()
    tx.queue_declare("dq.tx", durable=True)
    tx.tx_select()
    tx.basic_publish("", "dq.tx", b"committed-1", PERSISTENT)
    tx.basic_publish("", "dq.tx", b"committed-2", PERSISTENT)
    tx.tx_commit()
    tx.basic_publish("", "dq.tx", b"rolled-back", PERSISTENT)
    tx.tx_rollback()
    tx.basic_publish("", "dq.tx", b"never-committed", PERSISTENT)
    assert count(tx, "dq.tx") == 2
    assert count(ch, "dq.ad.consumed") == 0


def build_world(port: int) -> World:
    world = World()
    conn = connect(port)
    try:
        build_topology(conn, world)
        build_messages(conn, port, world)
    finally:
        closing(conn)
    build_held_state(port, world)
    barrier(port)
    return world


def barrier(port: int) -> None:
    """Wait until everything done so far is committed: store operations are committed in
    the order they were made, and a publisher confirm comes after the commit of its
    message, so a confirmed persistent publish covers everything before it."""
    conn = connect(port)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("dq.barrier", durable=True)
        ch.basic_publish("", "dq.barrier", b"barrier", PERSISTENT)
    finally:
        closing(conn)


@attrs.frozen
class Restarted:
    broker: BrokerProcess
    world: World


def restarted_world(tmp: Path, *, crash: bool) -> Iterator[Restarted]:
    procs = BrokerProcesses(tmp)
    world = World()
    try:
        first = procs.start(tmp / "data")
        world = build_world(first.port)
        yield Restarted(procs.restart(first, crash=crash), world)
    finally:
        for conn in world.held:
            closing(conn)
        procs.cleanup()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarted]:
    """The world after a clean restart (SIGTERM, then start on the same data dir)."""
    yield from restarted_world(tmp_path_factory.mktemp("clean"), crash=False)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarted]:
    """The world after a crash (SIGKILL, then start on the same data dir)."""
    yield from restarted_world(tmp_path_factory.mktemp("crashed"), crash=True)


@pytest.fixture
def conn(clean: Restarted) -> Iterator[BlockingConnection]:
    connection = connect(clean.broker.port)
    yield connection
    closing(connection)


def routed(conn: BlockingConnection, exchange: str, key: str, queue: str, **props: Any) -> bool:
    """Publish one message; whether it reached ``queue``."""
    ch = conn.channel()
    before = count(ch, queue)
    ch.basic_publish(exchange, key, b"probe", pika.BasicProperties(**props))
    after = count(ch, queue)
    ch.close()
    assert after - before in (0, 1)
    return after > before


# --------------------------------------------------------------- definitions


def test_durable_exchanges_survive_with_type_flags_and_arguments(conn: BlockingConnection) -> None:
    declared: dict[str, tuple[str, dict[str, Any]]] = {
        "dx.direct": ("direct", {"arguments": {"alternate-exchange": "dx.ae"}}),
        "dx.topic": ("topic", {}),
        "dx.fanout": ("fanout", {"auto_delete": True}),
        "dx.headers": ("headers", {}),
        "dx.internal": ("topic", {"internal": True}),
    }

    def redeclare(name: str, kind: str, **flags: Any) -> str:
        return broker_error(conn, lambda ch: ch.exchange_declare(name, kind, **flags))

    for name, (kind, flags) in declared.items():
        # The same declaration again is accepted: every attribute came back as it was.
        assert redeclare(name, kind, durable=True, **flags) == "", name
        other = "direct" if kind != "direct" else "topic"
        assert redeclare(name, other, durable=True, **flags).startswith("406 "), name
        assert redeclare(name, kind, durable=False, **flags).startswith("406 "), name


def test_durable_queue_survives_with_its_arguments(
    clean: Restarted, conn: BlockingConnection
) -> None:
    assert redeclare_args_queue(conn, QUEUE_ARGS) == ""
    # What a mismatch says names the stored value's wire type (pika sends 100 as a signed
    # 32-bit int): the same text before and after the restart.
    text = redeclare_args_queue(conn, MISSING_MAX_LENGTH)
    assert "of type 'signedint'" in text
    assert text == clean.world.inequivalent_text
    assert broker_error(conn, lambda ch: ch.queue_declare("dq.args", durable=False)) != ""


def test_queue_bindings_survive_with_their_arguments(conn: BlockingConnection) -> None:
    assert routed(conn, "dx.direct", "k1", "dq.bound")
    # A binding on a predeclared exchange (amq.topic) is recovered too.
    assert routed(conn, "amq.topic", "a.b.c", "dq.bound")
    ch = conn.channel()
    # The arguments are part of the binding: other arguments name another binding...
    ch.queue_unbind("dq.bound", "dx.direct", "k1", arguments={"x-note": "other"})
    assert routed(conn, "dx.direct", "k1", "dq.bound")
    # ...and the recovered ones name this one.
    ch.queue_unbind("dq.bound", "dx.direct", "k1", arguments=BOUND_ARGS)
    assert not routed(conn, "dx.direct", "k1", "dq.bound")


def test_headers_binding_survives_and_still_matches(conn: BlockingConnection) -> None:
    assert routed(conn, "dx.headers", "", "dq.headers", headers={"size": 3})
    assert not routed(conn, "dx.headers", "", "dq.headers", headers={"color": "blue"})
    assert routed(conn, "dx.headers", "", "dq.headers", headers={"color": "red"})


def test_exchange_to_exchange_binding_survives_with_its_arguments(conn: BlockingConnection) -> None:
    assert routed(conn, "dx.topic", "a.b", "dq.e2e")
    assert not routed(conn, "dx.topic", "b.a", "dq.e2e")
    ch = conn.channel()
    ch.exchange_unbind("dx.fanout", "dx.topic", "a.#", arguments={"x-k": 2})
    assert routed(conn, "dx.topic", "a.c", "dq.e2e")
    ch.exchange_unbind("dx.fanout", "dx.topic", "a.#", arguments=E2E_ARGS)
    assert not routed(conn, "dx.topic", "a.d", "dq.e2e")


def test_alternate_exchange_argument_survives(conn: BlockingConnection) -> None:
    assert routed(conn, "dx.direct", "no-such-key", "dq.ae")


# ------------------------------------------------------------------ messages


def test_persistent_messages_survive_in_order_byte_for_byte(clean: Restarted) -> None:
    got = rawflow.drain(clean.broker.port, "dq.msgs")
    assert [(d.header, d.body) for d in got] == clean.world.raw_messages
    assert [d.redelivered for d in got] == [False] * len(BODY_SIZES)
    # And a client reads every property back as it was sent.
    props = got[0].properties()
    for name, value in ALL_PROPERTIES.items():
        if name != "message_id":
            assert getattr(props, name) == value, name


def test_transient_messages_in_a_durable_queue_are_dropped(conn: BlockingConnection) -> None:
    assert get_all(conn.channel(), "dq.mixed") == [(b"p1", False), (b"p2", False), (b"p3", False)]


def test_non_durable_queue_is_gone(conn: BlockingConnection) -> None:
    assert not queue_exists(conn, "tq")
    assert not queue_exists(conn, "tq.two")


def test_non_durable_exchange_and_its_bindings_are_gone(conn: BlockingConnection) -> None:
    assert not exchange_exists(conn, "tx.ex")
    ch = conn.channel()
    ch.exchange_declare("tx.ex", "fanout", durable=False)
    # The durable queue survived; its binding to the transient exchange did not.
    assert not routed(conn, "tx.ex", "", "dq.from-transient")


def test_exclusive_queue_is_gone(conn: BlockingConnection) -> None:
    assert not queue_exists(conn, "dq.exclusive")


def test_durable_auto_delete_queue_without_consumers_survives(conn: BlockingConnection) -> None:
    assert get_all(conn.channel(), "dq.ad.idle") == [(b"idle", False)]


def test_durable_auto_delete_queue_consumed_at_shutdown_is_gone(conn: BlockingConnection) -> None:
    assert not queue_exists(conn, "dq.ad.consumed")


def test_unacked_messages_come_back_redelivered(conn: BlockingConnection) -> None:
    assert get_all(conn.channel(), "dq.unacked") == [
        (b"u1", True),
        (b"u2", True),
        (b"u3", False),
        (b"u4", False),
    ]


def test_acked_and_rejected_messages_do_not_come_back(conn: BlockingConnection) -> None:
    # s1, s2 acked; s3 rejected without requeue; s4 nacked with requeue; s5 never fetched.
    assert get_all(conn.channel(), "dq.settled") == [(b"s4", True), (b"s5", False)]
    # a1-a3 acked with one multiple ack; a4 never delivered.
    assert get_all(conn.channel(), "dq.acked") == [(b"a4", False)]


def test_purged_messages_do_not_come_back(conn: BlockingConnection) -> None:
    assert get_all(conn.channel(), "dq.purged") == [(b"after the purge", False)]


def test_deleted_durable_queue_and_exchange_stay_deleted(conn: BlockingConnection) -> None:
    assert not queue_exists(conn, "dq.deleted")
    assert not exchange_exists(conn, "dx.deleted")
    ch = conn.channel()
    ch.queue_declare("dq.deleted", durable=True)
    # A new queue of the same name: none of the old messages, none of the old bindings.
    assert not routed(conn, "dx.topic", "del.x", "dq.deleted")


def test_message_routed_to_two_durable_queues_is_in_both(conn: BlockingConnection) -> None:
    assert get_all(conn.channel(), "dq.two.a") == [(b"to both", False)]
    assert get_all(conn.channel(), "dq.two.b") == [(b"to both", False)]


def test_only_committed_transactions_survive(conn: BlockingConnection) -> None:
    assert get_all(conn.channel(), "dq.tx") == [(b"committed-1", False), (b"committed-2", False)]


# -------------------------------------------------------------- after a crash


def test_after_a_crash_definitions_and_persistent_messages_survive(crashed: Restarted) -> None:
    got = rawflow.drain(crashed.broker.port, "dq.msgs")
    assert [(d.header, d.body) for d in got] == crashed.world.raw_messages
    conn = connect(crashed.broker.port)
    try:
        assert routed(conn, "dx.topic", "a.b", "dq.e2e")
        # Never delivered, so no redelivered flag is promised either way.
        assert [body for body, _ in get_all(conn.channel(), "dq.mixed")] == [b"p1", b"p2", b"p3"]
        assert not queue_exists(conn, "tq")
        assert not exchange_exists(conn, "tx.ex")
        assert not queue_exists(conn, "dq.exclusive")
        assert not queue_exists(conn, "dq.deleted")
    finally:
        closing(conn)


def test_after_a_crash_delivered_messages_come_back_redelivered(crashed: Restarted) -> None:
    conn = connect(crashed.broker.port)
    try:
        got = get_all(conn.channel(), "dq.unacked")
        assert [body for body, _ in got] == [b"u1", b"u2", b"u3", b"u4"]
        # u1 and u2 were delivered; after an unclean stop any message may have been.
        assert got[0][1] and got[1][1]
    finally:
        closing(conn)


def test_after_a_crash_durable_auto_delete_queue_with_a_consumer_survives(
    crashed: Restarted,
) -> None:
    conn = connect(crashed.broker.port)
    try:
        assert get_all(conn.channel(), "dq.ad.consumed") == [(b"consumed", True)]
    finally:
        closing(conn)


def test_after_a_crash_open_transactions_are_lost(crashed: Restarted) -> None:
    conn = connect(crashed.broker.port)
    try:
        got = get_all(conn.channel(), "dq.tx")
        assert [body for body, _ in got] == [b"committed-1", b"committed-2"]
    finally:
        closing(conn)
