"""Frame codec: examples, boundaries and the exact errors RabbitMQ gives.

The randomised agreement tests against pamqp live in tests/property/test_codec.py.
"""

from __future__ import annotations

import datetime
import decimal
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp import commands, encode, frame, header

from amqpbroker import errors
from amqpbroker.protocol import basic_codec, framing, method_codec, properties, tables
from amqpbroker.protocol.reader import (
    FIRST,
    OTHER,
    SAME_HEADER,
    SAME_METHOD,
    FrameReader,
    content_body,
)

# ------------------------------------------------------------------ constants


def test_constants_match_the_spec() -> None:
    assert (framing.FRAME_METHOD, framing.FRAME_HEADER, framing.FRAME_BODY) == (1, 2, 3)
    assert framing.FRAME_HEARTBEAT == 8
    assert framing.FRAME_END == 0xCE
    assert framing.FRAME_OVERHEAD == 8
    assert framing.PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"
    assert frame.marshal(frame.heartbeat.Heartbeat(), 0) == framing.HEARTBEAT_FRAME
    assert framing.encode_frame(framing.FRAME_HEARTBEAT, 0, b"") == framing.HEARTBEAT_FRAME


# -------------------------------------------------------------- frame reader


def _frame(frame_type: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes((end,))


def test_reader_returns_frames_and_none_when_incomplete() -> None:
    reader = FrameReader()
    data = _frame(1, 5, b"\x00\x3c\x00\x50" + b"\x00" * 9) + framing.HEARTBEAT_FRAME
    reader.feed(data[:10])
    assert reader.next_frame() is None
    assert reader.buffered == 10
    reader.feed(data[10:])
    assert reader.next_frame() == (1, 5, b"\x00\x3c\x00\x50" + b"\x00" * 9)
    assert reader.next_frame() == (8, 0, b"")
    assert reader.next_frame() is None
    assert reader.buffered == 0


def test_reader_handles_byte_by_byte_feeding() -> None:
    data = _frame(3, 1, b"hello") + _frame(3, 1, b"") + _frame(2, 1, bytes(14))
    reader = FrameReader()
    got = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        while (f := reader.next_frame()) is not None:
            got.append(f)
    assert got == [(3, 1, b"hello"), (3, 1, b""), (2, 1, bytes(14))]
    assert isinstance(got[0][2], bytes)


@pytest.mark.parametrize("piece", [1, 7, 1000, 5000, 70000])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_reader_splits_small_and_long_frames_fed_in_any_pieces(piece: int, kind: type) -> None:
    # Short leftovers are joined into a bytes buffer, long partial frames collected
    # in a bytearray; frames come out the same whatever the pieces and their type.
    sizes = [0, 16, 4095, 4096, 4097, 20000, 131000, 5, 16]
    payloads = [bytes((i % 251,)) * size for i, size in enumerate(sizes)]
    if piece == 1:
        payloads = payloads[:5]  # byte by byte only through the first frames
    data = b"".join(_frame(3, 1, p) for p in payloads)
    reader = FrameReader(frame_max=0)
    got = []
    for i in range(0, len(data), piece):
        reader.feed(kind(data[i : i + piece]))
        while (f := reader.next_frame()) is not None:
            assert type(f[2]) is bytes
            got.append(f[2])
    assert got == payloads
    assert reader.buffered == 0


def test_reader_compacts_instead_of_growing() -> None:
    reader = FrameReader()
    one = _frame(3, 1, b"x" * 1000)
    for _ in range(500):
        reader.feed(one)
        assert reader.next_frame() == (3, 1, b"x" * 1000)
    # Everything consumed: the next feed starts the buffer afresh.
    reader.feed(one[:3])
    assert len(reader._buf) == 3


def test_frame_over_frame_max_is_refused_from_its_header_alone() -> None:
    reader = FrameReader(frame_max=4096)
    reader.feed(struct.pack(">BHI", 3, 1, 4097))  # only the 7-byte header
    with pytest.raises(errors.FrameError) as info:
        reader.next_frame()
    assert info.value.reply_code == 501
    assert info.value.reply_text == (
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}"
    )
    assert reader.buffered == 7  # the huge payload was never waited for


def test_frame_max_allows_rabbitmqs_eight_byte_fudge() -> None:
    # rabbit_reader: PayloadSize > FrameMax - 8 + 8 is too large, so a payload of
    # exactly frame_max bytes (a frame 8 bytes over) still passes, as in RabbitMQ.
    reader = FrameReader(frame_max=4096)
    reader.feed(_frame(3, 1, b"y" * 4096))
    assert reader.next_frame() == (3, 1, b"y" * 4096)


