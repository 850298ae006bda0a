"""Property suite for the frame codec: ours against pamqp, and against itself.

* any sequence of frames, cut at any byte boundaries, comes out of FrameReader
  exactly as it went in;
* every hand-written encoder and decoder agrees with pamqp both ways;
* scan_properties / decode_properties agree with pamqp on every property;
* the field-table codec reads what pamqp reads and writes back the same bytes;
* random bytes never raise anything but an AMQPError.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import math
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pamqp import base, commands, decode, encode, frame, header

from amqpbroker import errors
from amqpbroker.protocol import basic_codec, framing, method_codec, properties, tables
from amqpbroker.protocol.reader import FrameReader

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=400, deadline=None)


def _fit255(text: str) -> str:
    """Cut to at most 255 UTF-8 bytes without splitting a character."""
    return text.encode()[:255].decode("utf-8", "ignore")


shortstrs = st.one_of(
    st.text(max_size=300).map(_fit255),
    st.just("x" * 255),
    st.just("é" * 127 + "a"),  # exactly 255 bytes, non-ASCII
    st.just(""),
)
u64 = st.integers(0, 2**64 - 1)
s63 = st.integers(0, 2**63 - 1)  # pamqp's longlong is signed
channels = st.integers(0, 65535)


def _norm(value: Any) -> Any:
    """Compare decoded values by kind as well as value (True == 1 otherwise)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else float(value))
    if isinstance(value, dict):
        # Order-insensitive (pamqp sorts keys); byte-level tests check our order.
        return ("dict", sorted((k, repr(_norm(v))) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", [_norm(v) for v in value])
    if isinstance(value, datetime.datetime):
        return ("datetime", value.timestamp())
    return (type(value).__name__, value)


def _pamqp_marshal(channel: int, method: base.Frame) -> bytes:
    """pamqp's own marshal, minus its name validation (a regex RabbitMQ lacks)."""
    cls = type(method)
    lax = type(cls.__name__, (cls,), {"validate": lambda self: None})
    copy = lax.__new__(lax)
    for name in cls.__slots__:
        setattr(copy, name, getattr(method, name))
    return frame.marshal(copy, channel)


def _pamqp_unmarshal(raw: bytes) -> tuple[int, Any]:
    _, channel, value = frame.unmarshal(raw)
    return channel, value


# ---------------------------------------------------------------- frame reader


def _frame_strategy() -> st.SearchStrategy[tuple[int, int, bytes]]:
    return st.one_of(
        st.tuples(st.just(1), channels, st.binary(min_size=4, max_size=200)),
        st.tuples(st.just(2), channels, st.binary(min_size=12, max_size=100)),
        st.tuples(st.just(3), channels, st.binary(max_size=3000)),
        st.tuples(st.just(8), channels, st.just(b"")),
    )


@FAST
@given(
    frame_list=st.lists(_frame_strategy(), max_size=25),
    cuts=st.lists(st.integers(0, 100_000), max_size=40),
)
def test_frames_survive_any_chunking(
    frame_list: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(framing.encode_frame(*f) for f in frame_list)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    reader = FrameReader(frame_max=4096)
    got = []
    for start, stop in itertools.pairwise(bounds):
        reader.feed(stream[start:stop])
        while (f := reader.next_frame()) is not None:
            got.append(f)
    assert got == frame_list
    assert reader.buffered == 0


@FAST
@given(st.lists(_frame_strategy(), max_size=10))
def test_encode_frame_matches_pamqp_framing(frame_list: list[tuple[int, int, bytes]]) -> None:
    for frame_type, channel, payload in frame_list:
        raw = framing.encode_frame(frame_type, channel, payload)
        assert raw == struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"
        if frame_type == 3 and payload:  # pamqp cannot unmarshal an empty body frame
            chan, body = _pamqp_unmarshal(raw)
            assert (chan, body.value) == (channel, payload)


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(0, 5000))
def test_reader_never_raises_anything_but_amqp_errors(chunks: list[bytes], frame_max: int) -> None:
    reader = FrameReader(frame_max)
    try:
        for chunk in chunks:
            reader.feed(chunk)
            while reader.next_frame() is not None:
                pass
    except errors.AMQPError as exc:
        assert exc.reply_code == 501


@FAST
@given(size=st.integers(0, 5_000_000), frame_max=st.integers(4096, 200_000))
def test_oversized_frames_are_refused_before_the_payload(size: int, frame_max: int) -> None:
    reader = FrameReader(frame_max)
    reader.feed(struct.pack(">BHI", 3, 1, size))
    if size > frame_max:  # RabbitMQ lets a payload of up to frame_max through
        try:
            reader.next_frame()
        except errors.FrameError as exc:
            assert f"{{frame_too_large,{size},{frame_max - 8}}}" in exc.text
        else:
            raise AssertionError("oversized frame accepted")
    else:
        assert reader.next_frame() is None  # waits for the payload


# ---------------------------------------------------------- hot-path methods


@FAST
@given(shortstrs, shortstrs, st.booleans(), st.booleans(), st.integers(0, 65535))
def test_decode_publish_agrees_with_pamqp(
    exchange: str, routing_key: str, mandatory: bool, immediate: bool, ticket: int
) -> None:
    method = method_codec.make_method(
        commands.Basic.Publish,
        ticket=ticket,
        exchange=exchange,
        routing_key=routing_key,
        mandatory=mandatory,
        immediate=immediate,
    )
    raw = _pamqp_marshal(1, method)
    assert raw == method_codec.encode_method(1, method)
    assert basic_codec.decode_publish(raw[7:-1]) == (exchange, routing_key, mandatory, immediate)
    decoded = method_codec.decode_method(raw[7:-1])
    assert dict(decoded) == dict(method)


@FAST
@given(u64, st.booleans(), st.booleans())
def test_ack_nack_reject_agree_with_pamqp(tag: int, first: bool, second: bool) -> None:
    ack = basic_codec.encode_basic_ack(2, tag, first)
    nack = basic_codec.encode_basic_nack(2, tag, first, second)
    # pamqp reads the unsigned 64-bit tag as signed: compare modulo 2**64.
    for raw, cls, fields in (
        (ack, commands.Basic.Ack, (first,)),
        (nack, commands.Basic.Nack, (first, second)),
    ):
        channel, method = _pamqp_unmarshal(raw)
        assert channel == 2 and type(method) is cls
        assert method.delivery_tag % 2**64 == tag
        assert (
            method.multiple,
            *([method.requeue] if cls is commands.Basic.Nack else []),
        ) == fields
    assert basic_codec.decode_ack(ack[7:-1]) == (tag, first)
    assert basic_codec.decode_nack(nack[7:-1]) == (tag, first, second)
    if tag < 2**63:
        assert ack == frame.marshal(commands.Basic.Ack(tag, first), 2)
        assert nack == frame.marshal(commands.Basic.Nack(tag, first, second), 2)
        reject = frame.marshal(commands.Basic.Reject(tag, first), 2)
        assert basic_codec.decode_reject(reject[7:-1]) == (tag, first)


@FAST
@given(channels, shortstrs, u64, st.booleans(), shortstrs, shortstrs)
def test_encode_deliver_agrees_with_pamqp(
    channel: int, ctag: str, tag: int, redelivered: bool, exchange: str, routing_key: str
) -> None:
    raw = basic_codec.encode_deliver(channel, ctag, tag, redelivered, exchange, routing_key)
    got_channel, method = _pamqp_unmarshal(raw)
    assert got_channel == channel and isinstance(method, commands.Basic.Deliver)
    assert (method.consumer_tag, method.redelivered) == (ctag, redelivered)
    assert (method.exchange, method.routing_key) == (exchange, routing_key)
    assert method.delivery_tag % 2**64 == tag
    assert method_codec.decode_method(raw[7:-1]).delivery_tag == tag
    if tag < 2**63:
        built = method_codec.make_method(
            commands.Basic.Deliver,
            consumer_tag=ctag,
            delivery_tag=tag,
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
        )
        assert raw == _pamqp_marshal(channel, built)


@FAST
@given(channels, s63, st.booleans(), shortstrs, shortstrs, st.integers(0, 2**32 - 1))
def test_encode_get_ok_agrees_with_pamqp(
    channel: int, tag: int, redelivered: bool, exchange: str, routing_key: str, count: int
) -> None:
    raw = basic_codec.encode_get_ok(channel, tag, redelivered, exchange, routing_key, count)
    built = method_codec.make_method(
        commands.Basic.GetOk,
        delivery_tag=tag,
        redelivered=redelivered,
        exchange=exchange,
        routing_key=routing_key,
        message_count=count,
    )
    assert raw == _pamqp_marshal(channel, built)
    assert dict(_pamqp_unmarshal(raw)[1]) == dict(built)


@FAST
@given(channels, st.integers(0, 65535), shortstrs, shortstrs, shortstrs)
def test_encode_return_agrees_with_pamqp(
    channel: int, code: int, text: str, exchange: str, routing_key: str
) -> None:
    raw = basic_codec.encode_return(channel, code, text, exchange, routing_key)
    built = method_codec.make_method(
        commands.Basic.Return,
        reply_code=code,
        reply_text=text,
        exchange=exchange,
        routing_key=routing_key,
    )
    assert raw == _pamqp_marshal(channel, built)
    assert dict(_pamqp_unmarshal(raw)[1]) == dict(built)


# ------------------------------------------------------------ generic methods

# Values pamqp can both encode and decode to an equal value (its float is 32-bit
# and its integers re-typed, so keep those exact), for method tables.
pamqp_leaves = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=20),
    st.none(),
    st.binary(max_size=10).map(bytearray),
    st.builds(
        lambda m, s: decimal.Decimal(f"{m}E-{s}"),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 30),
    ),
)
pamqp_tables = st.dictionaries(
    st.text(max_size=10).map(_fit255),
    st.recursive(
        pamqp_leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)

_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "bit": st.booleans(),
    "octet": st.integers(0, 255),
    "short": st.integers(0, 65535),
    "long": st.integers(0, 2**32 - 1),
    "longlong": s63,
    "shortstr": shortstrs,
    "longstr": st.text(max_size=50),
    "table": pamqp_tables,
}

