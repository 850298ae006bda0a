"""The publish path's cheap checks agree with the general ones they stand in for:

- tables.check_table (validation without decoding, the publish-time check of the headers
  table) raises exactly when decode_table would, for well-formed tables, damaged ones
  (bytes changed, cut, inserted) and random bytes;
- reply_to.may_request (a byte search) is never False for a message whose reply_to is
  ``amq.rabbitmq.reply-to``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_codec import SLOW, _pamqp_header, basic_properties, typed_tables, u64  # on sys.path

from amqpbroker import errors
from amqpbroker.broker import reply_to
from amqpbroker.protocol import properties, tables


def _verdicts(data: bytes) -> tuple[bool, bool]:
    """(decode_table raised, check_table raised) for one table body."""
    try:
        tables.decode_table(data)
        decoded = True
    except errors.FrameError:
        decoded = False
    try:
        tables.check_table(data)
        checked = True
    except errors.FrameError:
        checked = False
    return decoded, checked


@SLOW
@given(typed_tables, st.data())
def test_check_agrees_with_decode_on_damaged_tables(table: dict[str, Any], data: Any) -> None:
    body = tables.encode_table(table)[4:]
    decoded, checked = _verdicts(body)
    assert decoded and checked
    if not body:
        return
    at = data.draw(st.integers(0, len(body) - 1))
    damage = data.draw(st.sampled_from(["set", "cut", "insert"]))
    if damage == "set":
        body = body[:at] + bytes((data.draw(st.integers(0, 255)),)) + body[at + 1 :]
    elif damage == "cut":
        body = body[:at]
    else:
        body = body[:at] + data.draw(st.binary(min_size=1, max_size=4)) + body[at:]
    decoded, checked = _verdicts(body)
    assert decoded == checked, body


@SLOW
@given(st.binary(max_size=64))
def test_check_agrees_with_decode_on_random_bytes(body: bytes) -> None:
    decoded, checked = _verdicts(body)
    assert decoded == checked


@pytest.mark.parametrize(
    "body",
    [
        b"\x01k\xff\xfe",  # unknown tag
        b"\x02\xff\xfeS\x00\x00\x00\x00",  # key not UTF-8
        b"\x01kS\x00\x00\x00\x09ab",  # long string past the end
        b"\x01kt",  # boolean without its octet
        b"\x01kA\x00\x00\x00\x01V",  # an array holding a void: fine
    ],
)
def test_check_and_decode_agree_on_known_cases(body: bytes) -> None:
    decoded, checked = _verdicts(body)
    assert decoded == checked


def test_nesting_deeper_than_the_limit_fails_both() -> None:
    body = b"V"
    for _ in range(tables.MAX_TABLE_DEPTH + 2):
        body = b"A" + len(body).to_bytes(4, "big") + body
    table = b"\x01k" + body
    assert _verdicts(table) == (False, False)


@SLOW
@given(basic_properties(), u64, st.booleans())
def test_reply_to_precheck_never_misses_a_direct_reply_to_request(
    props: Any, size: int, direct: bool
) -> None:
    if direct:
        props.reply_to = reply_to.REPLY_TO
    payload = _pamqp_header(props, size)
    if not reply_to.may_request(payload):
        assert properties.scan_properties(payload).reply_to != reply_to.REPLY_TO
    if direct:
        assert reply_to.may_request(payload)


@SLOW
@given(basic_properties(), u64)
def test_check_headers_agrees_with_decoding_them(props: Any, size: int) -> None:
    view = properties.scan_properties(_pamqp_header(props, size))
    view.check_headers()  # well-formed: no error, and the table stays undecoded
    assert view.headers == properties.scan_properties(_pamqp_header(props, size)).headers