def test_frame_max_is_settable_and_zero_means_unlimited() -> None:
    reader = FrameReader(frame_max=4096)
    reader.frame_max = 0
    reader.feed(_frame(3, 1, b"z" * 200_000))
    assert reader.next_frame() == (3, 1, b"z" * 200_000)
    reader.frame_max = 131072
    reader.feed(struct.pack(">BHI", 1, 0, 131073))
    with pytest.raises(errors.FrameError, match="frame_too_large,131073,131064"):
        reader.next_frame()


def test_bad_frame_end_is_a_frame_error() -> None:
    reader = FrameReader()
    reader.feed(_frame(3, 1, b"abc", end=0x36))
    with pytest.raises(errors.FrameError) as info:
        reader.next_frame()
    assert info.value.reply_text == (
        'FRAME_ERROR - type 3, all octets = <<"abc">>: {invalid_frame_end_marker,54}'
    )


def test_error_snippet_is_first_16_octets_as_rabbitmq_prints_them() -> None:
    reader = FrameReader()
    payload = bytes([1, 0, 0, 0, 22, 0, 60, 0, 40, 0, 0, 13, 111, 114, 100, 101]) + b"rest"
    reader.feed(_frame(3, 1, payload, end=54))
    with pytest.raises(errors.FrameError) as info:
        reader.next_frame()
    assert info.value.text == (
        "type 3, first 16 octets = <<1,0,0,0,22,0,60,0,40,0,0,13,111,114,100,101>>: "
        "{invalid_frame_end_marker,54}"
    )


@pytest.mark.parametrize(
    ("frame_type", "payload"),
    [
        (9, b""),  # unknown type
        (0, b"abc"),
        (4, b"\x00" * 16),
        (1, b"\x00\x3c\x00"),  # method frame without class + method id
        (2, bytes(11)),  # header frame without class, weight and body size
        (8, b"\x00"),  # heartbeat with a payload
    ],
)
def test_frames_rabbitmq_cannot_analyse_are_unknown_frame(frame_type: int, payload: bytes) -> None:
    reader = FrameReader()
    reader.feed(_frame(frame_type, 1, payload))
    with pytest.raises(errors.FrameError) as info:
        reader.next_frame()
    assert info.value.reply_code == 501
    assert info.value.text.startswith(f"type {frame_type}, all octets = ")
    assert info.value.text.endswith(": unknown_frame")
    assert isinstance(info.value, errors.AMQPConnectionError)


# -------------------------------------------------------------- method frames


def test_method_key() -> None:
    payload = frame.marshal(commands.Basic.Publish(), 1)[7:-1]
    assert framing.method_key(payload) == (60 << 16) | 40 == commands.Basic.Publish.index
    with pytest.raises(errors.FrameError, match="unknown_frame"):
        framing.method_key(b"\x00\x3c")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Basic.RecoverAsync
def test_decode_method_every_pamqp_class_with_defaults() -> None:
    for index, cls in commands.INDEX_MAPPING.items():
        method = cls()
        try:
            raw = frame.marshal(method, 1)
        except TypeError:  # pamqp cannot encode its own None defaults for a few
            continue
        payload = raw[7:-1]
        decoded = method_codec.decode_method(payload)
        assert type(decoded) is cls
        assert dict(decoded) == dict(method), cls.name
        assert method_codec.encode_method(1, decoded) == raw, cls.name
        assert framing.method_key(payload) == index


def test_decode_method_unknown_method_is_not_implemented() -> None:
    with pytest.raises(errors.NotImplemented_) as info:
        method_codec.decode_method(b"\x00\x3c\x00\x63")
    assert info.value.reply_code == 540
    assert (info.value.class_id, info.value.method_id) == (60, 99)


def test_decode_method_truncated_fields_cannot_decode() -> None:
    payload = frame.marshal(commands.Queue.Declare(queue="orders"), 1)[7:-1]
    with pytest.raises(errors.FrameError) as info:
        method_codec.decode_method(payload[:-3])
    err = info.value
    assert err.reply_code == 501
    assert (err.class_id, err.method_id) == (50, 10)
    assert err.text.startswith("cannot decode <<0,0,6,111,114,100,101,114,115,")


def test_decode_method_trailing_bytes_cannot_decode() -> None:
    # RabbitMQ's generated decoder matches the binary exactly; pamqp ignores extra bytes.
    payload = frame.marshal(commands.Basic.Qos(prefetch_count=10), 1)[7:-1]
    with pytest.raises(errors.FrameError, match="cannot decode"):
        method_codec.decode_method(payload + b"\x00")


def test_decode_method_bad_utf8_shortstr() -> None:
    payload = b"\x00\x32\x00\x0a\x00\x00\x02\xff\xfe" + b"\x00" + b"\x00\x00\x00\x00"
    with pytest.raises(errors.FrameError) as info:
        method_codec.decode_method(payload)
    assert info.value.text == "Malformed UTF-8 in shortstr"