method_classes = st.sampled_from(sorted(commands.INDEX_MAPPING.items()))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Basic.RecoverAsync
@SLOW
@given(method_classes, st.data())
def test_every_method_agrees_with_pamqp_both_ways(
    entry: tuple[int, type[base.Frame]], data: st.DataObject
) -> None:
    index, cls = entry
    fields = {
        name: data.draw(_FIELD_VALUES[cls.amqp_type(name)], label=name) for name in cls.__slots__
    }
    method = method_codec.make_method(cls, **fields)
    ours = method_codec.encode_method(9, method)
    theirs = _pamqp_marshal(9, method)
    # pamqp decodes our bytes and we decode pamqp's to the same fields.
    assert _norm(dict(_pamqp_unmarshal(ours)[1])) == _norm(fields)
    decoded = method_codec.decode_method(theirs[7:-1])
    assert type(decoded) is cls and framing.method_key(theirs[7:-1]) == index
    assert _norm(dict(decoded)) == _norm(fields)
    # Tables aside (pamqp re-types their values), the bytes are identical.
    if not any(cls.amqp_type(n) == "table" and fields[n] for n in cls.__slots__):
        assert ours == theirs


@FUZZ
@given(st.binary(max_size=64))
def test_decode_method_random_bytes(payload: bytes) -> None:
    try:
        method_codec.decode_method(payload)
    except errors.AMQPError as exc:
        assert exc.reply_code in (501, 540)


