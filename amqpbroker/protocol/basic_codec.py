"""The hand-written codec for the hot basic.* methods and content frames.

basic.publish / ack / nack / reject in, basic.deliver / get-ok / return / ack /
nack and content frames out are written by hand with ``struct`` and byte
slicing.  pamqp costs 8-30 us per method where these cost about 1 us (see
PERFORMANCE-NOTES and ``encode_deliver``); at tens of thousands of messages a
second that is the difference that matters.  Every other method goes through
method_codec.py.  Error texts: see framing.py.
"""

from __future__ import annotations

import struct

from .framing import (
    _END,
    _FRAME_HEADER,
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    _bad_utf8,
    _cannot_decode,
)
from .tables import _Malformed, _shortstr

__all__ = [
    "decode_ack",
    "decode_nack",
    "decode_publish",
    "decode_reject",
    "deliver_prefix",
    "encode_basic_ack",
    "encode_basic_nack",
    "encode_content",
    "encode_deliver",
    "encode_delivery",
    "encode_get_ok",
    "encode_return",
    "pack_delivery_tag",
]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


# -------------------------------------------------------- hot path: client -> us


def decode_publish(payload: bytes) -> tuple[str, str, bool, bool]:
    """(exchange, routing_key, mandatory, immediate) of a basic.publish payload
    (class/method id included; the caller has dispatched on :func:`method_key`).

    Hot path: a publisher almost always repeats the same exchange and routing
    key, so the decoded result is cached by the payload bytes; a hit costs one
    dict lookup instead of two slices and two UTF-8 decodes.

    Error handling: as :func:`decode_method` (501 FrameError).
    """
    hit = _publish_cache.get(payload)
    if hit is not None:
        return hit
    fields = payload[6:]  # after class, method, ticket
    try:
        e_end = 1 + fields[0]
        r_end = e_end + 1 + fields[e_end]
        flags = fields[r_end]
        if len(fields) != r_end + 1:
            raise _Malformed
        result = (
            fields[1:e_end].decode(),
            fields[e_end + 1 : r_end].decode(),
            bool(flags & 1),
            bool(flags & 2),
        )
    except UnicodeDecodeError as exc:
        raise _bad_utf8() from exc
    except (_Malformed, IndexError) as exc:
        raise _cannot_decode(payload) from exc
    if len(_publish_cache) >= _PUBLISH_CACHE_MAX:
        # Bounded: a publisher with ever-new routing keys must not grow it forever;
        # clearing is crude but keeps the hit path free of bookkeeping.
        _publish_cache.clear()
    _publish_cache[payload] = result
    return result


_publish_cache: dict[bytes, tuple[str, str, bool, bool]] = {}
_PUBLISH_CACHE_MAX = 4096

# ack: tag + 1 bit octet; nack: tag + 2 bits; reject: tag + 1 bit.
_TAG_BITS = struct.Struct(">QB")


def _tag_and_bits(payload: bytes) -> tuple[int, int]:
    if len(payload) != 13:
        raise _cannot_decode(payload)
    tag, bits = _TAG_BITS.unpack_from(payload, 4)
    return tag, bits


def decode_ack(payload: bytes) -> tuple[int, bool]:
    """(delivery_tag, multiple) of a basic.ack payload. Malformed -> 501."""
    tag, bits = _tag_and_bits(payload)
    return tag, bool(bits & 1)


def decode_nack(payload: bytes) -> tuple[int, bool, bool]:
    """(delivery_tag, multiple, requeue) of a basic.nack payload. Malformed -> 501."""
    tag, bits = _tag_and_bits(payload)
    return tag, bool(bits & 1), bool(bits & 2)


def decode_reject(payload: bytes) -> tuple[int, bool]:
    """(delivery_tag, requeue) of a basic.reject payload. Malformed -> 501."""
    tag, bits = _tag_and_bits(payload)
    return tag, bool(bits & 1)


# -------------------------------------------------------- hot path: us -> client


# Encoded short strings by value.  Consumer tags, exchanges and routing keys
# repeat for every delivery, so encoding each once saves an encode, a length check
# and a concatenation per message.  Bounded like the publish cache.
_shortstr_cache: dict[str, bytes] = {}
_pair_cache: dict[tuple[str, str], bytes] = {}
_CACHE_MAX = 4096


def _cached_shortstr(value: str) -> bytes:
    raw = _shortstr_cache.get(value)
    if raw is None:
        if len(_shortstr_cache) >= _CACHE_MAX:
            _shortstr_cache.clear()
        raw = _shortstr_cache[value] = _shortstr(value)
    return raw


def _cached_pair(exchange: str, routing_key: str) -> bytes:
    key = (exchange, routing_key)
    raw = _pair_cache.get(key)
    if raw is None:
        if len(_pair_cache) >= _CACHE_MAX:
            _pair_cache.clear()
        raw = _pair_cache[key] = _shortstr(exchange) + _shortstr(routing_key)
    return raw


# Frame type + channel + size + class/method id, packed in one call.
_METHOD_START = struct.Struct(">BHIHH")
_TAG_FLAG = struct.Struct(">QB")


def encode_deliver(
    channel: int,
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
) -> bytes:
    """The whole basic.deliver method frame.

    Hot path (once per message delivered): the strings come pre-encoded from the
    caches, and the frame is three struct packs and one join.
    """
    tag = _shortstr_cache.get(consumer_tag) or _cached_shortstr(consumer_tag)
    pair = _pair_cache.get((exchange, routing_key)) or _cached_pair(exchange, routing_key)
    size = 13 + len(tag) + len(pair)  # class+method 4, tag 8, flag 1
    return b"".join(
        (
            _METHOD_START.pack(FRAME_METHOD, channel, size, 60, 60),
            tag,
            _TAG_FLAG.pack(delivery_tag, redelivered),
            pair,
            _END,
        )
    )