def test_cannot_decode_text_fits_a_short_string() -> None:
    payload = frame.marshal(commands.Basic.Qos(), 1)[7:-1] + b"\xff" * 5000
    with pytest.raises(errors.FrameError) as info:
        method_codec.decode_method(payload)
    assert len(info.value.reply_text.encode()) <= 255
    assert info.value.reply_text.endswith("...")


def test_decode_method_tables_keep_wire_types() -> None:
    args = b"\x0cx-max-lengthI\x00\x00\x07\xd0"
    payload = b"\x00\x32\x00\x0a\x00\x00\x01q\x00" + struct.pack(">I", len(args)) + args
    method = method_codec.decode_method(payload)
    assert isinstance(method, commands.Queue.Declare)
    value = method.arguments["x-max-length"]
    assert value == 2000 and type(value) is tables.SignedInt  # RabbitMQ: 'signedint'


def test_make_method_and_encode_method_accept_names_pamqp_refuses() -> None:
    with pytest.raises(ValueError):
        commands.Queue.DeclareOk(queue="café ☕", message_count=1, consumer_count=0)
    method = method_codec.make_method(commands.Queue.DeclareOk, queue="café ☕", message_count=3)
    raw = method_codec.encode_method(7, method)
    _, channel, decoded = frame.unmarshal(raw)
    assert channel == 7
    assert isinstance(decoded, commands.Queue.DeclareOk)
    assert (decoded.queue, decoded.message_count, decoded.consumer_count) == ("café ☕", 3, 0)
    with pytest.raises(TypeError):
        method_codec.make_method(commands.Queue.DeclareOk, nope=1)


def test_encode_method_packs_more_than_eight_bits() -> None:
    # No 0-9-1 method has more than 5 bits; check the packing rule on a made-up one.
    class Nine(commands.Basic.Ack):
        __slots__ = [f"b{i}" for i in range(9)]
        for i in range(9):
            locals()[f"_b{i}"] = "bit"
        del i

    method = method_codec.make_method(Nine, **{f"b{i}": True for i in range(9)})
    raw = method_codec.encode_method(1, method)
    assert raw[7 + 4 : -1] == b"\xff\x01"


# ------------------------------------------------------------- hot path codecs


def test_decode_publish() -> None:
    payload = frame.marshal(
        commands.Basic.Publish(exchange="amq.topic", routing_key="a.b", mandatory=True), 1
    )[7:-1]
    assert basic_codec.decode_publish(payload) == ("amq.topic", "a.b", True, False)
    assert basic_codec.decode_publish(payload) == ("amq.topic", "a.b", True, False)  # cached


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x3c\x00\x28\x00\x00",  # no exchange
        b"\x00\x3c\x00\x28\x00\x00\x05amq",  # exchange truncated
        b"\x00\x3c\x00\x28\x00\x00\x00\x00",  # no bits octet
        b"\x00\x3c\x00\x28\x00\x00\x00\x00\x00\x00",  # trailing byte
        b"\x00\x3c\x00",  # not even a method id
    ],
)
def test_decode_publish_malformed(payload: bytes) -> None:
    with pytest.raises(errors.FrameError) as info:
        basic_codec.decode_publish(payload)
    assert info.value.reply_code == 501


def test_decode_publish_bad_utf8() -> None:
    with pytest.raises(errors.FrameError, match="Malformed UTF-8"):
        basic_codec.decode_publish(b"\x00\x3c\x00\x28\x00\x00\x01\xff\x00\x00")


def test_ack_nack_reject_decoders() -> None:
    tag = 2**63 - 1  # pamqp's longlong is signed: it cannot encode the top half
    ack = frame.marshal(commands.Basic.Ack(tag, True), 1)[7:-1]
    nack = frame.marshal(commands.Basic.Nack(tag, False, True), 1)[7:-1]
    reject = frame.marshal(commands.Basic.Reject(tag, True), 1)[7:-1]
    assert basic_codec.decode_ack(ack) == (tag, True)
    assert basic_codec.decode_nack(nack) == (tag, False, True)
    assert basic_codec.decode_reject(reject) == (tag, True)
    for fn, payload in ((basic_codec.decode_ack, ack), (basic_codec.decode_nack, nack)):
        with pytest.raises(errors.FrameError):
            fn(payload[:-1])
        with pytest.raises(errors.FrameError):
            fn(payload + b"\x00")