@FUZZ
@given(st.sampled_from(sorted(commands.INDEX_MAPPING)), st.binary(max_size=64))
def test_decode_method_garbage_fields(index: int, tail: bytes) -> None:
    payload = struct.pack(">I", index) + tail
    try:
        method = method_codec.decode_method(payload)
    except errors.FrameError as exc:
        assert exc.reply_code == 501
    else:
        assert type(method) is commands.INDEX_MAPPING[index]


_HOT_DECODERS = {
    0x003C0028: (basic_codec.decode_publish, ("exchange", "routing_key", "mandatory", "immediate")),
    0x003C0050: (basic_codec.decode_ack, ("delivery_tag", "multiple")),
    0x003C0078: (basic_codec.decode_nack, ("delivery_tag", "multiple", "requeue")),
    0x003C005A: (basic_codec.decode_reject, ("delivery_tag", "requeue")),
}


@FUZZ
@given(st.sampled_from(sorted(_HOT_DECODERS)), st.binary(max_size=40))
def test_hot_decoders_random_bytes(key: int, tail: bytes) -> None:
    decoder, names = _HOT_DECODERS[key]
    payload = struct.pack(">I", key) + tail
    try:
        result = decoder(payload)
    except errors.FrameError as exc:
        assert exc.reply_code == 501
        # The generic decoder refuses the same payloads.
        try:
            method_codec.decode_method(payload)
        except errors.FrameError:
            return
        raise AssertionError("decode_method accepted what the fast path refused") from exc
    method = method_codec.decode_method(payload)
    assert result == tuple(getattr(method, name) for name in names)


