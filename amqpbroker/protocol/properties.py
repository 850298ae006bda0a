"""Content headers: a cheap property scanner, and the full decoder and encoder.

RabbitMQ keeps the encoded properties of a message and forwards them byte for byte;
it reads a property only where routing or a queue feature needs it.  We do the same:
:func:`scan_properties` walks the property flags and skips every field by its
length, decoding only the handful of properties the broker acts on, and the
``headers`` table only when something asks for it.

The few places that must rewrite properties (dead-lettering adds ``x-death``, BCC
is removed before delivery, direct reply-to rewrites ``reply_to``) use
:func:`decode_properties` and :func:`encode_header_payload`.  Those must not change
anything the broker did not mean to change: the ``headers`` table goes through our
own field-table codec (tables.py), which keeps each value's wire type where pamqp
re-types it.

Where pamqp and RabbitMQ differ on input no client sends, we follow RabbitMQ
(rabbit_binary_parser.erl, the generated decode_properties): the two low bits of
the property flags are ignored (pamqp reads bit 0 as "another flag word
follows"), properties must end exactly at the end of the payload (pamqp ignores
trailing bytes and silently shortens a truncated string), and a NUL field type is
refused (pamqp reads it as void).  On every input RabbitMQ accepts, the decoded
values equal pamqp's.

Error handling: malformed properties raise :class:`errors.InternalError` (541,
reply text just ``INTERNAL_ERROR``): that is what RabbitMQ 3.10 answers, checked
with raw frames, because its channel process crashes on them.  Malformed tables
elsewhere raise :class:`errors.FrameError` (501).  Nothing else escapes from the
decoders.  One divergence: the headers table is decoded on first access, so a
malformed table in a message nobody routes by headers is forwarded as it came,
where RabbitMQ refuses it at publish.
"""

from __future__ import annotations

import datetime
import struct
from typing import Any

from pamqp import commands

from .. import errors
from .tables import (
    Timestamp,
    _check_table,
    _decode_table,
    _longstr,
    _Malformed,
    _shortstr,
    _timestamp,
    encode_table,
)

__all__ = [
    "FLAGS",
    "PROPERTIES",
    "PROPERTY_LAYOUT",
    "PROPERTY_NAMES",
    "PropertyView",
    "decode_properties",
    "encode_header_payload",
    "parse_content_header",
    "scan_properties",
]

_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
# class id, weight, body size, first property-flags word.
_HEADER_PREFIX = struct.Struct(">HHQH")
_CONTENT_PREFIX = struct.Struct(">HHQ")


def _malformed_properties() -> errors.InternalError:
    # RabbitMQ 3.10 closes the connection with a bare 541 INTERNAL_ERROR here.
    return errors.InternalError("")


def parse_content_header(payload: bytes) -> tuple[int, int]:
    """(class_id, body_size) of a content-header frame payload.

    Only the fixed 12 bytes are read; the properties are checked by
    :func:`scan_properties`.

    Error handling: under 12 bytes -> FrameError (501; FrameReader already refuses
    such frames, as RabbitMQ's frame analysis does); a non-zero weight ->
    UnexpectedFrame (505), where RabbitMQ's command assembler sends such a header
    (the caller adds the content method's class/method ids).
    """
    if len(payload) < 12:
        raise errors.FrameError(f"content header of {len(payload)} bytes: unknown_frame")
    class_id, weight, body_size = _CONTENT_PREFIX.unpack_from(payload)
    if weight != 0:
        raise errors.UnexpectedFrame(
            f"expected content header for class {class_id}, got non content header frame instead"
        )
    return class_id, body_size


# The basic class's properties in wire order, as pamqp names them, with their field
# kinds: the one place the property layout is spelled out.  A property's flag bit
# is its position (the first is bit 15 of the flags word); every flag constant
# below, the scanner, the full decoder and encoder, the publish-time shape check
# (broker/publish.py) and the broker's one-property pre-checks derive from it.
PROPERTY_LAYOUT: tuple[tuple[str, str], ...] = (
    ("content_type", "shortstr"),
    ("content_encoding", "shortstr"),
    ("headers", "table"),
    ("delivery_mode", "octet"),
    ("priority", "octet"),
    ("correlation_id", "shortstr"),
    ("reply_to", "shortstr"),
    ("expiration", "shortstr"),
    ("message_id", "shortstr"),
    ("timestamp", "timestamp"),
    ("message_type", "shortstr"),
    ("user_id", "shortstr"),
    ("app_id", "shortstr"),
    ("cluster_id", "shortstr"),
)
PROPERTY_NAMES = tuple(name for name, _kind in PROPERTY_LAYOUT)
# Each property's bit in the 16-bit property-flags word (offsets 12-13 of a
# content-header payload); a property in the first eight has FLAGS[name] >> 8 in
# the high byte alone (offset 12).
FLAGS: dict[str, int] = {name: 0x8000 >> i for i, name in enumerate(PROPERTY_NAMES)}