def test_encoders_match_pamqp_bytes() -> None:
    assert basic_codec.encode_deliver(3, "ctag", 9, True, "ex", "rk") == frame.marshal(
        commands.Basic.Deliver("ctag", 9, True, "ex", "rk"), 3
    )
    assert basic_codec.encode_get_ok(3, 9, False, "ex", "rk", 17) == frame.marshal(
        commands.Basic.GetOk(9, False, "ex", "rk", 17), 3
    )
    assert basic_codec.encode_return(3, 312, "NO_ROUTE", "ex", "rk") == frame.marshal(
        commands.Basic.Return(312, "NO_ROUTE", "ex", "rk"), 3
    )
    assert basic_codec.encode_basic_ack(3, 2**63 - 1, True) == frame.marshal(
        commands.Basic.Ack(2**63 - 1, True), 3
    )
    assert basic_codec.encode_basic_nack(3, 5, False) == frame.marshal(
        commands.Basic.Nack(5, False, False), 3
    )
    assert basic_codec.encode_basic_nack(3, 5, True, requeue=True) == frame.marshal(
        commands.Basic.Nack(5, True, True), 3
    )


@pytest.mark.parametrize(
    ("body", "frame_max"),
    [(b"x" * 16, 131072), (b"", 131072), (b"y" * 4088, 4096), (b"z" * 10000, 4096), (b"w", 0)],
)
def test_encode_delivery_is_deliver_then_content(body: bytes, frame_max: int) -> None:
    content_header = frame.marshal(header.ContentHeader(0, len(body)), 3)[7:-1]
    expected = basic_codec.encode_deliver(3, "ctag", 9, True, "ex", "rk") + b"".join(
        basic_codec.encode_content(3, content_header, body, frame_max)
    )
    assert (
        basic_codec.encode_delivery(3, "ctag", 9, True, "ex", "rk", content_header, body, frame_max)
        == expected
    )


def test_delivery_tags_are_unsigned_64_bit() -> None:
    # AMQP longlong is unsigned (RabbitMQ: 64/unsigned); pamqp 4.0.1 reads it signed.
    raw = basic_codec.encode_deliver(1, "t", 2**64 - 1, False, "", "q")
    assert method_codec.decode_method(raw[7:-1]).delivery_tag == 2**64 - 1
    assert basic_codec.decode_ack(basic_codec.encode_basic_ack(1, 2**64 - 1, False)[7:-1]) == (
        2**64 - 1,
        False,
    )
    _, _, pamqp_view = frame.unmarshal(raw)
    assert pamqp_view.delivery_tag == -1  # type: ignore[union-attr]


def test_short_strings_over_255_bytes_are_refused() -> None:
    with pytest.raises(ValueError):
        basic_codec.encode_deliver(1, "t", 1, False, "é" * 128, "")
    basic_codec.encode_deliver(1, "t", 1, False, "é" * 127 + "a", "b" * 255)


# --------------------------------------------------------------- content frames