# ------------------------------------------------------- field tables, typed


def _fits(fmt: str) -> st.SearchStrategy[int]:
    size = struct.calcsize(fmt)
    if fmt.isupper():
        return st.integers(0, 2 ** (8 * size) - 1)
    return st.integers(-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1)


typed_leaves = st.one_of(
    _fits(">b").map(tables.Byte),
    _fits(">B").map(tables.UnsignedByte),
    _fits(">h").map(tables.Short),
    _fits(">H").map(tables.UnsignedShort),
    _fits(">i").map(tables.SignedInt),
    _fits(">I").map(tables.UnsignedInt),
    _fits(">q").map(tables.Long),
    _fits(">q"),  # a plain int is written as 'l'
    st.floats(width=32, allow_nan=False).map(tables.Float),
    st.floats(allow_nan=False).map(tables.Double),
    st.floats(allow_nan=False),  # a plain float is written as 'd'
    st.builds(
        lambda m, s: decimal.Decimal(f"{m}E-{s}"),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 255),
    ),
    st.text(max_size=20),
    st.binary(max_size=10).filter(lambda b: not _is_utf8(b)),  # non-UTF-8 'S'
    st.binary(max_size=10).map(bytearray),
    u64.map(tables._timestamp),
    st.booleans(),
    st.none(),
)
typed_values = st.recursive(
    typed_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8).map(_fit255), inner, max_size=4)
    ),
    max_leaves=15,
)
typed_tables = st.dictionaries(st.text(max_size=12).map(_fit255), typed_values, max_size=6)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _pamqp_table(body: bytes) -> Any:
    return decode.field_table(struct.pack(">I", len(body)) + body)[1]


@SLOW
@given(typed_tables)
def test_table_codec_is_faithful_and_agrees_with_pamqp(table: dict[str, Any]) -> None:
    raw = tables.encode_table(table)
    ours = tables.decode_table(raw[4:])
    assert _norm(ours) == _norm(table)
    assert tables.encode_table(ours) == raw  # byte for byte
    try:
        theirs = _pamqp_table(raw[4:])
    except (ValueError, OverflowError, OSError):
        return  # pamqp cannot represent some timestamps; we keep them raw
    assert _norm(ours) == _norm(theirs)


@SLOW
@given(pamqp_tables)
def test_tables_pamqp_writes_round_trip_through_ours(table: dict[str, Any]) -> None:
    raw = encode.field_table(table)
    ours = tables.decode_table(raw[4:])
    assert _norm(ours) == _norm(_pamqp_table(raw[4:]))
    assert tables.encode_table(ours) == raw


# -------------------------------------------------------------- properties

property_values: dict[str, st.SearchStrategy[Any]] = {
    "content_type": shortstrs,
    "content_encoding": shortstrs,
    "headers": pamqp_tables,
    "delivery_mode": st.sampled_from([1, 2]),
    "priority": st.integers(0, 255),
    "correlation_id": shortstrs,
    "reply_to": shortstrs,
    "expiration": shortstrs,
    "message_id": shortstrs,
    "timestamp": st.integers(0, 2**32 - 1).map(
        lambda s: datetime.datetime.fromtimestamp(s, tz=datetime.UTC)
    ),
    "message_type": shortstrs,
    "user_id": shortstrs,
    "app_id": shortstrs,
}


@st.composite
def basic_properties(draw: st.DrawFn) -> commands.Basic.Properties:
    props = commands.Basic.Properties()
    for name, values in property_values.items():
        if draw(st.booleans()):
            setattr(props, name, draw(values))
    return props


def _pamqp_header(props: commands.Basic.Properties, body_size: int) -> bytes:
    return header.ContentHeader(0, body_size, props).marshal()


def _pamqp_decode_header(payload: bytes) -> header.ContentHeader:
    h = header.ContentHeader()
    h.unmarshal(payload)
    return h


@given(basic_properties(), u64)
def test_delivery_mode_shortcut_agrees_with_the_full_scan(
    props: commands.Basic.Properties, size: int
) -> None:
    payload = _pamqp_header(props, size)
    assert properties.delivery_mode(payload) == properties.scan_properties(payload).delivery_mode


