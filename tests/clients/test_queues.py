"""Queues as pika users see them: naming, redeclare rules and their exact texts,
exclusive and auto-delete lifetimes, counts, the empty-name shortcuts, bindings, and
the basic.cancel a consumer gets when its queue is deleted.

Every expectation was checked against RabbitMQ 3.10 first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, UnroutableError
from pikakit import channel_error, run_select, wait_until
from pikakit import connect as pika_connect

from amqpbroker.broker.queue_arguments import TRANSIENT_NONEXCLUSIVE_DENIED
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
    channel.confirm_delivery()  # a publish returns once the queue has the message
    return channel


@pytest.fixture
def other(url: str) -> Iterator[BlockingConnection]:
    """A second connection (exclusive queues belong to one connection)."""
    connection = pika_connect(url)
    yield connection
    if connection.is_open:
        connection.close()


def counts(conn: BlockingConnection, queue: str) -> tuple[int, int] | None:
    """(messages, consumers) from a passive declare on a fresh channel; None if gone."""
    channel = conn.channel()
    try:
        method = channel.queue_declare(queue, passive=True).method
    except ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return None
    channel.close()
    return method.message_count, method.consumer_count


def locked(queue: str, vhost: str) -> tuple[int, str]:
    return (
        405,
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost "
        f"'{vhost}'. It could be originally declared on another connection or the exclusive "
        "property value does not match that of the original declaration.",
    )


def nothing(*_args: Any) -> None:
    pass


# ------------------------------------------------------------------- names


def test_server_named_queue(ch: BlockingChannel) -> None:
    ok = ch.queue_declare("").method
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", ok.queue)
    assert (ok.message_count, ok.consumer_count) == (0, 0)
    assert ch.queue_declare("").method.queue != ok.queue


def test_amq_prefix_is_reserved(conn: BlockingConnection, vhost: str) -> None:
    assert channel_error(conn, lambda c: c.queue_declare("amq.mine")) == (
        403,
        "ACCESS_REFUSED - queue name 'amq.mine' contains reserved prefix 'amq.*'",
    )
    # Passive is a lookup, not a creation: plain 404.
    assert channel_error(conn, lambda c: c.queue_declare("amq.mine", passive=True)) == (
        404,
        f"NOT_FOUND - no queue 'amq.mine' in vhost '{vhost}'",
    )


def test_passive_declare_of_a_missing_queue(conn: BlockingConnection, vhost: str) -> None:
    assert channel_error(conn, lambda c: c.queue_declare("nope", passive=True)) == (
        404,
        f"NOT_FOUND - no queue 'nope' in vhost '{vhost}'",
    )


def test_a_255_byte_name_is_fine(ch: BlockingChannel) -> None:
    assert ch.queue_declare("q" * 255).method.queue == "q" * 255


# ---------------------------------------------------------------- redeclare


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        ({}, {"durable": True}, "'durable' for queue 'q' in vhost '{}': received 'true' but "
         "current is 'false'"),
        ({"durable": True}, {}, "'durable' for queue 'q' in vhost '{}': received 'false' but "
         "current is 'true'"),
        ({}, {"auto_delete": True}, "'auto_delete' for queue 'q' in vhost '{}': received "
         "'true' but current is 'false'"),
        ({"auto_delete": True}, {}, "'auto_delete' for queue 'q' in vhost '{}': received "
         "'false' but current is 'true'"),
    ],
    ids=["durable", "transient", "auto-delete", "not-auto-delete"],
)  # fmt: skip
def test_redeclare_with_other_flags_fails(
    conn: BlockingConnection,
    ch: BlockingChannel,
    vhost: str,
    first: dict[str, Any],
    second: dict[str, Any],
    shown: str,
) -> None:
    ch.queue_declare("q", **first)
    assert channel_error(conn, lambda c: c.queue_declare("q", **second)) == (
        406,
        "PRECONDITION_FAILED - inequivalent arg " + shown.format(vhost),
    )
    conn.channel().queue_delete("q")


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        ({}, {"x-message-ttl": 2000}, "'x-message-ttl' for queue 'q' in vhost '{}': received "
         "the value '2000' of type 'signedint' but current is none"),
        ({"x-message-ttl": 2000}, {}, "'x-message-ttl' for queue 'q' in vhost '{}': received "
         "none but current is the value '2000' of type 'signedint'"),
        ({"x-message-ttl": 2000}, {"x-message-ttl": 3000}, "'x-message-ttl' for queue 'q' in "
         "vhost '{}': received '3000' but current is '2000'"),
        ({"x-message-ttl": 2000}, {"x-message-ttl": "2000"}, "'x-message-ttl' for queue 'q' "
         "in vhost '{}': received '2000' but current is '2000'"),
        ({}, {"x-max-length": 2**40}, "'x-max-length' for queue 'q' in vhost '{}': received "
         "the value '1099511627776' of type 'long' but current is none"),
        ({}, {"x-dead-letter-exchange": "dlx"}, "'x-dead-letter-exchange' for queue 'q' in "
         "vhost '{}': received the value 'dlx' of type 'longstr' but current is none"),
        ({"x-queue-mode": "lazy"}, {"x-queue-mode": "default"}, "'x-queue-mode' for queue 'q' "
         "in vhost '{}': received 'default' but current is 'lazy'"),
        ({}, {"x-single-active-consumer": True}, "'x-single-active-consumer' for queue 'q' in "
         "vhost '{}': received the value 'true' of type 'bool' but current is none"),
        ({}, {"x-queue-type": "quorum"}, "'x-queue-type' for queue 'q' in vhost '{}': received "
         "the value 'quorum' of type 'longstr' but current is none"),
    ],
    ids=["added", "removed", "changed", "retyped", "long", "string", "string-changed",
         "bool", "queue-type"],
)  # fmt: skip
def test_redeclare_with_other_arguments_fails(
    conn: BlockingConnection,
    ch: BlockingChannel,
    vhost: str,
    first: dict[str, Any],
    second: dict[str, Any],
    shown: str,
) -> None:
    ch.queue_declare("q", arguments=first or None)
    assert channel_error(conn, lambda c: c.queue_declare("q", arguments=second or None)) == (
        406,
        "PRECONDITION_FAILED - inequivalent arg " + shown.format(vhost),
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"x-queue-type": "classic"}, {}),  # no x-queue-type means classic
        ({}, {"x-queue-type": "classic"}),
        ({"x-custom": 1}, {"x-custom": 2}),  # unknown arguments are stored, not compared
        ({"x-max-length": 10}, {"x-max-length": 10}),
    ],
    ids=["classic-then-none", "none-then-classic", "unknown-arg", "same"],
)
def test_redeclare_with_equivalent_arguments(
    ch: BlockingChannel, first: dict[str, Any], second: dict[str, Any]
) -> None:
    ch.queue_declare("q", arguments=first)
    assert ch.queue_declare("q", arguments=second).method.queue == "q"


def test_passive_declare_ignores_flags(ch: BlockingChannel) -> None:
    ch.queue_declare("q", durable=True)
    assert ch.queue_declare("q", passive=True).method.queue == "q"
    ch.queue_delete("q")


# ---------------------------------------------------------------- exclusive


def test_exclusive_queue_is_locked_for_other_connections(
    ch: BlockingChannel, other: BlockingConnection, vhost: str
) -> None:
    ch.queue_declare("mine", exclusive=True)
    attempts = {
        "declare": lambda c: c.queue_declare("mine", exclusive=True),
        "declare-shared": lambda c: c.queue_declare("mine"),
        "passive": lambda c: c.queue_declare("mine", passive=True),
        "delete": lambda c: c.queue_delete("mine"),
        "purge": lambda c: c.queue_purge("mine"),
        "bind": lambda c: c.queue_bind("mine", "amq.direct", "k"),
        "consume": lambda c: c.basic_consume("mine", nothing),
        "get": lambda c: c.basic_get("mine"),
    }
    for name, attempt in attempts.items():
        assert channel_error(other, attempt) == locked("mine", vhost), name


def test_unbind_from_another_connection(
    ch: BlockingChannel, other: BlockingConnection, vhost: str
) -> None:
    ch.queue_declare("mine", exclusive=True)
    ch.queue_bind("mine", "amq.direct", "bound")
    # Unbinding what is not bound succeeds even for someone else's exclusive queue...
    assert other.channel().queue_unbind("mine", "amq.direct", "other").method.NAME == (
        "Queue.UnbindOk"
    )
    # ...but removing a real binding is refused.
    assert channel_error(other, lambda c: c.queue_unbind("mine", "amq.direct", "bound")) == (
        locked("mine", vhost)
    )


def test_exclusive_queue_on_the_same_connection(
    conn: BlockingConnection, ch: BlockingChannel, vhost: str
) -> None:
    ch.queue_declare("mine", exclusive=True)
    # Any channel of the owning connection may use it...
    assert conn.channel().queue_declare("mine", exclusive=True).method.queue == "mine"
    # ...but a non-exclusive redeclare does not match the original declaration.
    assert channel_error(conn, lambda c: c.queue_declare("mine")) == locked("mine", vhost)


def test_shared_queue_cannot_be_redeclared_exclusive(
    conn: BlockingConnection, ch: BlockingChannel, vhost: str
) -> None:
    ch.queue_declare("shared")
    assert channel_error(conn, lambda c: c.queue_declare("shared", exclusive=True)) == (
        locked("shared", vhost)
    )
    conn.channel().queue_delete("shared")


def test_exclusive_queues_are_never_durable(ch: BlockingChannel) -> None:
    # durable is dropped for exclusive declares, so these all agree.
    ch.queue_declare("mine", exclusive=True, durable=True)
    ch.queue_declare("mine", exclusive=True, durable=True)
    assert ch.queue_declare("mine", exclusive=True, durable=False).method.queue == "mine"


def test_exclusive_queue_is_deleted_when_its_connection_closes(
    url: str, other: BlockingConnection, vhost: str
) -> None:
    owner = pika_connect(url)
    owner.channel().queue_declare("mine", exclusive=True)
    # It exists (locked for us, not missing)...
    assert channel_error(other, lambda c: c.queue_declare("mine", passive=True)) == (
        locked("mine", vhost)
    )
    owner.close()
    assert counts(other, "mine") is None
    # The name is free again, for anyone.
    assert other.channel().queue_declare("mine", exclusive=True).method.queue == "mine"


def test_exclusive_queue_deleted_by_its_owner_is_free(
    ch: BlockingChannel, other: BlockingConnection
) -> None:
    ch.queue_declare("mine", exclusive=True)
    ch.queue_delete("mine")
    assert other.channel().queue_declare("mine", exclusive=True).method.queue == "mine"


# -------------------------------------------------------------- auto-delete


def test_auto_delete_queue_goes_with_its_last_consumer(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    ch.queue_declare("ad", auto_delete=True)
    ch.basic_publish("", "ad", b"x")
    ch.basic_get("ad", auto_ack=True)  # basic.get is no consumer
    assert counts(conn, "ad") == (0, 0)  # never consumed: it stays
    first = ch.basic_consume("ad", nothing)
    second = ch.basic_consume("ad", nothing)
    assert counts(conn, "ad") == (0, 2)
    ch.basic_cancel(first)
    assert counts(conn, "ad") == (0, 1)
    ch.basic_cancel(second)
    assert counts(conn, "ad") is None


def test_auto_delete_queue_goes_when_the_consuming_channel_closes(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    ch.queue_declare("ad", auto_delete=True)
    consumer = conn.channel()
    consumer.basic_consume("ad", nothing)
    consumer.close()
    assert counts(conn, "ad") is None


def test_auto_delete_queue_goes_when_the_consuming_connection_closes(
    url: str, conn: BlockingConnection, ch: BlockingChannel
) -> None:
    ch.queue_declare("ad", auto_delete=True)
    consumer = pika_connect(url)
    consumer.channel().basic_consume("ad", nothing)
    consumer.close()
    assert counts(conn, "ad") is None


# ------------------------------------------------------------------- counts


def test_declare_purge_and_delete_report_counts(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    ch.queue_declare("counted")
    for i in range(4):
        ch.basic_publish("", "counted", str(i).encode())
    ok = ch.queue_declare("counted").method
    assert (ok.message_count, ok.consumer_count) == (4, 0)
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=1)
    inbox: list[bytes] = []
    consumer.basic_consume("counted", lambda _c, _m, _p, body: inbox.append(body))
    wait_until(conn, lambda: len(inbox) == 1)
    # The unacked delivery counts neither as ready nor in a purge.
    assert counts(conn, "counted") == (3, 1)
    assert ch.queue_purge("counted").method.message_count == 3
    consumer.close()  # the unacked message goes back to the queue
    assert counts(conn, "counted") == (1, 0)
    ch.basic_publish("", "counted", b"more")
    assert ch.queue_delete("counted").method.message_count == 2


def test_delete_if_unused(conn: BlockingConnection, ch: BlockingChannel, vhost: str) -> None:
    ch.queue_declare("used")
    tag = ch.basic_consume("used", nothing)
    assert channel_error(conn, lambda c: c.queue_delete("used", if_unused=True)) == (
        406,
        f"PRECONDITION_FAILED - queue 'used' in vhost '{vhost}' in use",
    )
    ch.basic_cancel(tag)
    assert ch.queue_delete("used", if_unused=True).method.message_count == 0


def test_delete_if_empty(conn: BlockingConnection, ch: BlockingChannel, vhost: str) -> None:
    ch.queue_declare("full")
    ch.basic_publish("", "full", b"x")
    assert channel_error(conn, lambda c: c.queue_delete("full", if_empty=True)) == (
        406,
        f"PRECONDITION_FAILED - queue 'full' in vhost '{vhost}' not empty",
    )
    # A message delivered but not yet acked does not make the queue "not empty".
    method, _props, _body = ch.basic_get("full")
    assert method is not None
    assert ch.queue_delete("full", if_empty=True, if_unused=True).method.message_count == 0


def test_deleting_a_missing_queue_succeeds(ch: BlockingChannel) -> None:
    assert ch.queue_delete("never-there").method.message_count == 0


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.queue_purge("missing"),
        lambda c: c.queue_bind("missing", "amq.direct", "k"),
        lambda c: c.basic_consume("missing", nothing),
        lambda c: c.basic_get("missing"),
    ],
    ids=["purge", "bind", "consume", "get"],
)
def test_operations_on_a_missing_queue(conn: BlockingConnection, vhost: str, action: Any) -> None:
    assert channel_error(conn, action) == (
        404,
        f"NOT_FOUND - no queue 'missing' in vhost '{vhost}'",
    )


# ----------------------------------------------------------------- bindings


def test_bind_and_unbind(ch: BlockingChannel) -> None:
    ch.queue_declare("b")
    assert ch.queue_bind("b", "amq.topic", "a.#").method.NAME == "Queue.BindOk"
    ch.basic_publish("amq.topic", "a.b.c", b"bound")
    assert ch.queue_unbind("b", "amq.topic", "a.#").method.NAME == "Queue.UnbindOk"
    with pytest.raises(UnroutableError):
        ch.basic_publish("amq.topic", "a.b.c", b"unbound", mandatory=True)
    assert ch.basic_get("b", auto_ack=True)[2] == b"bound"


def test_bind_to_a_missing_exchange(conn: BlockingConnection, vhost: str) -> None:
    def bind(c: BlockingChannel) -> None:
        c.queue_declare("b")
        c.queue_bind("b", "missing", "k")

    assert channel_error(conn, bind) == (
        404,
        f"NOT_FOUND - no exchange 'missing' in vhost '{vhost}'",
    )


def test_unbind_of_what_is_not_there_succeeds(ch: BlockingChannel) -> None:
    ch.queue_declare("b")
    for queue, exchange in (("b", "amq.direct"), ("missing", "amq.direct"), ("b", "missing")):
        assert ch.queue_unbind(queue, exchange, "k").method.NAME == "Queue.UnbindOk"


# ------------------------------------------------ empty name = last declared


def test_empty_name_means_the_last_declared_queue(ch: BlockingChannel) -> None:
    ch.queue_declare("first")
    ch.queue_declare("last")
    ch.queue_bind("", "amq.direct", "rk")
    ch.basic_publish("amq.direct", "rk", b"a")
    # queue.bind with empty queue *and* key: the key is the queue's name too.
    ch.queue_bind("", "amq.direct", "")
    ch.basic_publish("amq.direct", "last", b"b")
    assert ch.queue_declare("last", passive=True).method.message_count == 2
    method, _props, body = ch.basic_get("", auto_ack=True)
    assert (body, method.routing_key) == (b"a", "rk")
    assert ch.queue_purge("").method.message_count == 1
    ch.queue_unbind("", "amq.direct", "rk")
    with pytest.raises(UnroutableError):
        ch.basic_publish("amq.direct", "rk", b"c", mandatory=True)
    tag = ch.basic_consume("", nothing)
    assert ch.queue_declare("last", passive=True).method.consumer_count == 1
    ch.basic_cancel(tag)
    ch.basic_publish("", "last", b"d")
    assert ch.queue_delete("").method.message_count == 1
    assert ch.queue_declare("first", passive=True).method.queue == "first"


def test_bind_with_a_named_queue_and_empty_key(ch: BlockingChannel) -> None:
    ch.queue_declare("named", exclusive=True)
    ch.queue_bind("named", "amq.direct", "")  # no shortcut: the key really is ""
    ch.basic_publish("amq.direct", "", b"empty key")
    with pytest.raises(UnroutableError):
        ch.basic_publish("amq.direct", "named", b"by name", mandatory=True)
    assert ch.basic_get("named", auto_ack=True)[2] == b"empty key"


def test_passive_declare_sets_the_last_queue(conn: BlockingConnection, ch: BlockingChannel) -> None:
    ch.queue_declare("declared")
    ch.basic_publish("", "declared", b"x")
    other_channel = conn.channel()
    other_channel.queue_declare("declared", passive=True)
    assert other_channel.queue_purge("").method.message_count == 1


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.queue_delete(""),
        lambda c: c.queue_purge(""),
        lambda c: c.queue_bind("", "amq.direct", "k"),
        lambda c: c.queue_unbind("", "amq.direct", "k"),
        lambda c: c.basic_consume("", nothing),
        lambda c: c.basic_get(""),
    ],
    ids=["delete", "purge", "bind", "unbind", "consume", "get"],
)
def test_empty_name_without_a_declared_queue(
    conn: BlockingConnection, ch: BlockingChannel, action: Any
) -> None:
    ch.queue_declare("on-another-channel")  # the last queue is per channel
    assert channel_error(conn, action) == (404, "NOT_FOUND - no previously declared queue")


def test_passive_declare_of_the_empty_name(
    conn: BlockingConnection, ch: BlockingChannel, vhost: str
) -> None:
    ch.queue_declare("declared")
    # No shortcut for a passive declare: it looks for a queue called "".
    assert channel_error(
        conn, lambda c: (c.queue_declare("declared"), c.queue_declare("", passive=True))
    ) == (404, f"NOT_FOUND - no queue '' in vhost '{vhost}'")


def test_empty_name_after_the_last_queue_was_deleted(conn: BlockingConnection, vhost: str) -> None:
    def purge_deleted(c: BlockingChannel) -> None:
        c.queue_declare("gone")
        c.queue_delete("gone")
        c.queue_purge("")

    assert channel_error(conn, purge_deleted) == (
        404,
        f"NOT_FOUND - no queue 'gone' in vhost '{vhost}'",
    )


# --------------------------------------------------- consumer cancel notify


def test_deleting_a_queue_cancels_its_consumers(
    conn: BlockingConnection, ch: BlockingChannel, other: BlockingConnection
) -> None:
    ch.queue_declare("watched")
    cancelled: list[str] = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume("watched", nothing)
    other.channel().queue_delete("watched")
    wait_until(conn, lambda: bool(cancelled))
    assert cancelled == [tag]
    assert ch.is_open
    assert ch.consumer_tags == []


def test_select_consumer_gets_basic_cancel(url: str) -> None:
    seen: dict[str, Any] = {}

    def scenario(channel: Any, finish: Any) -> None:
        def on_cancel(frame: Any) -> None:
            seen["cancel"] = frame.method
            seen["open"] = channel.is_open
            finish()

        def on_consuming(frame: Any) -> None:
            seen["tag"] = frame.method.consumer_tag
            channel.queue_delete(seen["queue"])

        def on_declared(frame: Any) -> None:
            seen["queue"] = frame.method.queue
            channel.add_on_cancel_callback(on_cancel)
            channel.basic_consume(frame.method.queue, nothing, callback=on_consuming)

        channel.queue_declare("", exclusive=True, callback=on_declared)

    run_select(url, scenario)
    assert seen["cancel"].consumer_tag == seen["tag"]
    assert seen["open"] is True


# ------------------------------------------------------ argument validation


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"x-message-ttl": -1}, "'x-message-ttl' for queue 'v' in vhost '{}': "
         "{{value_negative,-1}}"),
        ({"x-message-ttl": "abc"}, "'x-message-ttl' for queue 'v' in vhost '{}': \"expected "
         "integer, got longstr\""),
        ({"x-message-ttl": 315360000001}, "'x-message-ttl' for queue 'v' in vhost '{}': "
         "{{value_too_large,315360000001}}"),
        ({"x-expires": 0}, "'x-expires' for queue 'v' in vhost '{}': {{value_zero,0}}"),
        ({"x-max-length": True}, "'x-max-length' for queue 'v' in vhost '{}': \"expected "
         "integer, got bool\""),
        ({"x-max-length-bytes": -5}, "'x-max-length-bytes' for queue 'v' in vhost '{}': "
         "{{value_negative,-5}}"),
        ({"x-max-priority": 256}, "'x-max-priority' for queue 'v' in vhost '{}': "
         "{{max_value_exceeded,256}}"),
        ({"x-overflow": "drop-tail"}, "'x-overflow' for queue 'v' in vhost '{}': invalid_overflow"),
        ({"x-overflow": 5}, "'x-overflow' for queue 'v' in vhost '{}': "
         "{{unacceptable_type,signedint}}"),
        ({"x-dead-letter-routing-key": "rk"}, "'x-dead-letter-routing-key' for queue 'v' in "
         "vhost '{}': routing_key_but_no_dlx_defined"),
        ({"x-single-active-consumer": "yes"}, "'x-single-active-consumer' for queue 'v' in "
         "vhost '{}': {{unacceptable_type,longstr}}"),
        ({"x-queue-mode": "eager"}, "'x-queue-mode' for queue 'v' in vhost '{}': "
         "\"unsupported queue mode 'eager'\""),
        ({"x-queue-type": "bogus"}, "'x-queue-type' for queue 'v' in vhost '{}': "
         "\"unsupported queue type 'bogus'\""),
        ({"x-queue-version": 3}, "'x-queue-version' for queue 'v' in vhost '{}': "
         "\"unsupported queue version '3'\""),
        # Several bad values: the first in RabbitMQ's own order is reported.
        ({"x-max-length": -1, "x-message-ttl": -2}, "'x-message-ttl' for queue 'v' in vhost "
         "'{}': {{value_negative,-2}}"),
    ],
)  # fmt: skip
def test_invalid_arguments_are_refused(
    conn: BlockingConnection, vhost: str, arguments: dict[str, Any], problem: str
) -> None:
    assert channel_error(conn, lambda c: c.queue_declare("v", arguments=arguments)) == (
        406,
        "PRECONDITION_FAILED - invalid arg " + problem.format(vhost),
    )
    assert counts(conn, "v") is None


def test_dead_letter_exchange_of_the_wrong_type(conn: BlockingConnection, vhost: str) -> None:
    arguments = {"x-dead-letter-exchange": 5}
    assert channel_error(conn, lambda c: c.queue_declare("v", arguments=arguments)) == (
        406,
        f"PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in "
        f"queue 'v' in vhost '{vhost}'",
    )


def test_valid_arguments_and_redeclares_are_not_validated_again(
    conn: BlockingConnection, ch: BlockingChannel, vhost: str
) -> None:
    arguments = {
        "x-message-ttl": 0,
        "x-expires": 315360000000,
        "x-max-length": 0,
        "x-max-priority": 255,
        "x-overflow": "reject-publish-dlx",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "rk",
        "x-queue-mode": "lazy",
        "x-queue-version": 2,
        "x-single-active-consumer": True,
        "x-custom": "anything",
    }
    assert ch.queue_declare("valid", arguments=arguments).method.queue == "valid"
    # An existing queue is compared, not validated: the mismatch is what is reported.
    assert channel_error(
        conn, lambda c: c.queue_declare("valid", arguments={**arguments, "x-max-length": -1})
    ) == (
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'valid' in vhost "
        f"'{vhost}': received '-1' but current is '0'",
    )


# ------------------------------------------------------------ 4.3 refusals


@each_version("4.2", "4.3")
def test_transient_non_exclusive_queues_by_version(
    conn: BlockingConnection, rabbitmq_version: str
) -> None:
    ch = conn.channel()
    ch.queue_declare("durable-one", durable=True)
    ch.queue_declare("exclusive-one", exclusive=True)
    ch.queue_declare("", exclusive=True)
    if rabbitmq_version == "4.2":
        assert ch.queue_declare("transient-one").method.queue == "transient-one"
        return
    # 4.3 denies the deprecated feature: 541 with its warning, cut at 255 bytes.
    with pytest.raises(ConnectionClosedByBroker) as info:
        ch.queue_declare("transient-one")
    text = f"INTERNAL_ERROR - {TRANSIENT_NONEXCLUSIVE_DENIED}".encode()
    assert info.value.args == (541, (text[:252] + b"...").decode())


@each_version("4.2", "4.3")
def test_classic_queue_version_1_by_version(
    conn: BlockingConnection, vhost: str, rabbitmq_version: str
) -> None:
    ch = conn.channel()
    assert ch.queue_declare("v2", durable=True, arguments={"x-queue-version": 2})
    if rabbitmq_version == "4.2":
        ch.queue_declare("v1", durable=True, arguments={"x-queue-version": 1})
        return
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.queue_declare("v1", durable=True, arguments={"x-queue-version": 1})
    assert info.value.args == (
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-queue-version' for queue 'v1' in vhost "
        f"'{vhost}': \"unsupported queue version '1'\"",
    )
