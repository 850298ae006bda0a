"""Content headers: a cheap property scanner, and a faithful field-table codec.

RabbitMQ keeps the encoded properties of a message and forwards them byte for byte;
it reads a property only where routing or a queue feature needs it.  We do the same:
:func:`scan_properties` walks the property flags and skips every field by its
length, decoding only the handful of properties the broker acts on, and the
``headers`` table only when something asks for it.

The few places that must rewrite properties (dead-lettering adds ``x-death``, BCC
is removed before delivery, direct reply-to rewrites ``reply_to``) use
:func:`decode_properties` and :func:`encode_header_payload`.  Those must not change
anything the broker did not mean to change, and pamqp 4.0.1 does, on re-encoding a
decoded table: every integer is re-packed in the smallest type that fits (a Java
client's ``long`` count comes back as a ``byte``), every float as a 32-bit ``f``
(``d`` doubles lose precision), timestamps above 2**32 are read as milliseconds and
written back as seconds, non-UTF-8 long strings cannot be encoded at all, keys are
sorted and those over 128 bytes truncated, and present-but-empty short strings are
dropped.  So the table codec here is our own.  It decodes to the same Python values
as pamqp (tests check this), but each integer, float and timestamp is an instance of
a small subclass that remembers its wire type (:class:`Long` is an ``int`` that
compares equal to the plain int), and the encoder writes that type back.  Values
the broker creates itself are plain Python values: ``int`` is written as ``l``
(signed 64-bit, what RabbitMQ uses for ``x-death`` counts), ``float`` as ``d``.
Two deliberate normalisations remain, both shared with RabbitMQ's own re-encoding:
``L`` is written back as ``l`` (both are signed 64-bit), and a boolean octet other
than 0/1 as 1.

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
import decimal
import struct
from typing import Any, ClassVar

from pamqp import commands

from .. import errors

__all__ = [
    "Byte",
    "Double",
    "Float",
    "Long",
    "PropertyView",
    "RawTimestamp",
    "Short",
    "SignedInt",
    "Timestamp",
    "UnsignedByte",
    "UnsignedInt",
    "UnsignedShort",
    "decode_properties",
    "decode_table",
    "encode_header_payload",
    "encode_table",
    "parse_content_header",
    "scan_properties",
]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
# class id, weight, body size, first property-flags word.
_HEADER_PREFIX = struct.Struct(">HHQH")
_CONTENT_PREFIX = struct.Struct(">HHQ")
_DECIMAL = struct.Struct(">Bi")

# A table nested deeper than this is refused rather than risking RecursionError;
# no client nests headers anywhere near this deep.
MAX_TABLE_DEPTH = 64


class _Malformed(Exception):
    """Internal: raised by the low-level walkers, turned into FrameError at the API."""


# --------------------------------------------------------------- typed field values


class _TaggedInt(int):
    """An int that remembers the field-table type it was read as."""

    __slots__ = ()
    tag: ClassVar[bytes]
    packer: ClassVar[struct.Struct]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"


class Byte(_TaggedInt):
    tag, packer = b"b", struct.Struct(">b")


class UnsignedByte(_TaggedInt):
    tag, packer = b"B", struct.Struct(">B")


class Short(_TaggedInt):
    tag, packer = b"s", struct.Struct(">h")


class UnsignedShort(_TaggedInt):
    tag, packer = b"u", struct.Struct(">H")


class SignedInt(_TaggedInt):
    tag, packer = b"I", struct.Struct(">i")


class UnsignedInt(_TaggedInt):
    tag, packer = b"i", struct.Struct(">I")


class Long(_TaggedInt):
    tag, packer = b"l", struct.Struct(">q")


class RawTimestamp(_TaggedInt):
    """A timestamp pamqp cannot turn into a datetime (out of datetime's range);
    kept as its raw 64-bit value so the message still round-trips."""

    tag, packer = b"T", _U64


class _TaggedFloat(float):
    __slots__ = ()
    tag: ClassVar[bytes]
    packer: ClassVar[struct.Struct]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({float(self)!r})"


class Float(_TaggedFloat):
    tag, packer = b"f", struct.Struct(">f")


class Double(_TaggedFloat):
    tag, packer = b"d", struct.Struct(">d")


class Timestamp(datetime.datetime):
    """A datetime equal to pamqp's, plus the raw wire value (``raw``), since
    pamqp's reading (values above 2**32 taken as milliseconds) is lossy."""

    __slots__ = ("raw",)
    raw: int


_INT_TAGS: dict[int, type[_TaggedInt]] = {
    ord(c.tag): c for c in (Byte, UnsignedByte, Short, UnsignedShort, SignedInt, UnsignedInt)
}


def _timestamp(raw: int) -> Timestamp | RawTimestamp:
    # Same reading as pamqp.decode.timestamp, so the values compare equal.
    seconds: float = raw / 1000.0 if raw > 0xFFFFFFFF else raw
    try:
        value = Timestamp.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return RawTimestamp(raw)
    value.raw = raw
    return value


# ------------------------------------------------------------------ table decoding


def _longstr(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, stop) of a long string at pos, bounds-checked against end."""
    if pos + 4 > end:
        raise _Malformed
    start = pos + 4
    stop = start + _U32.unpack_from(buf, pos)[0]
    if stop > end:
        raise _Malformed
    return start, stop


def _decode_value(buf: bytes, pos: int, end: int, depth: int) -> tuple[Any, int]:
    """Decode the tagged field value at ``pos``; returns (value, next position)."""
    tag = buf[pos]
    pos += 1
    # Ordered by how often clients send them: strings, ints, booleans, tables.
    if tag == 0x53:  # S: long string; str when UTF-8, else bytes (as pamqp)
        start, stop = _longstr(buf, pos, end)
        raw = buf[start:stop]
        try:
            return raw.decode(), stop
        except UnicodeDecodeError:
            return bytes(raw), stop
    cls = _INT_TAGS.get(tag)
    if cls is not None:
        stop = pos + cls.packer.size
        if stop > end:
            raise _Malformed
        return cls(cls.packer.unpack_from(buf, pos)[0]), stop
    if tag == 0x6C or tag == 0x4C:  # l / L: both signed 64-bit (RabbitMQ, pamqp)
        if pos + 8 > end:
            raise _Malformed
        return Long(Long.packer.unpack_from(buf, pos)[0]), pos + 8
    if tag == 0x74:  # t
        if pos >= end:
            raise _Malformed
        return buf[pos] != 0, pos + 1
    if tag == 0x46:  # F
        start, stop = _longstr(buf, pos, end)
        return _decode_table(buf, start, stop, depth + 1), stop
    if tag == 0x41:  # A
        start, stop = _longstr(buf, pos, end)
        return _decode_array(buf, start, stop, depth + 1), stop
    if tag == 0x56:  # V
        return None, pos
    if tag == 0x54:  # T
        if pos + 8 > end:
            raise _Malformed
        return _timestamp(_U64.unpack_from(buf, pos)[0]), pos + 8
    if tag == 0x64 or tag == 0x66:  # d / f
        fcls = Double if tag == 0x64 else Float
        stop = pos + fcls.packer.size
        if stop > end:
            raise _Malformed
        return fcls(fcls.packer.unpack_from(buf, pos)[0]), stop
    if tag == 0x44:  # D: scale octet + signed 32-bit mantissa
        if pos + 5 > end:
            raise _Malformed
        scale, mantissa = _DECIMAL.unpack_from(buf, pos)
        # Built from a string so the exponent is exactly -scale whatever the
        # decimal context; equal to pamqp's Decimal(mantissa) * 10 ** -scale.
        return decimal.Decimal(f"{mantissa}E-{scale}"), pos + 5
    if tag == 0x78:  # x: byte array
        start, stop = _longstr(buf, pos, end)
        return bytearray(buf[start:stop]), stop
    raise _Malformed


def _decode_table(buf: bytes, pos: int, end: int, depth: int) -> dict[str, Any]:
    if depth > MAX_TABLE_DEPTH:
        raise _Malformed
    table: dict[str, Any] = {}
    unpack_u32 = _U32.unpack_from
    while pos < end:
        key_stop = pos + 1 + buf[pos]
        # A key must leave room for at least the value's type octet.
        if key_stop >= end:
            raise _Malformed
        key = buf[pos + 1 : key_stop].decode()
        tag = buf[key_stop]
        # Long strings, the most common header value, are decoded inline: a
        # function call per value is most of the cost of a small table.
        if tag == 0x53:
            start = key_stop + 5
            stop = start + unpack_u32(buf, key_stop + 1)[0]
            if stop > end:
                raise _Malformed
            raw = buf[start:stop]
            try:
                table[key] = raw.decode()
            except UnicodeDecodeError:
                table[key] = bytes(raw)
            pos = stop
        else:
            table[key], pos = _decode_value(buf, key_stop, end, depth)
    return table


def _decode_array(buf: bytes, pos: int, end: int, depth: int) -> list[Any]:
    if depth > MAX_TABLE_DEPTH:
        raise _Malformed
    items: list[Any] = []
    while pos < end:
        value, pos = _decode_value(buf, pos, end, depth)
        items.append(value)
    return items


def decode_table(data: bytes) -> dict[str, Any]:
    """Decode a field table *body* (without its 4-byte length) into typed values.

    Raises :class:`errors.FrameError` when malformed.
    """
    try:
        return _decode_table(data, 0, len(data), 0)
    except (_Malformed, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise errors.FrameError("cannot decode field table") from exc


# ------------------------------------------------------------------ table encoding


def _shortstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 255:
        raise ValueError(f"short string longer than 255 bytes: {raw[:40]!r}...")
    return bytes((len(raw),)) + raw


def _encode_value(value: Any, out: list[bytes], depth: int) -> None:
    kind = type(value)
    if kind is str:
        raw = value.encode()
        out += (b"S", _U32.pack(len(raw)), raw)
    elif kind is bool:
        out.append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, (_TaggedInt, _TaggedFloat)):
        out += (value.tag, value.packer.pack(value))
    elif kind is int:
        out += (b"l", Long.packer.pack(value))
    elif isinstance(value, dict):
        out.append(b"F")
        _encode_table(value, out, depth + 1)
    elif isinstance(value, (list, tuple)):
        out.append(b"A")
        _encode_array(value, out, depth + 1)
    elif value is None:
        out.append(b"V")
    elif isinstance(value, Timestamp):
        out += (b"T", _U64.pack(value.raw))
    elif isinstance(value, datetime.datetime):
        # As pamqp: naive datetimes are UTC, sub-second precision is dropped.
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        out += (b"T", _U64.pack(int(value.timestamp())))
    elif isinstance(value, float):
        out += (b"d", Double.packer.pack(value))
    elif isinstance(value, decimal.Decimal):
        out += (b"D", _encode_decimal(value))
    elif isinstance(value, bytes):
        out += (b"S", _U32.pack(len(value)), value)
    elif isinstance(value, bytearray):
        out += (b"x", _U32.pack(len(value)), bytes(value))
    elif isinstance(value, str):
        raw = value.encode()
        out += (b"S", _U32.pack(len(raw)), raw)
    elif isinstance(value, int):
        out += (b"l", Long.packer.pack(value))
    else:
        raise TypeError(f"cannot encode {kind.__name__} in a field table: {value!r}")


def _encode_decimal(value: decimal.Decimal) -> bytes:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"cannot encode {value} as an AMQP decimal")
    mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if exponent > 0:
        mantissa, exponent = mantissa * 10**exponent, 0
    return _DECIMAL.pack(-exponent, mantissa)


def _encode_table(table: dict[str, Any], out: list[bytes], depth: int) -> None:
    if depth > MAX_TABLE_DEPTH:
        raise ValueError("field table nested too deeply")
    parts: list[bytes] = []
    for key, value in table.items():
        parts.append(_shortstr(key))
        _encode_value(value, parts, depth)
    body = b"".join(parts)
    out += (_U32.pack(len(body)), body)


def _encode_array(items: list[Any] | tuple[Any, ...], out: list[bytes], depth: int) -> None:
    if depth > MAX_TABLE_DEPTH:
        raise ValueError("field array nested too deeply")
    parts: list[bytes] = []
    for value in items:
        _encode_value(value, parts, depth)
    body = b"".join(parts)
    out += (_U32.pack(len(body)), body)


def encode_table(table: dict[str, Any] | None) -> bytes:
    """Encode a field table, length prefix included, keeping each tagged value's
    wire type and the keys' order.  Raises TypeError/ValueError for values that
    cannot be encoded (a programming error, not a wire error)."""
    out: list[bytes] = []
    try:
        _encode_table(table or {}, out, 0)
    except struct.error as exc:  # a value out of its type's range
        raise ValueError(f"cannot encode field table: {exc}") from exc
    return b"".join(out)


# ----------------------------------------------------------------- content headers


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


# Property flag bits, in wire order (AMQP 0-9-1 basic class).
_CONTENT_TYPE = 0x8000
_CONTENT_ENCODING = 0x4000
_HEADERS = 0x2000
_DELIVERY_MODE = 0x1000
_PRIORITY = 0x0800
_CORRELATION_ID = 0x0400
_REPLY_TO = 0x0200
_EXPIRATION = 0x0100
_MESSAGE_ID = 0x0080
_TIMESTAMP = 0x0040
_TYPE = 0x0020
_USER_ID = 0x0010
_APP_ID = 0x0008
_CLUSTER_ID = 0x0004

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
_PROPERTIES: tuple[tuple[str, int, str], ...] = (
    ("content_type", _CONTENT_TYPE, "shortstr"),
    ("content_encoding", _CONTENT_ENCODING, "shortstr"),
    ("headers", _HEADERS, "table"),
    ("delivery_mode", _DELIVERY_MODE, "octet"),
    ("priority", _PRIORITY, "octet"),
    ("correlation_id", _CORRELATION_ID, "shortstr"),
    ("reply_to", _REPLY_TO, "shortstr"),
    ("expiration", _EXPIRATION, "shortstr"),
    ("message_id", _MESSAGE_ID, "shortstr"),
    ("timestamp", _TIMESTAMP, "timestamp"),
    ("message_type", _TYPE, "shortstr"),
    ("user_id", _USER_ID, "shortstr"),
    ("app_id", _APP_ID, "shortstr"),
    ("cluster_id", _CLUSTER_ID, "shortstr"),
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
        for name, flag, kind in _PROPERTIES:
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
    for name, flag, kind in _PROPERTIES:
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
