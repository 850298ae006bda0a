"""Headers tables in key order (RabbitMQ 4.x): the per-connection memory agrees with
the plain function, and sorting changes nothing but the top-level order."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands

from amqpbroker.broker.header_order import HEADERS_FLAG, HeaderOrder, sorted_properties
from amqpbroker.protocol import properties as props

KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
VALUES = st.one_of(st.integers(-(2**31), 2**31 - 1), st.text(max_size=5), st.booleans())
TABLES = st.dictionaries(KEYS, st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=3)))
# No deadline: a loaded CI machine makes single examples slow, not wrong.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _header(headers: dict[str, Any], size: int = 3) -> bytes:
    properties = commands.Basic.Properties(headers=headers, content_type="a/b", priority=1)
    return props.encode_header_payload(properties, size)


@RELAXED
@given(TABLES, st.integers(0, 2**40))
def test_sorting_keeps_everything_but_the_order(headers: dict[str, Any], size: int) -> None:
    header = _header(headers, size)
    assert header[12] & HEADERS_FLAG
    resorted = HeaderOrder().resorted(header)
    keys = [k.encode() for k in headers]
    if keys == sorted(keys):
        assert resorted is None
        return
    assert resorted is not None and resorted[:12] == header[:12]
    got = props.decode_properties(resorted)
    assert [k.encode() for k in got.headers] == sorted(keys)
    assert got.headers == props.decode_properties(header).headers  # nested order kept too
    assert (got.content_type, got.priority) == ("a/b", 1)


@RELAXED
@given(st.lists(TABLES, min_size=1, max_size=6), st.data())
def test_the_memory_agrees_with_the_function(tables: list[dict[str, Any]], data: Any) -> None:
    order = HeaderOrder()
    headers = [_header(t) for t in tables]
    for _ in range(10):
        header = data.draw(st.sampled_from(headers))
        if data.draw(st.booleans()):
            header = bytes(bytearray(header))  # equal bytes, another object
        expected = sorted_properties(header)
        assert order.resorted(header) == (None if expected is None else header[:12] + expected)