def _reassemble(raw: list[bytes], frame_max: int) -> tuple[bytes, list[bytes]]:
    reader = FrameReader(frame_max)
    reader.feed(b"".join(raw))
    got = []
    while (f := reader.next_frame()) is not None:
        got.append(f)
    assert got[0][0] == framing.FRAME_HEADER
    assert all(t == framing.FRAME_BODY and ch == 4 for t, ch, _ in got[1:])
    return got[0][2], [p for _, _, p in got[1:]]


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 3 * 4088, 3 * 4088 + 1, 100_000])
def test_encode_content_splits_at_frame_max_minus_8(size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    hdr = properties.encode_header_payload(commands.Basic.Properties(), size)
    raw = basic_codec.encode_content(4, hdr, body, 4096)
    got_header, pieces = _reassemble(raw, 4096)
    assert got_header == hdr
    assert b"".join(pieces) == body
    assert len(pieces) == -(-size // 4088)  # ceil; no body frame for an empty body
    assert all(len(p) == 4088 for p in pieces[:-1])
    assert all(len(f) <= 4096 for f in raw[1:])


def test_encode_content_frame_max_zero_is_one_body_frame() -> None:
    raw = basic_codec.encode_content(4, properties.encode_header_payload(None, 5), b"hello", 0)  # type: ignore[arg-type]
    assert len(raw) == 2 and raw[1] == _frame(3, 4, b"hello")


# ------------------------------------------------------------- content headers


def test_parse_content_header() -> None:
    hdr = frame.marshal(header.ContentHeader(0, 1234, commands.Basic.Properties()), 1)[7:-1]
    assert properties.parse_content_header(hdr) == (60, 1234)
    assert properties.parse_content_header(hdr[:12]) == (60, 1234)  # flags checked later
    with pytest.raises(errors.FrameError):
        properties.parse_content_header(hdr[:11])
    with pytest.raises(errors.UnexpectedFrame) as info:
        properties.parse_content_header(hdr[:2] + b"\x00\x01" + hdr[4:])
    assert info.value.reply_code == 505


def _header_payload(props: commands.Basic.Properties, size: int = 10) -> bytes:
    return frame.marshal(header.ContentHeader(0, size, props), 1)[7:-1]


def test_scan_properties_reads_what_the_broker_needs() -> None:
    props = commands.Basic.Properties(
        content_type="text/plain",
        headers={"x-match": "any", "n": 5, "nested": {"a": [1, "b"]}},
        delivery_mode=2,
        priority=7,
        reply_to="amq.rabbitmq.reply-to",
        expiration="60000",
        user_id="guest",
        app_id="app",
        timestamp=datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC),
    )
    view = properties.scan_properties(_header_payload(props, 99))
    assert (view.delivery_mode, view.priority, view.expiration) == (2, 7, "60000")
    assert (view.user_id, view.reply_to, view.body_size) == ("guest", "amq.rabbitmq.reply-to", 99)
    assert view.has_headers
    assert view._headers is not None and view.headers == props.headers  # decoded on demand
    empty = properties.scan_properties(_header_payload(commands.Basic.Properties()))
    assert empty.headers is None and not empty.has_headers
    assert empty.delivery_mode is None and empty.expiration is None


def test_scan_properties_defers_header_table_errors_until_read() -> None:
    table = b"\x01kZ"  # unknown field type 'Z'
    payload = (
        struct.pack(">HHQH", 60, 0, 0, 0x2000 | 0x1000)
        + struct.pack(">I", len(table))
        + table
        + b"\x02"
    )
    view = properties.scan_properties(payload)
    assert view.delivery_mode == 2
    with pytest.raises(errors.InternalError):
        view.check_headers()  # the publish-time check: same error, nothing decoded
    with pytest.raises(errors.InternalError):
        _ = view.headers


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        struct.pack(">HHQ", 60, 0, 0),  # no flags
        struct.pack(">HHQH", 60, 0, 0, 0x1000),  # delivery mode missing
        struct.pack(">HHQH", 60, 0, 0, 0x0000) + b"x",  # trailing byte
        struct.pack(">HHQH", 60, 0, 0, 0x0200) + b"\x05ab",  # truncated reply_to
        struct.pack(">HHQH", 60, 0, 0, 0x0010) + b"\x01\xff",  # non-UTF-8 user_id
        struct.pack(">HHQH", 60, 0, 0, 0x2000) + b"\x00\x00\x01\x00",  # table overruns
        struct.pack(">HHQH", 60, 0, 0, 0x1001) + b"\x00\x00\x02",  # "continuation" word
    ],
)
def test_scan_properties_malformed_is_internal_error_like_rabbitmq(payload: bytes) -> None:
    # RabbitMQ 3.10's channel crashes on these: connection.close 541 INTERNAL_ERROR.
    with pytest.raises(errors.InternalError) as info:
        properties.scan_properties(payload)
    assert info.value.reply_code == 541
    assert info.value.reply_text == "INTERNAL_ERROR"
    with pytest.raises(errors.InternalError):
        properties.decode_properties(payload)


def test_low_flag_bits_are_ignored_as_rabbitmq_does() -> None:
    # pamqp would read bit 0 as "another flag word follows"; RabbitMQ ignores it.
    payload = struct.pack(">HHQH", 60, 0, 0, 0x1003) + b"\x02"
    assert properties.scan_properties(payload).delivery_mode == 2
    assert properties.decode_properties(payload).delivery_mode == 2


def test_nul_field_type_is_refused_as_rabbitmq_does() -> None:
    with pytest.raises(errors.FrameError):
        tables.decode_table(b"\x01k\x00")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    table = b""
    for _ in range(2000):
        table = b"\x01kF" + struct.pack(">I", len(table)) + table
    with pytest.raises(errors.FrameError):
        tables.decode_table(table)


# ---------------------------------------------- fidelity where pamqp loses data


def _pamqp_reencode(payload: bytes) -> bytes:
    h = header.ContentHeader()
    h.unmarshal(payload)
    return h.marshal()


def _typed_header(fields: bytes, body_size: int = 0) -> bytes:
    return struct.pack(">HHQH", 60, 0, body_size, 0x2000) + struct.pack(">I", len(fields)) + fields


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("long stays long", b"\x05countl" + struct.pack(">q", 1)),
        ("signed int stays", b"\x01nI" + struct.pack(">i", 2000)),
        ("unsigned byte stays", b"\x01nB\x05"),
        ("double keeps precision", b"\x01fd" + struct.pack(">d", 0.1)),
        ("ms timestamp stays", b"\x01tT" + struct.pack(">Q", 1_700_000_000_123)),
        ("non-UTF-8 long string", b"\x01sS\x00\x00\x00\x02\xff\xfe"),
        ("keys keep their order", b"\x01bS\x00\x00\x00\x00\x01aS\x00\x00\x00\x00"),
        ("long key", b"\x82" + b"k" * 130 + b"V"),
        ("decimal", b"\x01dD\x02" + struct.pack(">i", -12345)),
        ("byte array", b"\x01xx\x00\x00\x00\x03abc"),
        ("nested", b"\x01aA\x00\x00\x00\x09F\x00\x00\x00\x04\x01zt\x01"),
    ],
)
def test_properties_round_trip_byte_for_byte(name: str, fields: bytes) -> None:
    payload = _typed_header(fields, 42)
    props = properties.decode_properties(payload)
    assert properties.encode_header_payload(props, 42) == payload, name


