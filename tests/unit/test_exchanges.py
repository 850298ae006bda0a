"""Direct, fanout and default exchanges, binding identity, and the exchange type registry."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest

from amqpbroker import errors
from amqpbroker.broker.exchanges import (
    EXCHANGE_TYPES,
    DefaultExchange,
    DirectExchange,
    Exchange,
    FanoutExchange,
    HeadersExchange,
    TopicExchange,
    make_exchange,
)


class Queue:
    """Stands in for the broker's queue: hashable by identity, like the real one."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"


def routed(exchange: Exchange, routing_key: str, headers: dict[str, Any] | None = None) -> set:
    result = list(exchange.route(routing_key, headers))
    assert len(result) == len(set(result)), "route() returned a duplicate destination"
    return set(result)


# -- direct -----------------------------------------------------------------------


def test_direct_routes_on_exact_key_only() -> None:
    exchange = DirectExchange("d")
    q1, q2, q3 = Queue("q1"), Queue("q2"), Queue("q3")
    exchange.bind(q1, "red", {})
    exchange.bind(q2, "red", {})
    exchange.bind(q3, "green", {})
    assert routed(exchange, "red") == {q1, q2}
    assert routed(exchange, "green") == {q3}
    assert routed(exchange, "Red") == set()
    assert routed(exchange, "") == set()
    assert routed(exchange, "red.x") == set()


def test_direct_empty_routing_key_is_a_key_like_any_other() -> None:
    exchange = DirectExchange("d")
    exchange.bind("q", "", {})
    assert routed(exchange, "") == {"q"}
    assert routed(exchange, "a") == set()


def test_bind_and_unbind_report_whether_anything_changed() -> None:
    exchange = DirectExchange("d")
    assert exchange.bind("q", "k", {}) is True
    assert exchange.bind("q", "k", {}) is False  # same binding: a no-op
    assert exchange.binding_count == 1
    assert exchange.unbind("q", "k", {}) is True
    assert exchange.unbind("q", "k", {}) is False
    assert exchange.unbind("never", "k", {}) is False
    assert not exchange.has_bindings()
    assert routed(exchange, "k") == set()


def test_bindings_differing_only_in_arguments_are_distinct_but_route_once() -> None:
    exchange = DirectExchange("d")
    assert exchange.bind("q", "k", {"a": 1})
    assert exchange.bind("q", "k", {"a": 2})
    assert exchange.bind("q", "k", {})
    assert exchange.binding_count == 3
    assert list(exchange.route("k", None)) == ["q"]
    # The queue stays routed until its last binding on the key goes.
    assert exchange.unbind("q", "k", {"a": 1})
    assert exchange.unbind("q", "k", {})
    assert routed(exchange, "k") == {"q"}
    assert exchange.has_destination("q")
    assert exchange.unbind("q", "k", {"a": 2})
    assert routed(exchange, "k") == set()
    assert not exchange.has_destination("q")


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ({"a": 1, "b": "x"}, {"b": "x", "a": 1}, True),  # key order does not matter
        ({}, None, True),  # no arguments at all is the empty table
        ({"a": {"n": [1, {"m": "v"}]}}, {"a": {"n": [1, {"m": "v"}]}}, True),  # nested
        ({"a": 1}, {"a": 1.0}, False),  # exact types, as RabbitMQ compares binding args
        ({"a": 1}, {"a": True}, False),
        ({"a": "1"}, {"a": b"1"}, False),
        ({"a": [1, 2]}, {"a": [2, 1]}, False),
        ({"a": {"n": 1}}, {"a": {"n": 2}}, False),
    ],
)
def test_binding_identity_includes_arguments(
    first: dict[str, Any], second: dict[str, Any] | None, same: bool
) -> None:
    exchange = DirectExchange("d")
    assert exchange.bind("q", "k", first)
    assert exchange.bind("q", "k", second) is not same
    assert exchange.binding_count == (1 if same else 2)
    assert exchange.unbind("q", "k", second)
    assert exchange.has_bindings() is not same


def test_arguments_are_copied_and_listed_as_sent() -> None:
    exchange = DirectExchange("d")
    args: dict[str, Any] = {"a": [1, 2], "b": {"c": "d"}}
    exchange.bind("q", "k", args)
    exchange.bind("q", "k2", None)
    args["x"] = 1  # a caller mutating its dict afterwards must not change the binding
    assert list(exchange.bindings()) == [
        ("q", "k", {"a": [1, 2], "b": {"c": "d"}}),
        ("q", "k2", {}),
    ]
    assert exchange.unbind("q", "k", {"a": [1, 2], "b": {"c": "d"}})


def test_route_result_is_a_snapshot() -> None:
    exchange = DirectExchange("d")
    exchange.bind("q1", "k", {})
    before = exchange.route("k", None)
    exchange.bind("q2", "k", {})
    exchange.unbind("q1", "k", {})
    assert set(before) == {"q1"}
    assert routed(exchange, "k") == {"q2"}


# -- fanout -------------------------------------------------------------------------