# The same bits as module constants, for the scanner's hot path (computed once).
_CONTENT_TYPE = FLAGS["content_type"]
_CONTENT_ENCODING = FLAGS["content_encoding"]
_HEADERS = FLAGS["headers"]
_DELIVERY_MODE = FLAGS["delivery_mode"]
_PRIORITY = FLAGS["priority"]
_CORRELATION_ID = FLAGS["correlation_id"]
_REPLY_TO = FLAGS["reply_to"]
_EXPIRATION = FLAGS["expiration"]
_MESSAGE_ID = FLAGS["message_id"]
_TIMESTAMP = FLAGS["timestamp"]
_TYPE = FLAGS["message_type"]
_USER_ID = FLAGS["user_id"]
_APP_ID = FLAGS["app_id"]
_CLUSTER_ID = FLAGS["cluster_id"]

_UNSET: Any = object()


class PropertyView:
    """The properties the broker acts on, read from the encoded header payload.

    ``headers`` is decoded on first access (to typed values, see module doc) and
    cached; it is None when the message has no headers property, as in pamqp.
    Reading it raises :class:`errors.InternalError` (541) if the table is
    malformed.  ``headers_start``/``headers_end`` locate the table body in the
    payload, for code that wants to forward or hash it without decoding.
    """

    __slots__ = (
        "_headers",
        "_payload",
        "body_size",
        "delivery_mode",
        "expiration",
        "flags",
        "headers_end",
        "headers_start",
        "priority",
        "reply_to",
        "user_id",
    )

    def __init__(self, payload: bytes, body_size: int, flags: int) -> None:
        self._payload = payload
        self.body_size = body_size
        self.flags = flags
        self.delivery_mode: int | None = None
        self.priority: int | None = None
        self.expiration: str | None = None
        self.user_id: str | None = None
        self.reply_to: str | None = None
        # Offsets of the headers table body in payload; (0, 0) when absent.
        self.headers_start = 0
        self.headers_end = 0
        self._headers: dict[str, Any] | None = _UNSET

    @property
    def has_headers(self) -> bool:
        return bool(self.flags & _HEADERS)

    @property
    def headers(self) -> dict[str, Any] | None:
        headers = self._headers
        if headers is _UNSET:
            if not self.flags & _HEADERS:
                headers = None
            else:
                try:
                    headers = _decode_table(self._payload, self.headers_start, self.headers_end, 0)
                except (_Malformed, IndexError, struct.error, UnicodeDecodeError) as exc:
                    raise _malformed_properties() from exc
            self._headers = headers
        return headers

    def check_headers(self) -> None:
        """Raise as ``headers`` would for a malformed table, without decoding it."""
        if self._headers is _UNSET and self.flags & _HEADERS:
            try:
                _check_table(self._payload, self.headers_start, self.headers_end, 0)
            except (_Malformed, IndexError, struct.error, UnicodeDecodeError) as exc:
                raise _malformed_properties() from exc

    def __repr__(self) -> str:
        return (
            f"PropertyView(delivery_mode={self.delivery_mode!r}, priority={self.priority!r}, "
            f"expiration={self.expiration!r}, user_id={self.user_id!r}, "
            f"reply_to={self.reply_to!r}, has_headers={self.has_headers})"
        )


def _flags(payload: bytes) -> int:
    """The property flags.  As in RabbitMQ the two low bits are ignored (bit 0
    would announce a further flag word, which no 0-9-1 property needs)."""
    return int(_U16.unpack_from(payload, 12)[0]) & 0xFFFC


def _str_end(payload: bytes, pos: int, end: int) -> int:
    stop = pos + 1 + payload[pos]
    if stop > end:
        raise _Malformed
    return stop


def delivery_mode(header_payload: bytes) -> int | None:
    """The delivery_mode property alone (None when absent), without a full scan:
    every publish to a durable queue asks for it (persistent or not), and it comes
    right after the first three properties.  For a header that passed the publish
    checks; a truncated one raises IndexError."""
    p = header_payload
    high = p[12]  # high byte of the property flags
    if not high & (_DELIVERY_MODE >> 8):
        return None
    pos = 14
    if high & (_CONTENT_TYPE >> 8):
        pos += 1 + p[pos]
    if high & (_CONTENT_ENCODING >> 8):
        pos += 1 + p[pos]
    if high & (_HEADERS >> 8):
        pos += 4 + int.from_bytes(p[pos : pos + 4], "big")
    return p[pos]