def test_pamqp_alone_would_change_these_bytes() -> None:
    # The reason tables.py has its own table codec: documented pamqp 4.0.1 losses.
    long_count = _typed_header(b"\x05countl" + struct.pack(">q", 1))
    assert _pamqp_reencode(long_count) != long_count  # re-packed as 'b'
    double = _typed_header(b"\x01fd" + struct.pack(">d", 0.1))
    assert _pamqp_reencode(double) != double  # written back as 32-bit 'f'
    ms = _typed_header(b"\x01tT" + struct.pack(">Q", 1_700_000_000_123))
    assert _pamqp_reencode(ms) != ms  # milliseconds written back as seconds
    with pytest.raises(TypeError):  # non-UTF-8 long strings cannot be encoded
        _pamqp_reencode(_typed_header(b"\x01sS\x00\x00\x00\x02\xff\xfe"))


def test_uppercase_L_is_normalised_to_l_like_rabbitmq() -> None:
    payload = _typed_header(b"\x01nL" + struct.pack(">q", -7))
    props = properties.decode_properties(payload)
    assert props.headers == {"n": -7}
    assert properties.encode_header_payload(props, 0) == _typed_header(
        b"\x01nl" + struct.pack(">q", -7)
    )


def test_plain_python_values_encode_as_rabbitmq_would_build_them() -> None:
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    table = tables.encode_table(
        {
            "count": 1,
            "ratio": 0.5,
            "reason": "expired",
            "keys": ["a"],
            "time": when,
            "none": None,
            "ok": True,
            "amount": decimal.Decimal("1.25"),
        }
    )
    decoded = tables.decode_table(table[4:])
    assert type(decoded["count"]) is tables.Long
    assert type(decoded["ratio"]) is tables.Double
    assert decoded == {
        "count": 1,
        "ratio": 0.5,
        "reason": "expired",
        "keys": ["a"],
        "time": when,
        "none": None,
        "ok": True,
        "amount": decimal.Decimal("1.25"),
    }
    assert encode.field_table({"count": 1})[4:] != table[4:]  # pamqp would write 'b'


def test_encode_header_payload_keeps_empty_strings_and_drops_default_cluster_id() -> None:
    props = commands.Basic.Properties(content_type="", delivery_mode=1)
    payload = properties.encode_header_payload(props, 3)
    assert payload == struct.pack(">HHQH", 60, 0, 3, 0x8000 | 0x1000) + b"\x00\x01"
    assert properties.decode_properties(payload).content_type == ""


# ------------------------------------------------------------ publish fast path


def _content(body: bytes, channel: int = 1, class_id: int = 60, flags: int = 0) -> bytes:
    header_payload = struct.pack(">HHQH", class_id, 0, len(body), flags)
    return _frame(2, channel, header_payload) + _frame(3, channel, body)


_PUBLISH = struct.pack(">HHH", 60, 40, 0) + b"\x02ex\x03key\x00"


def _publish(body: bytes, channel: int = 1, method: bytes = _PUBLISH, **content: int) -> bytes:
    return _frame(1, channel, method) + _content(body, channel, **content)


@pytest.mark.parametrize("cls", [bytes, bytearray])
def test_next_publish_takes_a_whole_publish(cls: type) -> None:
    reader = FrameReader()
    content = _content(b"hello", channel=3)
    data = _publish(b"hello", channel=3) + framing.HEARTBEAT_FRAME
    # A long partial frame before it turns the buffer into a bytearray.
    if cls is bytearray:
        reader.feed(_frame(3, 3, b"y" * 5000)[:4200])
        reader.feed(_frame(3, 3, b"y" * 5000)[4200:] + data)
        assert reader.next_frame() == (3, 3, b"y" * 5000)
    else:
        reader.feed(data)
    got = reader.next_publish(1000)
    header = struct.pack(">HHQH", 60, 0, 5, 0)
    # From a bytearray buffer the parts are copies the reader does not remember.
    assert got == (3, _PUBLISH, header, content, FIRST if cls is bytes else OTHER)
    assert got is not None and all(type(part) is bytes for part in got[1:4])
    assert content_body(header, content) == b"hello"
    assert reader.next_frame() == (8, 0, b"")


def test_unread_gives_a_publish_back() -> None:
    reader = FrameReader()
    data = _publish(b"hello")
    reader.feed(data)
    got = reader.next_publish(1000)
    assert got is not None and reader.buffered == 0
    reader.unread(len(got[1]) + len(got[3]) + 8)
    assert reader.buffered == len(data)
    assert reader.next_frame() == (1, 1, _PUBLISH)


