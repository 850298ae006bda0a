"""Topic exchange routing against an independent reference model, plus RabbitMQ's own cases.

The model is a plain recursive matcher over word lists, written from the AMQP rules
("*" one word, "#" zero or more) without the trie, the '#' collapsing or the result cache.
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqpbroker.broker.exchanges import TopicExchange


def model_words(key: str) -> tuple[str, ...]:
    # RabbitMQ: the empty key is zero words; otherwise every '.' separates two words.
    return () if key == "" else tuple(key.split("."))


@cache
def model_match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(model_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and model_match(rest, words[1:])


def model_route(bindings: set[tuple[str, str]], routing_key: str) -> set[str]:
    words = model_words(routing_key)
    return {dest for dest, key in bindings if model_match(model_words(key), words)}


def routed(exchange: TopicExchange, routing_key: str) -> set[object]:
    result = exchange.route(routing_key, None)
    as_list = list(result)
    assert len(as_list) == len(set(as_list)), "route() returned a duplicate destination"
    return set(as_list)


# Small alphabets so that random keys and patterns actually meet; "" makes empty words.
routing_words = st.sampled_from(["a", "b", "c", ""])
binding_words = st.sampled_from(["a", "b", "c", "", "*", "#"])
routing_keys = st.lists(routing_words, max_size=5).map(".".join)
binding_keys = st.lists(binding_words, max_size=5).map(".".join)
destinations = st.sampled_from(["q1", "q2", "q3", "q4"])


@settings(max_examples=300, deadline=None)
@given(
    bindings=st.sets(st.tuples(destinations, binding_keys), max_size=12),
    keys=st.lists(routing_keys, min_size=1, max_size=8),
)
def test_routing_matches_model(bindings: set[tuple[str, str]], keys: list[str]) -> None:
    exchange = TopicExchange("t")
    for dest, key in bindings:
        assert exchange.bind(dest, key, {})
    for key in keys:
        assert routed(exchange, key) == model_route(bindings, key), key


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.booleans(), destinations, binding_keys, st.sampled_from([{}, {"v": 1}])),
        max_size=20,
    ),
    keys=st.lists(routing_keys, min_size=1, max_size=5),
)
def test_bind_unbind_sequences_match_model(
    ops: list[tuple[bool, str, str, dict[str, int]]], keys: list[str]
) -> None:
    exchange = TopicExchange("t")
    model: set[tuple[str, str, int]] = set()  # (destination, key, which arguments)
    for is_bind, dest, key, args in ops:
        entry = (dest, key, len(args))
        if is_bind:
            assert exchange.bind(dest, key, args) == (entry not in model)
            model.add(entry)
        else:
            assert exchange.unbind(dest, key, args) == (entry in model)
            model.discard(entry)
        # Route after every change: a stale cached result must not survive a binding change.
        plain = {(d, k) for d, k, _ in model}
        for routing_key in keys:
            assert routed(exchange, routing_key) == model_route(plain, routing_key)
        assert exchange.binding_count == len(model)
    for dest, key, arg_count in list(model):
        assert exchange.unbind(dest, key, {"v": 1} if arg_count else {})
    assert not exchange.has_bindings()
    assert exchange.node_count() == 1, "unbinding everything must prune the trie"
    for routing_key in keys:
        assert routed(exchange, routing_key) == set()


# The binding table and expectations of RabbitMQ's own topic exchange test (unit_SUITE).
RABBITMQ_BINDINGS = [
    ("a.b.c", "t1"),
    ("a.*.c", "t2"),
    ("a.#.b", "t3"),
    ("a.b.b.c", "t4"),
    ("#", "t5"),
    ("#.#", "t6"),
    ("#.b", "t7"),
    ("*.*", "t8"),
    ("a.*", "t9"),
    ("*.b.c", "t10"),
    ("a.#", "t11"),
    ("a.#.#", "t12"),
    ("b.b.c", "t13"),
    ("a.b.b", "t14"),
    ("a.b", "t15"),
    ("b.c", "t16"),
    ("", "t17"),
    ("*.*.*", "t18"),
    ("vodka.martini", "t19"),
    ("a.b.c", "t20"),
    ("*.#", "t21"),
    ("#.*.#", "t22"),
    ("*.#.#", "t23"),
    ("#.#.#", "t24"),
    ("*", "t25"),
    ("#.b.#", "t26"),
]
RABBITMQ_ARGS_BINDINGS: list[tuple[str, str, dict[str, str]]] = [
    ("args-test", "t27", {"foo": "bar"}),
    ("args-test", "t27", {"foo": "baz"}),
]


def _expect(*names: int) -> set[str]:
    return {f"t{n}" for n in names}


RABBITMQ_BEFORE = {
    "a.b.c": _expect(1, 2, 5, 6, 10, 11, 12, 18, 20, 21, 22, 23, 24, 26),
    "a.b": _expect(3, 5, 6, 7, 8, 9, 11, 12, 15, 21, 22, 23, 24, 26),
    "a.b.b": _expect(3, 5, 6, 7, 11, 12, 14, 18, 21, 22, 23, 24, 26),
    "": _expect(5, 6, 17, 24),
    "b.c.c": _expect(5, 6, 18, 21, 22, 23, 24, 26),
    "a.a.a.a.a": _expect(5, 6, 11, 12, 21, 22, 23, 24),
    "vodka.gin": _expect(5, 6, 8, 21, 22, 23, 24),
    "vodka.martini": _expect(5, 6, 8, 19, 21, 22, 23, 24),
    "b.b.c": _expect(5, 6, 10, 13, 18, 21, 22, 23, 24, 26),
    "nothing.here.at.all": _expect(5, 6, 21, 22, 23, 24),
    "oneword": _expect(5, 6, 21, 22, 23, 24, 25),
    "args-test": _expect(5, 6, 21, 22, 23, 24, 25, 27),
}
RABBITMQ_AFTER = {
    "a.b.c": _expect(2, 6, 10, 12, 18, 20, 22, 23, 24, 26),
    "a.b": _expect(3, 6, 7, 8, 9, 12, 15, 22, 23, 24, 26),
    "a.b.b": _expect(3, 6, 7, 12, 14, 18, 22, 23, 24, 26),
    "": _expect(6, 17, 24),
    "b.c.c": _expect(6, 18, 22, 23, 24, 26),
    "a.a.a.a.a": _expect(6, 12, 22, 23, 24),
    "vodka.gin": _expect(6, 8, 22, 23, 24),
    "vodka.martini": _expect(6, 8, 22, 23, 24),
    "b.b.c": _expect(6, 10, 13, 18, 22, 23, 24, 26),
    "nothing.here.at.all": _expect(6, 22, 23, 24),
    "oneword": _expect(6, 22, 23, 24, 25),
    # t27 stays: only one of its two aliasing bindings was removed.
    "args-test": _expect(6, 22, 23, 24, 25, 27),
}


def test_rabbitmq_topic_suite() -> None:
    exchange = TopicExchange("t")
    for key, dest in RABBITMQ_BINDINGS:
        assert exchange.bind(dest, key, {})
    for key, dest, args in RABBITMQ_ARGS_BINDINGS:
        assert exchange.bind(dest, key, args)
    for routing_key, expected in RABBITMQ_BEFORE.items():
        assert routed(exchange, routing_key) == expected, routing_key
    # RabbitMQ removes bindings number 1, 5, 11, 19, 21 and 28 (1-based).
    table: list[tuple[str, str, dict[str, str]]] = [
        (key, dest, {}) for key, dest in RABBITMQ_BINDINGS
    ]
    table += RABBITMQ_ARGS_BINDINGS
    for number in (1, 5, 11, 19, 21, 28):
        key, dest, args = table[number - 1]
        assert exchange.unbind(dest, key, args)
    for routing_key, expected in RABBITMQ_AFTER.items():
        assert routed(exchange, routing_key) == expected, routing_key
    for _, dest, _ in table:
        exchange.unbind_destination(dest)
    for routing_key in ("a.b.c", "b.b.c", ""):
        assert routed(exchange, routing_key) == set()


@pytest.mark.parametrize(
    ("binding_key", "routing_key", "expected"),
    [
        ("", "", True),  # the empty key is zero words...
        ("#", "", True),  # ...which '#' accepts
        ("#.#", "", True),
        ("*", "", False),  # ...and '*' needs one
        ("", ".", False),  # "." is two empty words
        ("*", ".", False),
        ("*.*", ".", True),
        ("a.*", "a.", True),  # a trailing dot makes an empty last word
        ("a", "a.", False),
        ("a.*.b", "a..b", True),  # empty words in the middle are words
        ("a..b", "a..b", True),
        ("a.b", "a..b", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.b.c", False),
        ("a.#", "a", True),
        ("#.a", "a", True),
        ("#.*", "", False),
        ("#.*.#", "x", True),
        ("*.*", "a", False),
        ("*.*", "a.b.c", False),
        ("*", "*", True),  # wildcards in a routing key are plain words
        ("a", "*", False),
        ("#", "#", True),
        ("a", "#", False),
        ("#.#", "a.b.c", True),
    ],
)
def test_edge_cases(binding_key: str, routing_key: str, expected: bool) -> None:
    exchange = TopicExchange("t")
    exchange.bind("q", binding_key, {})
    assert routed(exchange, routing_key) == ({"q"} if expected else set())
    # The reference model agrees, so the property tests rest on the same rules.
    assert model_match(model_words(binding_key), model_words(routing_key)) is expected


def test_destination_matched_by_several_patterns_is_routed_once() -> None:
    exchange = TopicExchange("t")
    for key in ("a.b", "a.*", "#", "*.b", "a.#"):
        exchange.bind("q", key, {})
    exchange.bind("other", "x", {})
    assert list(exchange.route("a.b", None)) == ["q"]


def test_route_result_reflects_later_bindings_and_earlier_results_stay_intact() -> None:
    exchange = TopicExchange("t")
    exchange.bind("q1", "a.*", {})
    first = exchange.route("a.b", None)
    assert set(first) == {"q1"}
    exchange.bind("q2", "#.b", {})  # must invalidate the cached result for "a.b"
    assert routed(exchange, "a.b") == {"q1", "q2"}
    assert set(first) == {"q1"}, "a result handed out earlier must not change under the caller"
    exchange.unbind("q1", "a.*", {})
    assert routed(exchange, "a.b") == {"q2"}


@pytest.mark.timeout(10)
def test_pathological_pattern_stays_fast() -> None:
    # Without remembering visited '#' states this walk is combinatorial in the number
    # of '#' words (years for this one); one such binding would stall every publish on
    # the exchange. With it, milliseconds: the timeout fails the test, not a stopwatch.
    exchange = TopicExchange("t")
    exchange.bind("slow", ".".join(["#", "a"] * 40 + ["#"]), {})
    exchange.bind("never", ".".join(["#", "a"] * 40 + ["b"]), {})
    key = ".".join(["a"] * 120)
    assert routed(exchange, key) == {"slow"}
    assert routed(exchange, key + ".c") == {"slow"}
    assert routed(exchange, ".".join(["a"] * 39)) == set()


def test_many_bindings_route_like_the_model() -> None:
    # A deterministic 10,000-binding exchange: the trie must agree with the model.
    exchange = TopicExchange("t")
    bindings = set()
    for n in range(10_000):
        key = f"region{n % 10}.service{n % 100}.item{n}"
        if n % 250 == 0:
            key = f"region{n % 10}.*.#"
        bindings.add((f"q{n}", key))
        exchange.bind(f"q{n}", key, {})
    for routing_key in ("region3.service13.item213", "region3.none", "nowhere", ""):
        assert routed(exchange, routing_key) == model_route(bindings, routing_key)
