"""AMQP 0-9-1 frames: splitting a byte stream, and encoding/decoding methods.

Sans-IO: :class:`FrameReader` is fed bytes and hands back complete frames; the
encoders return bytes.  Nothing here touches a socket or an event loop.

Two paths, on purpose:

* The hot path -- basic.publish / ack / nack / reject in, basic.deliver /
  get-ok / return / ack / nack and content frames out -- is written by hand with
  ``struct`` and byte slicing.  pamqp costs 8-30 us per method where these cost
  about 1 us (see PERFORMANCE-NOTES and ``encode_deliver``); at tens of thousands
  of messages a second that is the difference that matters.
* Every other method goes through :func:`decode_method` / :func:`encode_method`,
  which use pamqp's class definitions (``INDEX_MAPPING``, field names and types)
  with our own strict field walker.  pamqp's own unmarshal silently accepts
  truncated strings and trailing bytes that RabbitMQ refuses, and its marshal
  validates names against a regex RabbitMQ does not have (``Queue.DeclareOk``
  for a queue called ``"café"`` raises) and re-types table values
  (see properties.py).

Errors are the ones RabbitMQ sends (rabbit_reader.erl, rabbit_command_assembler.erl,
the generated rabbit_framing_amqp_0_9_1.erl), with the same texts:

* declared payload size over frame_max: 501
  ``FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,200000,131064}``;
  RabbitMQ tolerates 8 bytes over (its FRAME_SIZE_FUDGE: clients are often off by
  the 8 bytes of frame overhead), so the limit is a *payload* of frame_max bytes;
* frame end octet not 0xCE: 501 ``... {invalid_frame_end_marker,N}``;
* unknown frame type, method payload under 4 bytes, header payload under 12,
  heartbeat with a payload: 501 ``... unknown_frame``;
* method fields that do not decode exactly: 501 ``cannot decode <<...>>`` with the
  method's class/method id; a non-UTF-8 short string: 501
  ``Malformed UTF-8 in shortstr`` (class/method 0);
* unknown class/method id: RabbitMQ's reader crashes and resets the socket
  without connection.close; we raise 540 NOT_IMPLEMENTED (what LavinMQ sends) so
  the session can close the connection cleanly.  The same crash happens in
  RabbitMQ for a malformed field table inside a method; we send 501
  ``cannot decode``.
* Where RabbitMQ takes a non-UTF-8 exchange or routing key in basic.publish (and
  answers 404 for the exchange), we refuse it with 501 ``Malformed UTF-8``.

These were checked against a real RabbitMQ 3.x with raw frames (the 4096/4097
frame_max boundary, every text above, the socket reset).
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import base, commands

from .. import errors

# Package-internal: the strict table walker and short-string encoder are shared
# with the property codec.
from .properties import _decode_table, _Malformed, _shortstr, encode_table

__all__ = [
    "CONTENT_FRAME_MAX",
    "FRAME_BODY",
    "FRAME_END",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "FRAME_OVERHEAD",
    "HEARTBEAT_FRAME",
    "PROTOCOL_HEADER",
    "FrameReader",
    "content_body",
    "content_body_size",
    "decode_ack",
    "decode_method",
    "decode_nack",
    "decode_publish",
    "decode_reject",
    "deliver_prefix",
    "encode_basic_ack",
    "encode_basic_nack",
    "encode_content",
    "encode_deliver",
    "encode_frame",
    "encode_get_ok",
    "encode_method",
    "encode_return",
    "make_method",
    "method_key",
    "pack_delivery_tag",
]

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
# type, channel, size (7 bytes) + frame-end octet: what frame_max counts on top of
# the payload.
FRAME_OVERHEAD = 8
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

_FRAME_HEADER = struct.Struct(">BHI")
_unpack_frame_header = _FRAME_HEADER.unpack_from
# A content header payload's class id, weight and body size.
_CONTENT_PREFIX = struct.Struct(">HHQ")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_END = b"\xce"
# A method frame's type, channel and size, and its class and method ids as one int.
_PUBLISH_START = struct.Struct(">BHII")
_BASIC_PUBLISH_KEY = 0x003C0028

# Minimum payload size per frame type, as rabbit_command_assembler:analyze_frame
# matches them: method = class + method id, header = class, weight, body size (the
# property flags are checked later, by the property decoder); heartbeats must be
# empty (checked separately).
_MIN_PAYLOAD = {FRAME_METHOD: 4, FRAME_HEADER: 12, FRAME_BODY: 0, FRAME_HEARTBEAT: 0}
# The same by frame type octet, -1 for a type RabbitMQ does not know (a tuple
# index is cheaper than a dict lookup, once per frame).
_MIN_PAYLOAD_BY_TYPE = tuple(_MIN_PAYLOAD.get(frame_type, -1) for frame_type in range(256))

# Compact the read buffer once this much consumed data sits in front of the
# unread bytes; below it, the occasional tail move is cheaper than tracking more.
_COMPACT_AT = 64 * 1024
# Payloads larger than this are copied out through a memoryview (see next_frame).
_COPY_ONCE_ABOVE = 4096
# A connection's frame_max admits every body frame next_publish hands out (as
# content) from this size up.
CONTENT_FRAME_MAX = _COPY_ONCE_ABOVE + FRAME_OVERHEAD

# ------------------------------------------------------------------- error texts


def _erl_binary(data: bytes | bytearray) -> str:
    """Render bytes as Erlang's ``~p`` would, which is what RabbitMQ's texts show."""
    if data and all(32 <= b < 127 for b in data):
        text = bytes(data).decode("ascii").replace("\\", "\\\\").replace('"', '\\"')
        return f'<<"{text}">>'
    return "<<" + ",".join(map(str, data)) + ">>"


def _frame_error(frame_type: int, payload: bytes | bytearray, reason: str) -> errors.FrameError:
    # rabbit_reader:frame_error/5: "type ~p, ~s octets = ~p: ~p", first 16 octets.
    which = "all" if len(payload) <= 16 else "first 16"
    snippet = _erl_binary(payload[:16])
    return errors.FrameError(f"type {frame_type}, {which} octets = {snippet}: {reason}")


def _clip(text: str) -> str:
    # reply-text is a short string: RabbitMQ cuts explanations to fit 255 bytes.
    room = 255 - len("FRAME_ERROR - ")
    return text if len(text) <= room else text[: room - 3] + "..."


def _cannot_decode(payload: bytes) -> errors.FrameError:
    key = method_key(payload)
    return errors.FrameError(
        _clip(f"cannot decode <<{','.join(map(str, payload[4:]))}>>"),
        class_id=key >> 16,
        method_id=key & 0xFFFF,
    )


def _bad_utf8() -> errors.FrameError:
    # RabbitMQ raises this one without the method's ids (class 0, method 0).
    return errors.FrameError("Malformed UTF-8 in shortstr")


# ------------------------------------------------------------------ frame reader


class FrameReader:
    """Splits a byte stream into (frame_type, channel, payload) frames.

    Feed it whatever the socket gave with :meth:`feed`, then call
    :meth:`next_frame` until it returns None.  The protocol header is not a frame:
    the caller consumes those 8 bytes before feeding the reader.

    Hot path: the buffer is read through an offset with ``unpack_from``; a frame
    costs one header unpack and one payload copy.  The buffer is ``bytes`` while
    what is left unread at a feed is short (a small payload is then sliced out with
    one copy, where a bytearray needs two: ~0.1 us a frame); a long partial frame
    (a big body arriving in pieces) moves it to a ``bytearray`` that later pieces
    are appended to, so the cost stays linear however small the pieces.  Consumed
    bytes are dropped only at a feed -- never by copying the tail per frame, which
    is what makes naive ``buf = buf[n:]`` splitting quadratic.

    Error handling: raises :class:`errors.FrameError` (501) for a frame over
    ``frame_max`` (as soon as its 7-byte header is in, before the payload is
    buffered), a bad frame-end octet, or a frame RabbitMQ's analysis rejects
    (unknown type, short method/header payload, heartbeat with payload).  After an
    error the stream is out of sync; the connection must be closed.

    ``frame_max`` is the negotiated value *including* the 8 bytes of overhead, as
    AMQP defines it; 0 means no limit.  It may be changed between calls.
    """

    __slots__ = (
        "_buf",
        "_last_body",
        "_last_body_head",
        "_last_channel",
        "_last_head",
        "_last_header",
        "_last_method",
        "_last_prefix",
        "_pos",
        "_repeatable",
        "frame_max",
    )

    def __init__(self, frame_max: int = 131072) -> None:
        self.frame_max = frame_max
        self._buf: bytes | bytearray = b""
        self._pos = 0
        # The last publish next_publish took: its bytes up to the body (method frame,
        # header frame, body frame header), its parts and its body size.  A publisher
        # mostly repeats them byte for byte, and bytes equal to checked ones need no
        # second check.
        self._last_prefix: bytes | None = None
        # Its bytes up to the header's properties, and its body frame's end octet and
        # header (both inside _last_prefix); whether the publish just taken has the
        # bytes of _last_prefix (next_repeats looks for more of them).
        self._last_head = b""
        self._last_body_head = b""
        self._repeatable = False
        self._last_channel = 0
        self._last_method = b""
        self._last_header = b""
        self._last_body = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        buf = self._buf
        pos = self._pos
        rest = len(buf) - pos
        if not rest:
            # All consumed (a read that ended on a frame boundary): no copy at all.
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
        elif rest <= _COPY_ONCE_ABOVE:
            # A short partial frame: one copy of it and the new bytes (bounded), and
            # the buffer is bytes again if a long frame had made it a bytearray.
            self._buf = b"".join((buf[pos:], data))
            self._pos = 0
        else:
            if not isinstance(buf, bytearray):
                buf = self._buf = bytearray(buf[pos:])
                self._pos = 0
            elif pos >= _COMPACT_AT:
                # Dropping a prefix of a bytearray is cheap in CPython (it moves the
                # start pointer), and we do it at most once per feed, not per frame.
                del buf[:pos]
                self._pos = 0
            buf += data

    def next_frame(self) -> tuple[int, int, bytes] | None:
        buf = self._buf
        pos = self._pos
        start = pos + 7
        if len(buf) < start:
            return None
        frame_type, channel, size = _unpack_frame_header(buf, pos)
        frame_max = self.frame_max
        # RabbitMQ: PayloadSize > FrameMax - 8 + FRAME_SIZE_FUDGE(8) is too large.
        if size > frame_max and frame_max:
            raise _frame_error(
                frame_type, b"", f"{{frame_too_large,{size},{frame_max - FRAME_OVERHEAD}}}"
            )
        end = start + size
        if len(buf) <= end:
            return None
        if buf[end] != FRAME_END:
            raise _frame_error(
                frame_type, buf[start:end], f"{{invalid_frame_end_marker,{buf[end]}}}"
            )
        if size <= _COPY_ONCE_ABOVE:
            payload = buf[start:end]
            if type(payload) is not bytes:
                payload = bytes(payload)
        else:
            # Slicing a bytearray copies, and bytes() copies again; for big body
            # frames a memoryview slice saves the first copy (~4 us per 128 KiB).
            # For small frames the memoryview costs more than the copy it saves.
            with memoryview(buf) as view:
                payload = bytes(view[start:end])
        self._pos = end + 1
        minimum = _MIN_PAYLOAD_BY_TYPE[frame_type]
        if size < minimum or minimum < 0 or (frame_type == FRAME_HEARTBEAT and size):
            raise _frame_error(frame_type, payload, "unknown_frame")
        return frame_type, channel, payload

    def next_publish(self, max_body: int) -> tuple[int, bytes, bytes, bytes] | None:
        """A whole basic.publish -- method, content header and one body frame -- when
        all three are in the buffer and plainly valid: one channel (not 0), each
        payload at most ``_COPY_ONCE_ABOVE`` bytes, class 60, the body size the header
        declares (1 to ``max_body`` bytes), clean flag bits.  Returns (channel, method
        payload, header payload, content) and consumes the three frames; ``content``
        is the header and body frames exactly as received (a delivery on the same
        channel number forwards them as they are; :func:`content_body` is the body
        in it).  Returns None, consuming
        nothing, for anything else, which then goes frame by frame through
        :meth:`next_frame` and the connection's checks and error texts.

        Hot path (once per small publish): one call instead of three frames each
        split, returned and dispatched on their own; when the bytes up to the body
        repeat the last publish's, one comparison stands for all the checks and the
        method and header payloads are the last ones again (same objects: their
        hashes and the session's property check are cached).
        """
        buf = self._buf
        pos = self._pos
        prefix = self._last_prefix
        if prefix is not None and buf.startswith(prefix, pos) and type(buf) is bytes:
            # The checks below passed for these bytes; only the limits may differ.
            frame_max = self.frame_max
            size = self._last_body
            bstart = pos + len(prefix)
            bend = bstart + size
            if (
                len(buf) > bend
                and buf[bend] == FRAME_END
                and size <= max_body
                and not (frame_max and frame_max < _COPY_ONCE_ABOVE)
            ):
                self._pos = bend + 1
                self._repeatable = True
                last_method = self._last_method
                return (
                    self._last_channel,
                    last_method,
                    self._last_header,
                    buf[pos + len(last_method) + 8 : bend + 1],
                )
        elif prefix is not None and buf.startswith(self._last_head, pos) and type(buf) is bytes:
            # The same up to the header's properties (publishes that differ in a
            # message_id, say): the method frame, the header frame's size and the
            # body size were checked; the flag bits and the body frame are not yet.
            frame_max = self.frame_max
            size = self._last_body
            last_method = self._last_method
            hstart = pos + len(last_method) + 15
            hend = hstart + len(self._last_header)
            bend = hend + 8 + size
            if (
                len(buf) > bend
                and buf[bend] == FRAME_END
                and not buf[hstart + 13] & 0x03
                and buf.startswith(self._last_body_head, hend)
                and size <= max_body
                and not (frame_max and frame_max < _COPY_ONCE_ABOVE)
            ):
                self._pos = bend + 1
                self._repeatable = False
                return (
                    self._last_channel,
                    last_method,
                    buf[hstart:hend],
                    buf[hstart - 7 : bend + 1],
                )
        # Smallest publish: method payload 9 (ids, ticket, two empty names, bits),
        # header payload 14, body 1, plus 3 x 8 bytes of frame overhead.
        if len(buf) < pos + 48:
            return None
        frame_type, channel, msize, key = _PUBLISH_START.unpack_from(buf, pos)
        frame_max = self.frame_max
        if (
            key != _BASIC_PUBLISH_KEY
            or frame_type != FRAME_METHOD
            or not channel
            or msize > _COPY_ONCE_ABOVE
            # Below the AMQP minimum (embedding only): let next_frame judge sizes.
            or (frame_max and frame_max < _COPY_ONCE_ABOVE)
        ):
            return None
        mend = pos + 7 + msize
        hstart = mend + 8
        if len(buf) < hstart + 22 or buf[mend] != FRAME_END:
            return None
        frame_type, frame_channel, hsize = _unpack_frame_header(buf, mend + 1)
        if (
            frame_type != FRAME_HEADER
            or frame_channel != channel
            or not 14 <= hsize <= _COPY_ONCE_ABOVE
        ):
            return None
        hend = hstart + hsize
        bstart = hend + 8
        if len(buf) < bstart or buf[hend] != FRAME_END:
            return None
        frame_type, frame_channel, bsize = _unpack_frame_header(buf, hend + 1)
        bend = bstart + bsize
        if (
            frame_type != FRAME_BODY
            or frame_channel != channel
            or not 0 < bsize <= _COPY_ONCE_ABOVE
            or bsize > max_body
            or len(buf) <= bend
            or buf[bend] != FRAME_END
        ):
            return None
        class_id, _weight, body_size = _CONTENT_PREFIX.unpack_from(buf, hstart)
        if class_id != 60 or body_size != bsize or buf[hstart + 13] & 0x03:
            return None
        self._pos = bend + 1
        if type(buf) is not bytes:
            return (
                channel,
                bytes(buf[pos + 7 : mend]),
                bytes(buf[hstart:hend]),
                bytes(buf[mend + 1 : bend + 1]),
            )
        self._last_prefix = buf[pos:bstart]
        self._last_head = buf[pos : hstart + 12]
        self._last_body_head = buf[hend:bstart]
        self._repeatable = True
        self._last_channel = channel
        method = self._last_method = buf[pos + 7 : mend]
        header = self._last_header = buf[hstart:hend]
        self._last_body = bsize
        return channel, method, header, buf[mend + 1 : bend + 1]

    def next_repeats(self, max_body: int) -> list[bytes]:
        """Right after :meth:`next_publish` returned a publish: the contents of the
        whole publishes that follow it and repeat its bytes up to the body (same
        channel, method and header payloads), consumed.  A publisher sending the same
        kind of message in a burst fills a read with them; the broker then checks
        and routes them once (methods.route_publish)."""
        buf = self._buf
        prefix = self._last_prefix
        frame_max = self.frame_max
        size = self._last_body
        if (
            prefix is None
            or not self._repeatable
            or type(buf) is not bytes
            or size > max_body
            or (frame_max and frame_max < _COPY_ONCE_ABOVE)
        ):
            return []
        pos = self._pos
        found: list[bytes] = []
        startswith = buf.startswith
        end = len(buf)
        skip = len(self._last_method) + 8  # the method frame, before the content
        whole = len(prefix) + size  # up to the body's frame end
        while startswith(prefix, pos):
            bend = pos + whole
            if bend >= end or buf[bend] != FRAME_END:
                break
            found.append(buf[pos + skip : bend + 1])
            pos = bend + 1
        self._pos = pos
        return found

    def unread(self, count: int) -> None:
        """Give back the last ``count`` bytes handed out (a publish that
        :meth:`next_publish` returned but the connection cannot take whole)."""
        self._pos -= count


def content_body(header: bytes, content: bytes) -> bytes:
    """The body in ``content`` (a content header frame with payload ``header``,
    then one body frame), as :meth:`FrameReader.next_publish` hands them out."""
    return content[len(header) + 15 : -1]  # header frame (7 + payload + 1), body frame header


def content_body_size(header: bytes, content: bytes) -> int:
    """``len(content_body(header, content))`` without the slice."""
    return len(content) - len(header) - 16


def encode_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_HEADER.pack(frame_type, channel, len(payload)) + payload + _END


# -------------------------------------------------------------- generic methods


def method_key(payload: bytes) -> int:
    """``(class_id << 16) | method_id`` of a method-frame payload: one int to
    dispatch on.  A payload under 4 bytes raises FrameError (501)."""
    if len(payload) < 4:
        raise _frame_error(FRAME_METHOD, payload, "unknown_frame")
    return int(_U32.unpack_from(payload)[0])


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
    back with typed values (properties.py), equal to pamqp's.

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