def test_an_unread_publish_is_not_repeated() -> None:
    # The caller never saw it, so a publish equal to it must not say it repeats it.
    reader = FrameReader()
    reader.feed(_publish(b"hello") + _publish(b"hello"))
    got = reader.next_publish(1000)
    assert got is not None and got[4] == FIRST
    reader.unread(len(got[1]) + len(got[3]) + 8)
    got = reader.next_publish(1000)
    assert got is not None and got[4] == FIRST
    assert reader.next_repeats(1000) == [_content(b"hello")]


def test_next_publish_repeated_bytes_are_checked_as_the_first() -> None:
    # The second publish repeats the first one's bytes up to the body (the path
    # that skips the checks); what follows the body must still be a frame end, and
    # the limits still apply.
    reader = FrameReader()
    first = _publish(b"hello")
    reader.feed(first)
    assert reader.next_publish(1000) is not None
    reader.feed(_publish(b"HELLO") + _publish(b"other") + _publish(b"hello")[:-1])
    got = reader.next_publish(1000)
    assert got is not None and got[3] == _content(b"HELLO")
    assert reader.next_publish(4) is None  # over the size limit now
    got = reader.next_publish(1000)
    assert got is not None and got[3] == _content(b"other")
    assert reader.next_publish(1000) is None  # incomplete
    reader.feed(b"\x00")  # not a frame end
    assert reader.next_publish(1000) is None
    with pytest.raises(errors.FrameError, match="invalid_frame_end_marker,0"):
        while reader.next_frame():
            pass


def _with_id(body: bytes, message_id: bytes, flags: int = 0x0080) -> bytes:
    header_payload = struct.pack(">HHQH", 60, 0, len(body), flags) + b"\x04" + message_id
    return _frame(1, 1, _PUBLISH) + _frame(2, 1, header_payload) + _frame(3, 1, body)


def test_next_publish_same_up_to_the_properties() -> None:
    # Publishes that differ only in a property value (a message_id) take the path
    # that checks the flag bits and the body frame.
    reader = FrameReader()
    reader.feed(_with_id(b"hello", b"id-1") + _with_id(b"HELLO", b"id-2"))
    first = reader.next_publish(1000)
    second = reader.next_publish(1000)
    assert first is not None and second is not None
    header = struct.pack(">HHQH", 60, 0, 5, 0x0080) + b"\x04id-2"
    assert first[4] == FIRST
    assert second == (
        1,
        _PUBLISH,
        header,
        _frame(2, 1, header) + _frame(3, 1, b"HELLO"),
        SAME_METHOD,
    )
    assert reader.next_repeats(1000) == []  # not equal to the first up to the body


def _split_body(data: bytes) -> bytes:
    return data[: -len(_frame(3, 1, b"hello"))] + _frame(3, 1, b"hel")


@pytest.mark.parametrize(
    "data",
    [
        _with_id(b"hello", b"id-3", flags=0x0081),  # low flag bits
        _with_id(b"hello!", b"id-4"),  # another body size: valid, the general path
        _split_body(_with_id(b"hello", b"id-5")),  # body frame shorter than declared
        _with_id(b"hello", b"id-6")[:-1],  # incomplete
        _with_id(b"hello", b"id-7")[:-1] + b"\x00",  # bad frame end
        _with_id(b"hello", b"id-8") + _with_id(b"hello", b"id-8"),
    ],
)
def test_next_publish_fast_paths_agree_with_the_general_one(data: bytes) -> None:
    primed = FrameReader()
    primed.feed(_with_id(b"hello", b"id-0"))
    assert primed.next_publish(1000) is not None
    primed.feed(data)
    fresh = FrameReader()
    fresh.feed(data)
    assert _publishes(primed) == _publishes(fresh)
    assert primed.buffered == fresh.buffered


def _publishes(reader: FrameReader) -> list[tuple[int, bytes, bytes, bytes]]:
    """Every publish the fast paths take, repeats included, as separate entries
    (without the repeat flags, which depend on what the reader saw before)."""
    taken = []
    while (got := reader.next_publish(1000)) is not None:
        taken.append(got[:4])
        taken += [(*got[:3], content) for content in reader.next_repeats(1000)]
    return taken


def test_next_repeats_takes_the_whole_publishes_equal_up_to_the_body() -> None:
    reader = FrameReader()
    other = _publish(b"hello", method=_PUBLISH[:-1] + b"\x01")  # mandatory: not equal
    reader.feed(
        _publish(b"one..")
        + _publish(b"two..")
        + _publish(b"three")
        + other
        + _publish(b"four.")
        + _publish(b"five.")[:-1]
    )
    assert reader.next_repeats(1000) == []  # nothing taken yet
    got = reader.next_publish(1000)
    assert got is not None and got[3] == _content(b"one..")
    assert reader.next_repeats(1000) == [_content(b"two.."), _content(b"three")]
    assert reader.next_repeats(1000) == []
    got = reader.next_publish(1000)
    assert got is not None and got[1] == _PUBLISH[:-1] + b"\x01"
    assert reader.next_publish(1000) is not None
    assert reader.next_repeats(4) == []  # over the size limit
    assert reader.next_repeats(1000) == []  # the last one is incomplete
    assert reader.buffered == len(_publish(b"five.")) - 1