def scan_properties(header_payload: bytes) -> PropertyView:
    """Read delivery_mode, priority, expiration, user_id, reply_to and where the
    headers table lies, skipping every other property by its length.

    Hot path: one pass of integer arithmetic over the payload; strings are decoded
    only for the three properties the broker compares, and the headers table not
    at all until asked.  Fields the broker never reads are length-checked but not
    UTF-8 checked (RabbitMQ does not check them either).

    Error handling: truncated or trailing bytes, or non-UTF-8 in a decoded
    property -> :class:`errors.InternalError` (541, as RabbitMQ); nothing else
    escapes.
    """
    try:
        end = len(header_payload)
        body_size = _U64.unpack_from(header_payload, 4)[0]
        flags = _flags(header_payload)
        view = PropertyView(header_payload, body_size, flags)
        pos = 14
        if not flags:
            if end != 14:
                raise _Malformed
            return view
        p = header_payload
        if flags & _CONTENT_TYPE:
            pos = _str_end(p, pos, end)
        if flags & _CONTENT_ENCODING:
            pos = _str_end(p, pos, end)
        if flags & _HEADERS:
            start, pos = _longstr(p, pos, end)
            view.headers_start, view.headers_end = start, pos
        if flags & _DELIVERY_MODE:
            view.delivery_mode = p[pos]
            pos += 1
        if flags & _PRIORITY:
            view.priority = p[pos]
            pos += 1
        if flags & _CORRELATION_ID:
            pos = _str_end(p, pos, end)
        if flags & _REPLY_TO:
            stop = _str_end(p, pos, end)
            view.reply_to = p[pos + 1 : stop].decode()
            pos = stop
        if flags & _EXPIRATION:
            stop = _str_end(p, pos, end)
            view.expiration = p[pos + 1 : stop].decode()
            pos = stop
        if flags & _MESSAGE_ID:
            pos = _str_end(p, pos, end)
        if flags & _TIMESTAMP:
            pos += 8
        if flags & _TYPE:
            pos = _str_end(p, pos, end)
        if flags & _USER_ID:
            stop = _str_end(p, pos, end)
            view.user_id = p[pos + 1 : stop].decode()
            pos = stop
        if flags & _APP_ID:
            pos = _str_end(p, pos, end)
        if flags & _CLUSTER_ID:
            pos = _str_end(p, pos, end)
        # RabbitMQ's decoder requires the properties to end exactly here.
        if pos != end:
            raise _Malformed
        return view
    except (_Malformed, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise _malformed_properties() from exc


# (attribute, flag, kind) in wire order, for the full decoder and the encoder.
PROPERTIES: tuple[tuple[str, int, str], ...] = tuple(
    (name, FLAGS[name], kind) for name, kind in PROPERTY_LAYOUT
)


def decode_properties(header_payload: bytes) -> commands.Basic.Properties:
    """Every property of a content header, as a pamqp ``Basic.Properties``.

    For the rare paths that rewrite properties; values equal pamqp's decoding,
    with typed table values and timestamps (see module doc) so that
    :func:`encode_header_payload` gives back the same bytes.

    Error handling: as :func:`scan_properties`, but every string is UTF-8 checked
    (pamqp's decoding fails on those too).
    """
    props = commands.Basic.Properties()
    try:
        flags = _flags(header_payload)
        pos = 14
        p = header_payload
        end = len(p)
        value: Any
        for name, flag, kind in PROPERTIES:
            if not flags & flag:
                continue
            if kind == "shortstr":
                stop = _str_end(p, pos, end)
                value = p[pos + 1 : stop].decode()
            elif kind == "octet":
                value = p[pos]
                stop = pos + 1
            elif kind == "table":
                start, stop = _longstr(p, pos, end)
                value = _decode_table(p, start, stop, 0)
            else:  # timestamp
                stop = pos + 8
                if stop > end:
                    raise _Malformed
                value = _timestamp(_U64.unpack_from(p, pos)[0])
            setattr(props, name, value)
            pos = stop
        if pos != end:
            raise _Malformed
    except (_Malformed, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise _malformed_properties() from exc
    return props


def encode_header_payload(
    properties: commands.Basic.Properties, body_size: int, class_id: int = 60
) -> bytes:
    """The content-header frame payload for ``properties`` and ``body_size``.

    Unlike pamqp's marshal this keeps present-but-empty strings and each table
    value's wire type, and does not validate (it re-encodes what a client sent).
    ``cluster_id == ''`` counts as absent: it is pamqp's default.
    Raises TypeError/ValueError for values that cannot be encoded.
    """
    flags = 0
    parts: list[bytes] = []
    for name, flag, kind in PROPERTIES:
        value = getattr(properties, name, None)
        if value is None or (flag == _CLUSTER_ID and value == ""):
            continue
        flags |= flag
        if kind == "shortstr":
            parts.append(_shortstr(value))
        elif kind == "octet":
            parts.append(bytes((value,)))
        elif kind == "table":
            parts.append(encode_table(value))
        elif isinstance(value, Timestamp):
            parts.append(_U64.pack(value.raw))
        elif isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.UTC)
            parts.append(_U64.pack(int(value.timestamp())))
        else:  # RawTimestamp, or an int given directly
            if not 0 <= value < 2**64:
                raise ValueError(f"timestamp out of range: {value!r}")
            parts.append(_U64.pack(value))
    return _HEADER_PREFIX.pack(class_id, 0, body_size, flags) + b"".join(parts)