def deliver_prefix(
    channel: int, consumer_tag: str, exchange: str, routing_key: str
) -> tuple[bytes, bytes]:
    """The two constant parts of a basic.deliver method frame for one consumer and
    one (exchange, routing key): the frame start through the consumer tag, and
    the exchange and routing key with the frame-end octet.  Joined around
    :func:`pack_delivery_tag` they make the whole frame; a consumer keeps them
    for the next delivery of the same route (one pack and one join a delivery)."""
    tag = _shortstr(consumer_tag)
    pair = _shortstr(exchange) + _shortstr(routing_key)
    start = _METHOD_START.pack(FRAME_METHOD, channel, 13 + len(tag) + len(pair), 60, 60) + tag
    return start, pair + _END


# basic.deliver's delivery tag and redelivered octet.
pack_delivery_tag = _TAG_FLAG.pack

# Frame end octet, then the next frame's type, channel and size.
_END_THEN_HEADER = struct.Struct(">BBHI")


def encode_delivery(
    channel: int,
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    header_payload: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """basic.deliver, its content header and its body, as one bytes.

    Hot path (once per message delivered): for a body that fits one frame this is
    one join of nine pieces instead of three frames built apart (saves ~0.3 us a
    delivery); longer or empty bodies go through :func:`encode_content`.
    """
    size = len(body)
    if not size or (frame_max and size > frame_max - FRAME_OVERHEAD):
        return b"".join(
            (
                encode_deliver(
                    channel, consumer_tag, delivery_tag, redelivered, exchange, routing_key
                ),
                *encode_content(channel, header_payload, body, frame_max),
            )
        )
    tag = _shortstr_cache.get(consumer_tag) or _cached_shortstr(consumer_tag)
    pair = _pair_cache.get((exchange, routing_key)) or _cached_pair(exchange, routing_key)
    return b"".join(
        (
            _METHOD_START.pack(FRAME_METHOD, channel, 13 + len(tag) + len(pair), 60, 60),
            tag,
            _TAG_FLAG.pack(delivery_tag, redelivered),
            pair,
            _END_THEN_HEADER.pack(FRAME_END, FRAME_HEADER, channel, len(header_payload)),
            header_payload,
            _END_THEN_HEADER.pack(FRAME_END, FRAME_BODY, channel, size),
            body,
            _END,
        )
    )


def encode_get_ok(
    channel: int,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    message_count: int,
) -> bytes:
    """The whole basic.get-ok method frame."""
    pair = _pair_cache.get((exchange, routing_key)) or _cached_pair(exchange, routing_key)
    size = 17 + len(pair)  # class+method 4, tag 8, flag 1, count 4
    return b"".join(
        (
            _METHOD_START.pack(FRAME_METHOD, channel, size, 60, 71),
            _TAG_FLAG.pack(delivery_tag, redelivered),
            pair,
            _U32.pack(message_count),
            _END,
        )
    )


def encode_return(
    channel: int, reply_code: int, reply_text: str, exchange: str, routing_key: str
) -> bytes:
    """The whole basic.return method frame."""
    text = _cached_shortstr(reply_text)
    pair = _pair_cache.get((exchange, routing_key)) or _cached_pair(exchange, routing_key)
    size = 6 + len(text) + len(pair)  # class+method 4, reply code 2
    return b"".join(
        (
            _METHOD_START.pack(FRAME_METHOD, channel, size, 60, 50),
            _U16.pack(reply_code),
            text,
            pair,
            _END,
        )
    )


# Whole ack/nack frames: fixed 13-byte payload, so one pack does it all.
_ACK_FRAME = struct.Struct(">BHIHHQBB")


def encode_basic_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """The whole basic.ack method frame (publisher confirms)."""
    return _ACK_FRAME.pack(FRAME_METHOD, channel, 13, 60, 80, delivery_tag, multiple, FRAME_END)


def encode_basic_nack(
    channel: int, delivery_tag: int, multiple: bool, requeue: bool = False
) -> bytes:
    """The whole basic.nack method frame (publisher confirms)."""
    bits = (1 if multiple else 0) | (2 if requeue else 0)
    return _ACK_FRAME.pack(FRAME_METHOD, channel, 13, 60, 120, delivery_tag, bits, FRAME_END)


def encode_content(channel: int, header_payload: bytes, body: bytes, frame_max: int) -> list[bytes]:
    """The content-header frame, then body frames of at most ``frame_max - 8``
    payload bytes each (one frame when frame_max is 0, none for an empty body).

    The header payload is forwarded as the publisher sent it (RabbitMQ does the
    same); its body-size field must already match ``body``.
    """
    frames = [
        _FRAME_HEADER.pack(FRAME_HEADER, channel, len(header_payload)) + header_payload + _END
    ]
    size = len(body)
    chunk = frame_max - FRAME_OVERHEAD if frame_max else size
    if size <= chunk:
        if size:
            frames.append(_FRAME_HEADER.pack(FRAME_BODY, channel, size) + body + _END)
        return frames
    view = memoryview(body)
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        frames.append(_FRAME_HEADER.pack(FRAME_BODY, channel, len(piece)) + piece + _END)
    return frames