@SLOW
@given(basic_properties(), u64)
def test_scan_properties_agrees_with_pamqp(props: commands.Basic.Properties, size: int) -> None:
    payload = _pamqp_header(props, size)
    theirs = _pamqp_decode_header(payload)
    view = properties.scan_properties(payload)
    assert (
        properties.parse_content_header(payload) == (60, size) == (theirs.class_id, view.body_size)
    )
    p = theirs.properties
    assert view.delivery_mode == p.delivery_mode
    assert view.priority == p.priority
    assert view.expiration == p.expiration
    assert view.user_id == p.user_id
    assert view.reply_to == p.reply_to
    assert view.has_headers == (p.headers is not None)
    assert _norm(view.headers) == _norm(p.headers)


@SLOW
@given(basic_properties(), u64)
def test_decode_and_encode_properties_round_trip(
    props: commands.Basic.Properties, size: int
) -> None:
    payload = _pamqp_header(props, size)
    ours = properties.decode_properties(payload)
    theirs = _pamqp_decode_header(payload).properties
    for name in commands.Basic.Properties.__slots__:
        assert _norm(getattr(ours, name)) == _norm(getattr(theirs, name)), name
    assert properties.encode_header_payload(ours, size) == payload


@SLOW
@given(st.data(), typed_tables, u64)
def test_typed_properties_survive_a_rewrite(
    data: st.DataObject, headers: dict[str, Any], size: int
) -> None:
    props = data.draw(basic_properties())
    props.headers = headers
    props.timestamp = data.draw(u64.map(tables._timestamp))
    payload = properties.encode_header_payload(props, size)
    decoded = properties.decode_properties(payload)
    assert properties.encode_header_payload(decoded, size) == payload
    view = properties.scan_properties(payload)
    assert _norm(view.headers) == _norm(headers)
    try:
        theirs = _pamqp_decode_header(payload).properties
    except (ValueError, OverflowError, OSError):
        return
    assert _norm(theirs.headers) == _norm(decoded.headers)


@FUZZ
@given(st.integers(0, 0xFFFF), st.binary(max_size=60))
def test_property_decoders_random_bytes(flags: int, tail: bytes) -> None:
    payload = struct.pack(">HHQH", 60, 0, 0, flags) + tail
    try:
        view = properties.scan_properties(payload)
        headers = view.headers
    except errors.InternalError:
        view = None
    try:
        full = properties.decode_properties(payload)
    except errors.InternalError:
        full = None
    if full is not None:
        # Whatever the full decoder accepts, the scanner accepts identically.
        assert view is not None
        assert (view.delivery_mode, view.priority) == (full.delivery_mode, full.priority)
        assert (view.user_id, view.reply_to, view.expiration) == (
            full.user_id,
            full.reply_to,
            full.expiration,
        )
        assert _norm(headers) == _norm(full.headers)
        assume(not flags & 1)  # pamqp reads bit 0 as a second flag word; RabbitMQ ignores it
        try:
            theirs = _pamqp_decode_header(payload).properties
        except Exception:
            return  # pamqp fails where we keep raw timestamps
        for name in commands.Basic.Properties.__slots__:
            assert _norm(getattr(full, name)) == _norm(getattr(theirs, name)), name


@FUZZ
@given(st.binary(max_size=40))
def test_parse_content_header_random_bytes(payload: bytes) -> None:
    try:
        class_id, size = properties.parse_content_header(payload)
    except (errors.FrameError, errors.UnexpectedFrame):
        return
    assert (class_id, size) == struct.unpack_from(">HxxQ", payload)


# --------------------------------------------------------------- content frames


@FAST
@given(
    body=st.binary(max_size=20_000),
    frame_max=st.integers(4096, 9000),
    channel=channels,
    props=basic_properties(),
)
def test_content_split_and_reassembled(
    body: bytes, frame_max: int, channel: int, props: commands.Basic.Properties
) -> None:
    hdr = properties.encode_header_payload(props, len(body))
    raw = basic_codec.encode_content(channel, hdr, body, frame_max)
    reader = FrameReader(frame_max)
    reader.feed(b"".join(raw))
    got = []
    while (f := reader.next_frame()) is not None:
        got.append(f)
    assert got[0] == (framing.FRAME_HEADER, channel, hdr)
    pieces = [payload for frame_type, ch, payload in got[1:] if frame_type == 3 and ch == channel]
    assert len(pieces) == len(got) - 1 == -(-len(body) // (frame_max - 8))
    assert all(len(p) == frame_max - 8 for p in pieces[:-1])
    assert 0 < len(pieces[-1]) <= frame_max - 8 if pieces else not body
    assert b"".join(pieces) == body
    assert properties.parse_content_header(got[0][2]) == (60, len(body))
