"""Decoding and encoding the rare AMQP methods with pamqp's definitions.

Every method but the hot basic.* ones (basic_codec.py) goes through
:func:`decode_method` / :func:`encode_method`, which use pamqp's class definitions
(``INDEX_MAPPING``, field names and types) with our own strict field walker.
pamqp's own unmarshal silently accepts truncated strings and trailing bytes that
RabbitMQ refuses, and its marshal validates names against a regex RabbitMQ does
not have (``Queue.DeclareOk`` for a queue called ``"café"`` raises) and re-types
table values (see tables.py).  Error texts: see framing.py.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import base, commands

from .. import errors
from .framing import _END, _FRAME_HEADER, FRAME_METHOD, _bad_utf8, _cannot_decode, method_key

# Package-internal: the strict table walker and short-string encoder are shared
# with the property codec.
from .tables import _decode_table, _Malformed, _shortstr, encode_table

__all__ = ["decode_method", "encode_method", "make_method"]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

# Field layouts of pamqp's classes, computed once per method class.
_Layout = tuple[tuple[str, str], ...]
_LAYOUTS: dict[type[base.Frame], _Layout] = {}


def _layout(cls: type[base.Frame]) -> _Layout:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = tuple((name, cls.amqp_type(name)) for name in cls.__slots__)
    return layout


def decode_method(payload: bytes) -> base.Frame:
    """Decode a method-frame payload into its pamqp object.

    Fields are read strictly, like RabbitMQ's generated decoder: every string and
    table must fit, nothing may trail, short strings must be UTF-8.  Tables come
    back with typed values (tables.py), equal to pamqp's.

    Error handling: unknown class/method -> NotImplemented_ (540); anything that
    does not decode -> FrameError (501) carrying the method's ids.
    """
    key = method_key(payload)
    cls = commands.INDEX_MAPPING.get(key)
    if cls is None:
        raise errors.NotImplemented_(
            f"unknown method class_id={key >> 16} method_id={key & 0xFFFF}",
            class_id=key >> 16,
            method_id=key & 0xFFFF,
        )
    try:
        return _decode_fields(cls, payload)
    except UnicodeDecodeError as exc:
        raise _bad_utf8() from exc
    except (_Malformed, IndexError, struct.error) as exc:
        raise _cannot_decode(payload) from exc


def _decode_fields(cls: type[base.Frame], data: bytes) -> base.Frame:
    # __new__ skips pamqp's __init__, whose validate() rejects legal names.
    method = cls.__new__(cls)
    end = len(data)
    pos = 4
    bits = bit = 0
    in_bits = False
    value: Any
    for name, kind in _layout(cls):
        if kind == "bit":
            # Consecutive bits share octets, 8 to an octet, low bit first.
            if not in_bits or bit == 8:
                bits = data[pos]
                pos += 1
                bit = 0
                in_bits = True
            setattr(method, name, bool(bits >> bit & 1))
            bit += 1
            continue
        in_bits = False
        if kind == "shortstr":
            stop = pos + 1 + data[pos]
            if stop > end:
                raise _Malformed
            value = data[pos + 1 : stop].decode()
        elif kind == "short":
            stop = pos + 2
            value = _U16.unpack_from(data, pos)[0]
        elif kind == "long":
            stop = pos + 4
            value = _U32.unpack_from(data, pos)[0]
        elif kind in ("longlong", "timestamp"):
            stop = pos + 8
            value = _U64.unpack_from(data, pos)[0]
        elif kind == "octet":
            stop = pos + 1
            value = data[pos]
        else:  # longstr, table
            start = pos + 4
            stop = start + _U32.unpack_from(data, pos)[0]
            if stop > end:
                raise _Malformed
            if kind == "table":
                value = _decode_table(data, start, stop, 0)
            else:
                raw = data[start:stop]
                # As pamqp: text when it is UTF-8, bytes otherwise (SASL responses).
                try:
                    value = raw.decode()
                except UnicodeDecodeError:
                    value = raw
        setattr(method, name, value)
        pos = stop
    if pos != end:
        raise _Malformed
    return method


def make_method(cls: type[base.Frame], **fields: Any) -> base.Frame:
    """A pamqp method object built without pamqp's validation (which refuses
    names RabbitMQ accepts, e.g. non-ASCII queue names); unset fields are zero
    values ("", 0, False, {})."""
    method = cls.__new__(cls)
    for name, kind in _layout(cls):
        default: Any = {"bit": False, "shortstr": "", "longstr": "", "table": {}}.get(kind, 0)
        setattr(method, name, fields.pop(name, default))
    if fields:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(fields)}")
    return method


def encode_method(channel: int, method: base.Frame) -> bytes:
    """The whole method frame for a pamqp method object (rare methods)."""
    parts = [_U32.pack(method.index)]
    bits = bit = 0
    in_bits = False
    for name, kind in _layout(type(method)):
        value = getattr(method, name, None)
        if kind == "bit":
            if in_bits and bit == 8:
                parts.append(bytes((bits,)))
                in_bits = False
            if not in_bits:
                bits = bit = 0
                in_bits = True
            if value:
                bits |= 1 << bit
            bit += 1
            continue
        if in_bits:
            parts.append(bytes((bits,)))
            in_bits = False
        if kind == "shortstr":
            parts.append(_shortstr(value or ""))
        elif kind == "short":
            parts.append(_U16.pack(value or 0))
        elif kind == "long":
            parts.append(_U32.pack(value or 0))
        elif kind in ("longlong", "timestamp"):
            parts.append(_U64.pack(value or 0))
        elif kind == "octet":
            parts.append(bytes((value or 0,)))
        elif kind == "table":
            parts.append(encode_table(value))
        else:  # longstr
            raw = (value or "").encode() if not isinstance(value, (bytes, bytearray)) else value
            parts += (_U32.pack(len(raw)), bytes(raw))
    if in_bits:
        parts.append(bytes((bits,)))
    payload = b"".join(parts)
    return _FRAME_HEADER.pack(FRAME_METHOD, channel, len(payload)) + payload + _END