@pytest.mark.parametrize(
    ("data", "max_body", "frame_max"),
    [
        (_frame(1, 1, _PUBLISH) + _content(b"hello", channel=2), 1000, 0),  # another channel
        (_publish(b"hello", channel=0), 1000, 0),  # channel 0
        (_frame(1, 1, struct.pack(">HH", 60, 80) + bytes(9)) + _content(b"hello"), 1000, 0),
        (_publish(b"hello"), 4, 0),  # over the message size limit
        (_publish(b""), 1000, 0),  # no body frame
        (_publish(b"hello", class_id=50), 1000, 0),  # not basic's class
        (_publish(b"hello", flags=0x0001), 1000, 0),  # low flag bits set
        (_publish(b"hello")[:-1], 1000, 0),  # body incomplete
        (_publish(b"hello")[:-9], 1000, 0),  # no body frame header yet
        (_publish(b"x" * 5000), 10000, 0),  # a long body: the general path
        (_publish(b"hello", method=_PUBLISH + bytes(5000)), 1000, 0),  # a long method
        (_publish(b"hello", method=_PUBLISH + bytes(50)), 1000, 4095),  # tiny frame_max
        (_frame(1, 1, _PUBLISH) + _frame(2, 1, struct.pack(">HHQH", 60, 0, 10, 0))
         + _frame(3, 1, b"hello"), 1000, 0),  # body shorter than declared
        (framing.HEARTBEAT_FRAME + _publish(b"hello"), 1000, 0),
    ],
)  # fmt: skip
def test_next_publish_leaves_anything_else_to_next_frame(
    data: bytes, max_body: int, frame_max: int
) -> None:
    reader = FrameReader(frame_max=frame_max)
    reader.feed(data)
    assert reader.next_publish(max_body) is None
    assert reader.buffered == len(data)


_METHODS = (_PUBLISH, _PUBLISH[:-1] + b"\x01", struct.pack(">HHH", 60, 40, 0) + b"\x00\x01k\x00")
_IDS = (b"", b"id-1", b"id-2", b"other")


def _header_with_id(message_id: int, body: bytes) -> bytes:
    if not _IDS[message_id]:
        return struct.pack(">HHQH", 60, 0, len(body), 0)
    payload = struct.pack(">HHQH", 60, 0, len(body), 0x0080)
    return payload + bytes((len(_IDS[message_id]),)) + _IDS[message_id]


@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_METHODS) - 1),
            st.integers(0, len(_IDS) - 1),
            st.sampled_from([b"a", b"bb", b"hello"]),
        ),
        min_size=1,
        max_size=30,
    ),
    st.lists(st.integers(1, 200), max_size=10),
)
def test_repeat_flags_tell_the_truth(
    publishes: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    # What a caller keeps of the last publish (PublishCache) is reused on the
    # reader's word: SAME_METHOD must mean the method payload of the last FIRST one,
    # SAME_HEADER its header payload too, whatever the stream and however it is cut;
    # after a SAME_METHOD one there are no repeats (the connection does not ask).
    sent = [(_METHODS[m], _header_with_id(i, body), body) for m, i, body in publishes]
    data = b"".join(
        _frame(1, 1, method) + _frame(2, 1, header) + _frame(3, 1, body)
        for method, header, body in sent
    )
    reader = FrameReader()
    remembered: tuple[bytes, bytes] | None = None
    seen: list[tuple[bytes, bytes, bytes]] = []
    parts: list[bytes] = []  # a publish taken frame by frame
    pos = 0
    for cut in [*cuts, len(data)]:
        reader.feed(data[pos : pos + cut])
        pos += cut
        while True:
            got = reader.next_publish(1000)
            if got is None:
                frame = reader.next_frame()
                if frame is None:
                    break
                parts.append(frame[2])
                if len(parts) == 3:
                    seen.append((parts[0], parts[1], parts[2]))
                    parts = []
                continue
            _channel, method, header, content, repeat = got
            if repeat == FIRST:
                remembered = (method, header)
            elif repeat == SAME_METHOD:
                assert remembered is not None and method == remembered[0]
                assert reader.next_repeats(1000) == []
            elif repeat == SAME_HEADER:
                assert remembered == (method, header)
            else:
                assert repeat == OTHER
            seen.append((method, header, content_body(header, content)))
            for more in reader.next_repeats(1000):
                seen.append((method, header, content_body(header, more)))
    assert seen == sent
