"""AMQP field tables: a faithful codec that keeps each value's wire type.

Tables come in methods (arguments, client properties) and in the ``headers``
property.  The few places that must rewrite them (dead-lettering adds ``x-death``,
BCC is removed before delivery) must not change anything the broker did not mean
to change, and pamqp 4.0.1 does, on re-encoding a decoded table: every integer is
re-packed in the smallest type that fits (a Java client's ``long`` count comes back
as a ``byte``), every float as a 32-bit ``f`` (``d`` doubles lose precision),
timestamps above 2**32 are read as milliseconds and written back as seconds,
non-UTF-8 long strings cannot be encoded at all, keys are sorted and those over 128
bytes truncated, and present-but-empty short strings are dropped.  So the table
codec here is our own.  It decodes to the same Python values as pamqp (tests check
this), but each integer, float and timestamp is an instance of a small subclass
that remembers its wire type (:class:`Long` is an ``int`` that compares equal to
the plain int), and the encoder writes that type back.  Values the broker creates
itself are plain Python values: ``int`` is written as ``l`` (signed 64-bit, what
RabbitMQ uses for ``x-death`` counts), ``float`` as ``d``.  Two deliberate
normalisations remain, both shared with RabbitMQ's own re-encoding: ``L`` is
written back as ``l`` (both are signed 64-bit), and a boolean octet other than 0/1
as 1.

Where pamqp and RabbitMQ differ on input no client sends, we follow RabbitMQ
(rabbit_binary_parser.erl): tables must end exactly where their length says (pamqp
silently shortens a truncated string), and a NUL field type is refused (pamqp reads
it as void).  On every input RabbitMQ accepts, the decoded values equal pamqp's.

Error handling: :func:`decode_table` raises :class:`errors.FrameError` (501) for a
malformed table; the package-internal walkers raise ``_Malformed`` for their
callers (method_codec.py, properties.py) to turn into their own errors.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any, ClassVar

from .. import errors

__all__ = [
    "MAX_TABLE_DEPTH",
    "Byte",
    "Double",
    "Float",
    "Long",
    "RawTimestamp",
    "Short",
    "SignedInt",
    "Timestamp",
    "UnsignedByte",
    "UnsignedInt",
    "UnsignedShort",
    "decode_table",
    "encode_table",
]

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
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


# ------------------------------------------------------------------ table checking
#
# What _decode_table accepts, without building the values: publishes carry a headers
# table (Celery's has 18 entries) that RabbitMQ validates on every publish but that the
# broker itself rarely reads; decoding it only to validate it was a fifth of the broker's
# CPU on application-shaped traffic. tests/property/test_table_check.py holds the two
# to the same verdict.

# Value sizes of the fixed-size tags, as _decode_value reads them.
_FIXED_SIZES: dict[int, int] = {tag: cls.packer.size for tag, cls in _INT_TAGS.items()}
_FIXED_SIZES.update(
    {0x6C: 8, 0x4C: 8, 0x74: 1, 0x56: 0, 0x54: 8, 0x64: 8, 0x66: 4, 0x44: 5}  # l L t V T d f D
)


def _check_value(buf: bytes, pos: int, end: int, depth: int) -> int:
    """Check the tagged field value at ``pos``; returns the next position."""
    tag = buf[pos]
    pos += 1
    size = _FIXED_SIZES.get(tag)
    if size is not None:
        stop = pos + size
        if stop > end:
            raise _Malformed
        return stop
    if tag == 0x53 or tag == 0x78:  # S, x: any bytes (S decodes to bytes when not UTF-8)
        return _longstr(buf, pos, end)[1]
    if tag == 0x46:  # F
        start, stop = _longstr(buf, pos, end)
        _check_table(buf, start, stop, depth + 1)
        return stop
    if tag == 0x41:  # A
        start, stop = _longstr(buf, pos, end)
        _check_array(buf, start, stop, depth + 1)
        return stop
    raise _Malformed


def _check_table(buf: bytes, pos: int, end: int, depth: int) -> None:
    if depth > MAX_TABLE_DEPTH:
        raise _Malformed
    # Keys must be UTF-8: one pass over the whole table when it is ASCII (usual).
    keys_ascii = buf[pos:end].isascii()
    unpack_u32 = _U32.unpack_from
    while pos < end:
        key_stop = pos + 1 + buf[pos]
        if not keys_ascii:
            buf[pos + 1 : key_stop].decode()  # UnicodeDecodeError
        # An entry running past the end leaves pos > end (checked below) or fails its
        # bounded value check; bytes past the buffer fail as IndexError / struct.error.
        if buf[key_stop] == 0x53:  # S inline, the common case (as _decode_table)
            pos = key_stop + 5 + unpack_u32(buf, key_stop + 1)[0]
        else:
            pos = _check_value(buf, key_stop, end, depth)
    if pos > end:
        raise _Malformed


def _check_array(buf: bytes, pos: int, end: int, depth: int) -> None:
    if depth > MAX_TABLE_DEPTH:
        raise _Malformed
    while pos < end:
        pos = _check_value(buf, pos, end, depth)


def check_table(data: bytes, start: int = 0, end: int | None = None) -> None:
    """Raise :class:`errors.FrameError` when ``decode_table`` would (the table body of
    ``data[start:end]``), without decoding it."""
    try:
        _check_table(data, start, len(data) if end is None else end, 0)
    except (_Malformed, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise errors.FrameError("cannot decode field table") from exc


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
