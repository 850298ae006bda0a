"""Exchanges as pika users see them: declare / delete rules and their exact errors,
auto-delete and internal exchanges, alternate exchanges, exchange-to-exchange
bindings, and routing of every type through real publishes.

Every expectation was checked against RabbitMQ 3.10 first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, UnroutableError
from pikakit import channel_error
from pikakit import connect as pika_connect

from amqpbroker.testing.pytest_plugin import each_version


@pytest.fixture
def conn(url: str) -> Iterator[BlockingConnection]:
    connection = pika_connect(url)
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def ch(conn: BlockingConnection) -> BlockingChannel:
    channel = conn.channel()
    channel.confirm_delivery()  # a publish returns once its queues have the message
    return channel


def exists(conn: BlockingConnection, exchange: str) -> bool:
    channel = conn.channel()
    try:
        channel.exchange_declare(exchange, passive=True)
    except ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    channel.close()
    return True


def bound_queue(ch: BlockingChannel, exchange: str, key: str = "", **arguments: Any) -> str:
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(queue, exchange, key, arguments=arguments or None)
    return queue


def drain(ch: BlockingChannel, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


# ---------------------------------------------------------------- declare


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_declare_passive_and_delete_each_type(
    conn: BlockingConnection, ch: BlockingChannel, kind: str
) -> None:
    assert ch.exchange_declare(f"ex-{kind}", kind).method.NAME == "Exchange.DeclareOk"
    assert exists(conn, f"ex-{kind}")
    assert ch.exchange_delete(f"ex-{kind}").method.NAME == "Exchange.DeleteOk"
    assert not exists(conn, f"ex-{kind}")


def test_passive_declare_of_missing_exchange(conn: BlockingConnection, vhost: str) -> None:
    assert channel_error(conn, lambda c: c.exchange_declare("nope", passive=True)) == (
        404,
        f"NOT_FOUND - no exchange 'nope' in vhost '{vhost}'",
    )


@pytest.mark.parametrize(
    ("option", "redeclare", "shown"),
    [
        ("type", {"exchange_type": "fanout"}, "received 'fanout' but current is 'direct'"),
        ("durable", {"durable": True}, "received 'true' but current is 'false'"),
        ("auto_delete", {"auto_delete": True}, "received 'true' but current is 'false'"),
        ("internal", {"internal": True}, "received 'true' but current is 'false'"),
    ],
)
def test_redeclare_with_other_options_fails(
    conn: BlockingConnection,
    ch: BlockingChannel,
    vhost: str,
    option: str,
    redeclare: dict[str, Any],
    shown: str,
) -> None:
    ch.exchange_declare("ex", "direct")
    options = {"exchange_type": "direct", **redeclare}
    assert channel_error(conn, lambda c: c.exchange_declare("ex", **options)) == (
        406,
        f"PRECONDITION_FAILED - inequivalent arg '{option}' for exchange 'ex' in vhost "
        f"'{vhost}': {shown}",
    )
    assert ch.exchange_declare("ex", "direct").method.NAME == "Exchange.DeclareOk"


def test_redeclare_durable_as_transient_fails(
    conn: BlockingConnection, ch: BlockingChannel, vhost: str
) -> None:
    ch.exchange_declare("ex-durable", "topic", durable=True)
    assert channel_error(conn, lambda c: c.exchange_declare("ex-durable", "topic")) == (
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'ex-durable' in "
        f"vhost '{vhost}': received 'false' but current is 'true'",
    )
    conn.channel().exchange_delete("ex-durable")


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        (None, "ae", "received the value 'ae' of type 'longstr' but current is none"),
        ("ae", None, "received none but current is the value 'ae' of type 'longstr'"),
        ("ae", "other", "received 'other' but current is 'ae'"),
    ],
)
def test_redeclare_with_other_alternate_exchange_fails(
    conn: BlockingConnection,
    ch: BlockingChannel,
    vhost: str,
    first: str | None,
    second: str | None,
    shown: str,
) -> None:
    def args(ae: str | None) -> dict[str, Any] | None:
        return {"alternate-exchange": ae} if ae else None

    ch.exchange_declare("ex-ae", "direct", arguments=args(first))
    assert channel_error(
        conn, lambda c: c.exchange_declare("ex-ae", "direct", arguments=args(second))
    ) == (
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange 'ex-ae' "
        f"in vhost '{vhost}': {shown}",
    )


def test_redeclare_ignores_other_arguments(ch: BlockingChannel) -> None:
    ch.exchange_declare("ex-args", "direct", arguments={"x-custom": 1})
    ok = ch.exchange_declare("ex-args", "direct", arguments={"x-custom": 2})
    assert isinstance(ok.method, pika.spec.Exchange.DeclareOk)
    ok = ch.exchange_declare("ex-args", "direct")
    assert isinstance(ok.method, pika.spec.Exchange.DeclareOk)
    # The channel is still open and the exchange still routes.
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(queue, "ex-args", "k")
    ch.basic_publish("ex-args", "k", b"m")
    assert ch.basic_get(queue, auto_ack=True)[2] == b"m"


def test_amq_prefix_is_reserved(conn: BlockingConnection) -> None:
    assert channel_error(conn, lambda c: c.exchange_declare("amq.mine", "direct")) == (
        403,
        "ACCESS_REFUSED - exchange name 'amq.mine' contains reserved prefix 'amq.*'",
    )
    assert not exists(conn, "amq.mine")


@pytest.mark.parametrize(
    ("name", "kind", "options"),
    [
        ("amq.direct", "direct", {"durable": True}),
        ("amq.fanout", "fanout", {"durable": True}),
        ("amq.topic", "topic", {"durable": True}),
        ("amq.headers", "headers", {"durable": True}),
        ("amq.match", "headers", {"durable": True}),
        ("amq.rabbitmq.trace", "topic", {"durable": True, "internal": True}),
    ],
)
def test_redeclaring_a_predeclared_exchange_is_fine(
    ch: BlockingChannel, name: str, kind: str, options: dict[str, Any]
) -> None:
    assert ch.exchange_declare(name, kind, **options).method.NAME == "Exchange.DeclareOk"
    assert ch.exchange_declare(name, passive=True).method.NAME == "Exchange.DeclareOk"


def test_redeclaring_a_predeclared_exchange_still_compares(
    conn: BlockingConnection, vhost: str
) -> None:
    assert channel_error(conn, lambda c: c.exchange_declare("amq.direct", "direct")) == (
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' in "
        f"vhost '{vhost}': received 'false' but current is 'true'",
    )


@pytest.mark.parametrize("name", ["amq.direct", "amq.never-declared"])
def test_deleting_a_system_exchange_is_refused(
    conn: BlockingConnection, vhost: str, name: str
) -> None:
    assert channel_error(conn, lambda c: c.exchange_delete(name)) == (
        403,
        f"ACCESS_REFUSED - deletion of system exchange '{name}' in vhost '{vhost}' not allowed",
    )


def _queue_bind_default(c: BlockingChannel) -> None:
    queue = c.queue_declare("", exclusive=True).method.queue
    c.queue_bind(queue, "", queue)


def _queue_unbind_default(c: BlockingChannel) -> None:
    queue = c.queue_declare("", exclusive=True).method.queue
    c.queue_unbind(queue, "", queue)


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.exchange_declare("", "direct"),
        lambda c: c.exchange_declare("", passive=True),
        lambda c: c.exchange_delete(""),
        _queue_bind_default,
        _queue_unbind_default,
        lambda c: c.exchange_bind("", "amq.direct", "k"),
        lambda c: c.exchange_bind("amq.direct", "", "k"),
        lambda c: c.exchange_unbind("amq.direct", "", "k"),
    ],
    ids=[
        "declare",
        "passive",
        "delete",
        "queue.bind",
        "queue.unbind",
        "bind-destination",
        "bind-source",
        "unbind-source",
    ],
)
def test_default_exchange_operations_are_refused(conn: BlockingConnection, action: Any) -> None:
    assert channel_error(conn, action) == (
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    )


def test_default_exchange_routes_by_queue_name(ch: BlockingChannel) -> None:
    queue = ch.queue_declare("by-name").method.queue
    ch.basic_publish("", "by-name", b"direct to queue")
    with pytest.raises(UnroutableError):
        ch.basic_publish("", "no-such-queue", b"lost", mandatory=True)
    assert drain(ch, queue) == [b"direct to queue"]


def test_deleting_a_missing_exchange_succeeds(ch: BlockingChannel) -> None:
    assert ch.exchange_delete("never-there").method.NAME == "Exchange.DeleteOk"


def test_delete_if_unused(conn: BlockingConnection, ch: BlockingChannel, vhost: str) -> None:
    ch.exchange_declare("busy", "direct")
    queue = bound_queue(ch, "busy", "k")
    assert channel_error(conn, lambda c: c.exchange_delete("busy", if_unused=True)) == (
        406,
        f"PRECONDITION_FAILED - exchange 'busy' in vhost '{vhost}' in use",
    )
    assert exists(conn, "busy")
    ch.queue_unbind(queue, "busy", "k")
    ch.exchange_delete("busy", if_unused=True)
    assert not exists(conn, "busy")


def test_delete_if_unused_ignores_bindings_to_the_exchange(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    # "Unused" means no bindings *from* it; being a destination does not count.
    ch.exchange_declare("dest-only", "fanout")
    ch.exchange_bind("dest-only", "amq.fanout")
    ch.exchange_delete("dest-only", if_unused=True)
    assert not exists(conn, "dest-only")


# RabbitMQ 3.10 closes the connection, 4.x only the channel (checked on 3.10.8, 4.0.5).
UNKNOWN_TYPE_CLOSE = {
    "3.10": (ConnectionClosedByBroker, 503, "COMMAND_INVALID"),
    "4.0": (ChannelClosedByBroker, 406, "PRECONDITION_FAILED"),
}


@each_version("3.10", "4.0")
@pytest.mark.parametrize(
    ("kind", "word"), [("foo", "invalid"), ("", "invalid"), ("topik", "unknown")]
)
def test_unknown_exchange_type_closes_the_connection_or_channel(
    conn: BlockingConnection, kind: str, word: str, rabbitmq_version: str
) -> None:
    closed, code, name = UNKNOWN_TYPE_CLOSE[rabbitmq_version]
    with pytest.raises(closed) as info:
        conn.channel().exchange_declare("typo", kind)
    assert (info.value.reply_code, info.value.reply_text) == (
        code,
        f"{name} - {word} exchange type '{kind}'",
    )
    assert conn.is_closed is (closed is ConnectionClosedByBroker)


@each_version("3.10", "4.0")
def test_unknown_type_is_checked_before_comparing(
    url: str, ch: BlockingChannel, rabbitmq_version: str
) -> None:
    ch.exchange_declare("typed", "direct")
    other = pika_connect(url)
    closed, code, _name = UNKNOWN_TYPE_CLOSE[rabbitmq_version]
    with pytest.raises(closed) as info:
        other.channel().exchange_declare("typed", "foo")
    assert info.value.reply_code == code
    if other.is_open:
        other.close()
    # A passive declare ignores the type altogether.
    assert ch.exchange_declare("typed", "foo", passive=True).method.NAME == "Exchange.DeclareOk"


# ------------------------------------------------------ auto-delete, internal


def test_auto_delete_exchange_goes_with_its_last_binding(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    ch.exchange_declare("ephemeral", "direct", auto_delete=True)
    assert exists(conn, "ephemeral")  # never bound: it stays
    queue = bound_queue(ch, "ephemeral", "a")
    ch.queue_bind(queue, "ephemeral", "b")
    ch.queue_unbind(queue, "ephemeral", "a")
    assert exists(conn, "ephemeral")
    ch.queue_unbind(queue, "ephemeral", "b")
    assert not exists(conn, "ephemeral")


def test_auto_delete_exchange_goes_when_its_bound_queue_is_deleted(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    ch.exchange_declare("ephemeral", "fanout", auto_delete=True)
    queue = bound_queue(ch, "ephemeral")
    ch.queue_delete(queue)
    assert not exists(conn, "ephemeral")


def test_auto_delete_exchange_and_exchange_bindings(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    ch.exchange_declare("ad-source", "fanout", auto_delete=True)
    ch.exchange_declare("ad-dest", "fanout", auto_delete=True)
    ch.exchange_bind("ad-dest", "ad-source")
    ch.exchange_unbind("ad-dest", "ad-source")
    # The source lost its last binding; a destination keeps its own (none) bindings.
    assert not exists(conn, "ad-source")
    assert exists(conn, "ad-dest")


def test_publishing_to_an_internal_exchange_is_refused(
    conn: BlockingConnection, ch: BlockingChannel, vhost: str
) -> None:
    ch.exchange_declare("inside", "fanout", internal=True)

    def publish(c: BlockingChannel, name: str) -> None:
        c.confirm_delivery()
        c.basic_publish(name, "", b"x")

    for name in ("inside", "amq.rabbitmq.trace"):
        assert channel_error(conn, lambda c, name=name: publish(c, name)) == (
            403,
            f"ACCESS_REFUSED - cannot publish to internal exchange '{name}' in vhost '{vhost}'",
        )


def test_internal_exchange_receives_through_exchange_bindings(ch: BlockingChannel) -> None:
    ch.exchange_declare("inside", "fanout", internal=True)
    ch.exchange_declare("front", "fanout")
    ch.exchange_bind("inside", "front")
    queue = bound_queue(ch, "inside")
    ch.basic_publish("front", "", b"via front")
    assert drain(ch, queue) == [b"via front"]


# -------------------------------------------------------- alternate exchange


def test_alternate_exchange_takes_unroutable_messages(ch: BlockingChannel) -> None:
    returned: list[str] = []
    ch.add_on_return_callback(lambda _c, method, _p, _b: returned.append(method.routing_key))
    ch.exchange_declare("ae", "fanout")
    ch.exchange_declare("main", "direct", arguments={"alternate-exchange": "ae"})
    routed = bound_queue(ch, "main", "known")
    fallback = bound_queue(ch, "ae")
    ch.basic_publish("main", "known", b"routed", mandatory=True)
    # Routed by the alternate exchange, so mandatory has nothing to return.
    ch.basic_publish("main", "unknown", b"fell back", mandatory=True)
    assert drain(ch, routed) == [b"routed"]
    assert drain(ch, fallback) == [b"fell back"]
    method, _props, _body = ch.basic_get(routed)
    assert method is None
    assert returned == []


@pytest.mark.parametrize("ae_exists", [False, True], ids=["missing-ae", "ae-routes-nowhere"])
def test_mandatory_returned_when_alternate_exchange_does_not_route(
    ch: BlockingChannel, ae_exists: bool
) -> None:
    if ae_exists:
        ch.exchange_declare("ae", "direct")
    ch.exchange_declare("main", "direct", arguments={"alternate-exchange": "ae"})
    with pytest.raises(UnroutableError) as info:
        ch.basic_publish("main", "nowhere", b"lost", mandatory=True)
    (returned,) = info.value.messages
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.method.exchange == "main"
    assert returned.body == b"lost"


# -------------------------------------------------- exchange-to-exchange bindings


def test_exchange_to_exchange_bind_and_unbind(ch: BlockingChannel) -> None:
    ch.exchange_declare("src", "topic")
    ch.exchange_declare("dst", "fanout")
    assert ch.exchange_bind("dst", "src", "a.*").method.NAME == "Exchange.BindOk"
    queue = bound_queue(ch, "dst")
    ch.basic_publish("src", "a.b", b"matches")
    ch.basic_publish("src", "b.b", b"does not")
    assert drain(ch, queue) == [b"matches"]
    assert ch.exchange_unbind("dst", "src", "a.*").method.NAME == "Exchange.UnbindOk"
    ch.basic_publish("src", "a.b", b"after unbind")
    assert drain(ch, queue) == []


def test_exchange_unbind_of_what_is_not_bound_succeeds(ch: BlockingChannel) -> None:
    assert ch.exchange_unbind("amq.fanout", "amq.direct", "no-key").method.NAME == (
        "Exchange.UnbindOk"
    )
    assert ch.exchange_unbind("missing", "amq.direct", "k").method.NAME == "Exchange.UnbindOk"
    assert ch.exchange_unbind("amq.direct", "missing", "k").method.NAME == "Exchange.UnbindOk"


@pytest.mark.parametrize("missing", ["source", "destination"])
def test_exchange_bind_with_a_missing_exchange(
    conn: BlockingConnection, vhost: str, missing: str
) -> None:
    def bind(c: BlockingChannel) -> None:
        if missing == "source":
            c.exchange_bind("amq.fanout", "missing")
        else:
            c.exchange_bind("missing", "amq.fanout")

    assert channel_error(conn, bind) == (
        404,
        f"NOT_FOUND - no exchange 'missing' in vhost '{vhost}'",
    )


def test_binding_loop_delivers_once_and_terminates(ch: BlockingChannel) -> None:
    ch.exchange_declare("loop-a", "fanout")
    ch.exchange_declare("loop-b", "fanout")
    ch.exchange_bind("loop-b", "loop-a")
    ch.exchange_bind("loop-a", "loop-b")
    queue_a = bound_queue(ch, "loop-a")
    queue_b = bound_queue(ch, "loop-b")
    ch.basic_publish("loop-a", "", b"once")
    assert drain(ch, queue_a) == [b"once"]
    assert drain(ch, queue_b) == [b"once"]


def test_two_paths_to_one_queue_deliver_once(ch: BlockingChannel) -> None:
    ch.exchange_declare("fan", "fanout")
    ch.exchange_declare("left", "fanout")
    ch.exchange_declare("right", "fanout")
    ch.exchange_bind("left", "fan")
    ch.exchange_bind("right", "fan")
    queue = bound_queue(ch, "left")
    ch.queue_bind(queue, "right")
    ch.queue_bind(queue, "fan")
    ch.basic_publish("fan", "", b"one copy")
    assert drain(ch, queue) == [b"one copy"]


# ------------------------------------------------------------------ routing


def test_direct_routing(ch: BlockingChannel) -> None:
    ch.exchange_declare("d", "direct")
    orange = bound_queue(ch, "d", "orange")
    both = bound_queue(ch, "d", "black")
    ch.queue_bind(both, "d", "green")
    for key in ("orange", "black", "green", "purple"):
        ch.basic_publish("d", key, key.encode())
    assert drain(ch, orange) == [b"orange"]
    assert drain(ch, both) == [b"black", b"green"]


def test_fanout_routing_ignores_the_key(ch: BlockingChannel) -> None:
    ch.exchange_declare("f", "fanout")
    queues = [bound_queue(ch, "f", key) for key in ("", "x", "y")]
    ch.basic_publish("f", "anything", b"all")
    assert [drain(ch, q) for q in queues] == [[b"all"]] * 3


TOPIC_KEYS = [
    "quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.pink.rabbit",
    "quick.brown.fox", "lazy", "lazy.a.b.c.d", "orange", "", "a..b",
]  # fmt: skip
TOPIC_CASES = [
    ("*.orange.*", ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]),
    ("*.*.rabbit", ["quick.orange.rabbit", "lazy.pink.rabbit"]),
    ("lazy.#", ["lazy.orange.elephant", "lazy.pink.rabbit", "lazy", "lazy.a.b.c.d"]),
    ("#", TOPIC_KEYS),
    ("#.fox", ["quick.orange.fox", "quick.brown.fox"]),
    ("a.*.b", ["a..b"]),
    ("*", ["lazy", "orange"]),  # the empty key has no words at all
    ("orange", ["orange"]),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "expected"), TOPIC_CASES)
def test_topic_routing(ch: BlockingChannel, pattern: str, expected: list[str]) -> None:
    ch.exchange_declare("t", "topic")
    queue = bound_queue(ch, "t", pattern)
    for key in TOPIC_KEYS:
        ch.basic_publish("t", key, key.encode())
    assert [body.decode() for body in drain(ch, queue)] == expected


HEADERS_CASES = [
    ({"x-match": "all", "a": 1, "b": "two"}, [0]),
    ({"a": 1, "b": "two"}, [0]),  # all is the default
    ({"x-match": "any", "a": 1, "b": "two"}, [0, 1, 2]),
    ({"x-match": "any", "c": "nope"}, []),
    ({}, [0, 1, 2, 3]),  # no keys: everything matches
    ({"x-match": "all", "x-extra": "ignored", "a": 1}, [0, 1]),
    ({"x-match": "all-with-x", "a": 1, "x-tag": "t"}, [1]),
    ({"x-match": "any-with-x", "x-tag": "t"}, [1]),
]
HEADERS_MESSAGES = [
    {"a": 1, "b": "two"},
    {"a": 1, "x-tag": "t"},
    {"b": "two"},
    {},
]


@pytest.mark.parametrize(("binding", "expected"), HEADERS_CASES)
def test_headers_routing(ch: BlockingChannel, binding: dict[str, Any], expected: list[int]) -> None:
    ch.exchange_declare("h", "headers")
    queue = bound_queue(ch, "h", "", **binding) if binding else bound_queue(ch, "h")
    for index, headers in enumerate(HEADERS_MESSAGES):
        ch.basic_publish(
            "h", "", str(index).encode(), pika.BasicProperties(headers=headers or None)
        )
    assert [int(body) for body in drain(ch, queue)] == expected