def test_fanout_ignores_the_routing_key() -> None:
    exchange = FanoutExchange("f")
    q1, q2 = Queue("q1"), Queue("q2")
    assert routed(exchange, "anything") == set()
    exchange.bind(q1, "", {})
    exchange.bind(q2, "some-key", {})
    exchange.bind(q2, "other-key", {})
    for key in ("", "some-key", "x.y"):
        assert routed(exchange, key) == {q1, q2}
    exchange.unbind(q2, "some-key", {})
    assert routed(exchange, "x") == {q1, q2}  # q2 still bound by "other-key"
    exchange.unbind(q2, "other-key", {})
    assert routed(exchange, "x") == {q1}


# -- every type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "key", "headers"),
    [
        (DirectExchange, "k", None),
        (FanoutExchange, "k", None),
        (TopicExchange, "k", None),
        (HeadersExchange, "", {"h": "v"}),
    ],
)
def test_unbind_destination_drops_every_binding_of_that_destination(
    cls: type[Exchange], key: str, headers: dict[str, Any] | None
) -> None:
    exchange = cls("x")
    doomed, kept = Queue("doomed"), Queue("kept")
    args = {"h": "v"} if headers else {}
    exchange.bind(doomed, key, args)
    exchange.bind(doomed, key, {**args, "extra": 1})
    exchange.bind(doomed, "#" if cls is TopicExchange else key, {**args, "more": 2})
    exchange.bind(kept, key, args)
    assert routed(exchange, key, headers) == {doomed, kept}
    assert exchange.unbind_destination(doomed) == 3
    assert exchange.unbind_destination(doomed) == 0
    assert not exchange.has_destination(doomed)
    assert exchange.has_destination(kept)
    assert routed(exchange, key, headers) == {kept}
    assert [dest for dest, _, _ in exchange.bindings()] == [kept]
    assert exchange.binding_count == 1
    assert exchange.unbind_destination(kept) == 1
    assert not exchange.has_bindings()
    assert routed(exchange, key, headers) == set()


def test_exchange_can_be_a_destination() -> None:
    # exchange.bind: exchanges are bound to exchanges like queues are.
    source, target = TopicExchange("src"), FanoutExchange("dst")
    source.bind(target, "a.*", {})
    assert routed(source, "a.b") == {target}
    assert source.unbind_destination(target) == 1


def test_exchange_attributes() -> None:
    exchange = DirectExchange(
        "d", durable=True, auto_delete=True, internal=True, arguments={"alternate-exchange": "ae"}
    )
    assert (exchange.name, exchange.durable, exchange.auto_delete, exchange.internal) == (
        "d",
        True,
        True,
        True,
    )
    assert exchange.arguments == {"alternate-exchange": "ae"}
    plain = FanoutExchange("f")
    assert (plain.durable, plain.auto_delete, plain.internal, plain.arguments) == (
        False,
        False,
        False,
        {},
    )
    assert [cls.needs_headers for cls in (DirectExchange, FanoutExchange, TopicExchange)] == [
        False,
        False,
        False,
    ]
    assert HeadersExchange.needs_headers is True


# -- default exchange ---------------------------------------------------------------


def test_default_exchange_routes_to_the_queue_named_by_the_key() -> None:
    queues: dict[str, Hashable] = {"orders": Queue("orders")}
    exchange = DefaultExchange(queues.get)
    assert routed(exchange, "orders") == {queues["orders"]}
    assert routed(exchange, "missing") == set()
    queues["late"] = Queue("late")  # declared afterwards: routable at once
    assert routed(exchange, "late") == {queues["late"]}
    del queues["orders"]
    assert routed(exchange, "orders") == set()
    assert (exchange.name, exchange.type_name, exchange.durable) == ("", "direct", True)


@pytest.mark.parametrize("operation", ["bind", "unbind"])
def test_default_exchange_refuses_binding_changes(operation: str) -> None:
    exchange = DefaultExchange(lambda name: None)
    with pytest.raises(errors.AccessRefused) as raised:
        getattr(exchange, operation)(Queue("q"), "q", {})
    assert raised.value.reply_code == 403
    assert raised.value.reply_text == (
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    )
    assert not exchange.has_bindings()


# -- registry -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "cls"),
    [
        ("direct", DirectExchange),
        ("fanout", FanoutExchange),
        ("topic", TopicExchange),
        ("headers", HeadersExchange),
    ],
)
def test_make_exchange_builds_each_type(type_name: str, cls: type[Exchange]) -> None:
    assert EXCHANGE_TYPES[type_name] is cls
    exchange = make_exchange(type_name, "x", durable=True, arguments={"a": 1})
    assert type(exchange) is cls
    assert (exchange.name, exchange.type_name, exchange.durable) == ("x", type_name, True)
    assert exchange.arguments == {"a": 1}


def test_registry_has_exactly_the_four_amqp_types() -> None:
    assert sorted(EXCHANGE_TYPES) == ["direct", "fanout", "headers", "topic"]


@pytest.mark.parametrize("type_name", ["foo", "x-consistent-hash", "Direct", ""])
def test_unknown_exchange_type_is_command_invalid(type_name: str) -> None:
    with pytest.raises(errors.CommandInvalid) as raised:
        make_exchange(type_name, "x")
    assert raised.value.reply_code == 503
    assert raised.value.reply_text == f"COMMAND_INVALID - unknown exchange type '{type_name}'"
    assert isinstance(raised.value, errors.AMQPConnectionError)
