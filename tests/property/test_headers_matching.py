"""Headers exchange routing against a reference model of RabbitMQ's algorithm.

The model transcribes RabbitMQ 3.10's ``headers_match/5`` as written: both tables sorted
by key and merged, clause by clause, with an all-flag and an any-flag.  Values are
compared through ``erlang_term``, a separate rendering of what the Erlang decoder makes
of each value, under Erlang's ``==`` (numbers compare across int and float).
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqpbroker import errors
from amqpbroker.broker.exchanges import HeadersExchange


def erlang_term(value: Any) -> Any:
    """How RabbitMQ holds a decoded top-level value: binaries, numbers, atoms; nested
    values keep their type tag (the Python type stands in for the AMQP one)."""
    if value is True or value is False:
        return ("atom", str(value).lower())
    if value is None:
        return ("atom", "undefined")
    if isinstance(value, str):
        return ("binary", value.encode())
    if isinstance(value, bytes):
        return ("binary", value)
    if isinstance(value, int | float):
        return ("number", value)  # Erlang: 1 == 1.0
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        return ("decimal", -int(exponent), sign, digits)
    if isinstance(value, datetime.datetime):
        return ("number", int(value.timestamp()))
    if isinstance(value, list):
        return ("list", [(type(item).__name__, tagged(item)) for item in value])
    if isinstance(value, dict):
        return ("list", [(key, type(item).__name__, tagged(item)) for key, item in value.items()])
    raise AssertionError(f"no model for {value!r}")


def tagged(value: Any) -> Any:
    # Inside a table or array the tag differs for int and float, so compare them apart.
    term = erlang_term(value)
    return (term[0], type(value).__name__, term[1:])


def model_match(args: dict[str, Any], headers: dict[str, Any]) -> bool:
    mode = args.get("x-match")
    kind = mode if mode in ("all", "any", "all-with-x", "any-with-x") else "all"
    with_x = kind.endswith("-with-x")
    is_all = kind.startswith("all")
    pattern = sorted(args.items())
    data = sorted(headers.items())
    all_match, any_match = True, False
    p = d = 0
    while True:
        if is_all and not all_match:
            return False
        if not is_all and any_match:
            return True
        if p == len(pattern):
            return all_match if is_all else any_match
        pkey, pvalue = pattern[p]
        if pkey == "x-match" or (pkey.startswith("x-") and not with_x):
            p += 1
            continue
        if d == len(data):
            all_match = False
            p = len(pattern)
            continue
        dkey, dvalue = data[d]
        if pkey > dkey:
            d += 1
        elif pkey < dkey:
            all_match = False
            p += 1
        elif pvalue is None or erlang_term(pvalue) == erlang_term(dvalue):
            any_match = True  # void in the binding: presence is enough
            p, d = p + 1, d + 1
        else:
            all_match = False
            p, d = p + 1, d + 1


def routed(exchange: HeadersExchange, headers: dict[str, Any] | None) -> set[object]:
    result = list(exchange.route("ignored", headers))
    assert len(result) == len(set(result)), "route() returned a duplicate destination"
    return set(result)


keys = st.sampled_from(["a", "b", "c", "x-a", "x-b"])
scalars = st.one_of(
    st.sampled_from(["1", "2", "a"]),
    st.sampled_from([b"1", b"a"]),
    st.integers(0, 2),
    st.sampled_from([0.0, 1.0, 2.5]),
    st.booleans(),
)
values = st.one_of(
    scalars,
    st.lists(st.sampled_from([1, 1.0, "1"]), max_size=2),
    st.dictionaries(st.sampled_from(["k"]), st.sampled_from([1, 1.0, "1"]), max_size=1),
)
modes = st.sampled_from([None, "all", "any", "all-with-x", "any-with-x"])


@st.composite
def binding_args(draw: st.DrawFn) -> dict[str, Any]:
    args = draw(st.dictionaries(keys, st.one_of(values, st.none()), max_size=4))
    mode = draw(modes)
    if mode is not None:
        args["x-match"] = mode
    return args


headers_st = st.dictionaries(
    st.one_of(keys, st.just("x-match")), st.one_of(values, st.none()), max_size=5
)


@settings(max_examples=200, deadline=None)
@given(
    bindings=st.lists(st.tuples(st.sampled_from(["q1", "q2", "q3"]), binding_args()), max_size=6),
    messages=st.lists(headers_st, min_size=1, max_size=6),
)
def test_routing_matches_model(
    bindings: list[tuple[str, dict[str, Any]]], messages: list[dict[str, Any]]
) -> None:
    exchange = HeadersExchange("h")
    for dest, args in bindings:
        exchange.bind(dest, "", args)
    for headers in messages:
        expected = {dest for dest, args in bindings if model_match(args, headers)}
        assert routed(exchange, headers) == expected, headers
    # No headers at all behaves as an empty table.
    assert routed(exchange, None) == {d for d, args in bindings if model_match(args, {})}


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.booleans(), st.sampled_from(["q1", "q2"]), binding_args()), max_size=12
    ),
    messages=st.lists(headers_st, min_size=1, max_size=4),
)
def test_bind_unbind_sequences_match_model(
    ops: list[tuple[bool, str, dict[str, Any]]], messages: list[dict[str, Any]]
) -> None:
    exchange = HeadersExchange("h")
    model: list[tuple[str, dict[str, Any]]] = []
    for is_bind, dest, args in ops:
        present = any(d == dest and _same_args(a, args) for d, a in model)
        if is_bind:
            assert exchange.bind(dest, "", args) == (not present)
            if not present:
                model.append((dest, args))
        else:
            assert exchange.unbind(dest, "", args) == present
            model = [(d, a) for d, a in model if not (d == dest and _same_args(a, args))]
        for headers in messages:
            expected = {d for d, a in model if model_match(a, headers)}
            assert routed(exchange, headers) == expected
    assert exchange.binding_count == len(model)


def _same_args(left: dict[str, Any], right: dict[str, Any]) -> bool:
    # Binding identity: same keys, values equal with their exact types.
    def exact(value: Any) -> Any:
        if isinstance(value, dict):
            return frozenset((k, exact(v)) for k, v in value.items())
        if isinstance(value, list):
            return tuple(exact(v) for v in value)
        return (type(value), value)

    return exact(left) == exact(right)


@pytest.mark.parametrize(
    ("args", "headers", "expected"),
    [
        ({"a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"}, True),  # all is the default
        ({"a": "1", "b": "2"}, {"a": "1"}, False),
        ({"x-match": "any", "a": "1", "b": "2"}, {"b": "2"}, True),
        ({"x-match": "any", "a": "1", "b": "2"}, {"a": "2", "b": "1"}, False),
        ({}, {}, True),  # all with nothing to compare matches everything
        ({"x-match": "all"}, {"a": "1"}, True),
        ({"x-match": "any"}, {"a": "1"}, False),  # any with nothing matches nothing
        ({"x-match": "all", "x-tenant": "t"}, {}, True),  # x- arguments are skipped...
        ({"x-match": "any", "x-tenant": "t"}, {"x-tenant": "t"}, False),
        ({"x-match": "all-with-x", "x-tenant": "t"}, {}, False),  # ...unless with-x
        ({"x-match": "all-with-x", "x-tenant": "t"}, {"x-tenant": "t"}, True),
        ({"x-match": "any-with-x", "x-tenant": "t", "a": "1"}, {"x-tenant": "t"}, True),
        ({"x-match": "any-with-x", "x-tenant": "t"}, {"x-tenant": "u"}, False),
        ({"x-match": "all-with-x"}, {"x-match": "all-with-x"}, True),  # x-match never compared
        ({"a": None}, {"a": "anything"}, True),  # void: presence only
        ({"a": None}, {"a": None}, True),
        ({"a": None}, {"b": None}, False),
        ({"a": "1"}, {"a": None}, False),
        ({"x-match": "any", "a": None, "b": "2"}, {"a": 5}, True),
        ({"a": "1"}, {"a": 1}, False),  # a string never equals a number
        ({"a": 1}, {"a": 1.0}, True),  # Erlang ==: numbers compare across int/float
        ({"a": 1}, {"a": True}, False),  # booleans are atoms, not 1/0
        ({"a": True}, {"a": True}, True),
        ({"a": "abc"}, {"a": b"abc"}, True),  # longstr and binary are both binaries
        ({"a": Decimal("1.0")}, {"a": Decimal("1.00")}, False),  # decimals keep their scale
        ({"a": Decimal("1.5")}, {"a": Decimal("1.5")}, True),
        ({"a": Decimal("1")}, {"a": 1}, False),
        ({"a": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)}, {"a": 1704067200}, True),
        ({"a": [1, "x"]}, {"a": [1, "x"]}, True),
        ({"a": [1]}, {"a": [1.0]}, False),  # nested values keep their type tags
        ({"a": {"k": 1, "j": 2}}, {"a": {"k": 1, "j": 2}}, True),
        ({"a": {"k": 1, "j": 2}}, {"a": {"j": 2, "k": 1}}, False),  # nested tables are ordered
        ({"a": {}}, {"a": []}, True),  # both are the empty Erlang list
        ({"a": {"k": 1}}, {"a": [1]}, False),
        ({"a": [{}]}, {"a": [[]]}, False),  # nested, the type tags differ
    ],
)
def test_edge_cases(args: dict[str, Any], headers: dict[str, Any], expected: bool) -> None:
    exchange = HeadersExchange("h")
    exchange.bind("q", "", args)
    assert routed(exchange, headers) == ({"q"} if expected else set())
    assert model_match(args, headers) is expected


def test_routing_key_is_ignored_and_destinations_are_not_repeated() -> None:
    exchange = HeadersExchange("h")
    exchange.bind("q", "k1", {"a": "1"})
    exchange.bind("q", "k2", {"x-match": "any", "a": "1"})
    assert list(exchange.route("whatever", {"a": "1"})) == ["q"]
    assert HeadersExchange.needs_headers


@pytest.mark.parametrize(
    ("x_match", "text"),
    [
        (
            "some",
            'Invalid x-match field value <<"some">>; expected all, any, all-with-x, or any-with-x',
        ),
        (
            "ALL",
            'Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x',
        ),
        (5, "Invalid x-match field type signedint (value 5); expected longstr"),
        (2**40, f"Invalid x-match field type long (value {2**40}); expected longstr"),
        (True, "Invalid x-match field type bool (value true); expected longstr"),
        (1.5, "Invalid x-match field type double (value 1.5); expected longstr"),
        (
            "tous",
            'Invalid x-match field value <<"tous">>; expected all, any, all-with-x, or any-with-x',
        ),
        (
            "alle-\u00e9",
            'Invalid x-match field value <<"alle-\u00e9"/utf8>>; '
            "expected all, any, all-with-x, or any-with-x",
        ),
        (b"all", 'Invalid x-match field type binary (value <<"all">>); expected longstr'),
        (None, "Invalid x-match field type void (value undefined); expected longstr"),
    ],
)
def test_invalid_x_match_is_refused_like_rabbitmq(x_match: object, text: str) -> None:
    exchange = HeadersExchange("h")
    with pytest.raises(errors.PreconditionFailed) as raised:
        exchange.bind("q", "", {"x-match": x_match, "a": "1"})
    assert raised.value.reply_code == 406
    assert raised.value.reply_text == f"PRECONDITION_FAILED - {text}"
    assert not exchange.has_bindings()
    assert routed(exchange, {"a": "1"}) == set()
