"""Splitting a byte stream into AMQP 0-9-1 frames (sans-IO).

:class:`FrameReader` is fed bytes and hands back complete frames; nothing here
touches a socket or an event loop.  Its :meth:`FrameReader.next_publish` is the
hot path for incoming messages: a whole small basic.publish (method, header and
body frames) checked and taken in one call.  Error texts: see framing.py.
"""

from __future__ import annotations

import struct

from .framing import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    _frame_error,
    _unpack_frame_header,
)

__all__ = [
    "CONTENT_FRAME_MAX",
    "FIRST",
    "OTHER",
    "SAME_HEADER",
    "SAME_METHOD",
    "FrameReader",
    "content_body",
]

# How a publish FrameReader.next_publish hands out relates to the last FIRST one: the
# caller keeps what it decoded of that one (broker/publish_checks.PublishCache) and
# reuses it for the SAME_* ones.
FIRST = 0  # new bytes: from now on the publish later ones are compared with
SAME_METHOD = 1  # its method payload, another header: next_repeats has nothing
SAME_HEADER = 2  # its method and header payloads
# A publish that did not come from next_publish (assembled frame by frame), or one it
# took without remembering it: it relates to nothing.
OTHER = -1

# A content header payload's class id, weight and body size.
_CONTENT_PREFIX = struct.Struct(">HHQ")
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

    def next_publish(self, max_body: int) -> tuple[int, bytes, bytes, bytes, int] | None:
        """A whole basic.publish -- method, content header and one body frame -- when
        all three are in the buffer and plainly valid: one channel (not 0), each
        payload at most ``_COPY_ONCE_ABOVE`` bytes, class 60, the body size the header
        declares (1 to ``max_body`` bytes), clean flag bits.  Returns (channel, method
        payload, header payload, content, repeat) and consumes the three frames;
        ``content`` is the header and body frames exactly as received (a delivery on
        the same channel number forwards them as they are; :func:`content_body` is the
        body in it); ``repeat`` says how it relates to the last publish handed out
        (FIRST, SAME_METHOD, SAME_HEADER; OTHER: to none).  Returns None, consuming
        nothing, for anything else, which then goes frame by frame through
        :meth:`next_frame` and the connection's checks and error texts.

        Hot path (once per small publish): one call instead of three frames each
        split, returned and dispatched on their own; when the bytes up to the body
        repeat the last publish's, one comparison stands for all the checks, and
        ``repeat`` tells the caller it may reuse what it decoded and checked of them
        (the payloads are then the last ones again, as an allocation saving only).
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
                    SAME_HEADER,
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
                    SAME_METHOD,
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
                OTHER,
            )
        self._last_prefix = buf[pos:bstart]
        self._last_head = buf[pos : hstart + 12]
        self._last_body_head = buf[hend:bstart]
        self._repeatable = True
        self._last_channel = channel
        method = self._last_method = buf[pos + 7 : mend]
        header = self._last_header = buf[hstart:hend]
        self._last_body = bsize
        return channel, method, header, buf[mend + 1 : bend + 1], FIRST

    def next_repeats(self, max_body: int) -> list[bytes]:
        """Right after :meth:`next_publish` returned a publish: the contents of the
        whole publishes that follow it and repeat its bytes up to the body (same
        channel, method and header payloads), consumed.  A publisher sending the same
        kind of message in a burst fills a read with them; the broker then checks
        and routes them once (publish.route_publish)."""
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
        :meth:`next_publish` returned but the connection cannot take whole).  The
        publish is forgotten as the last one: the next is FIRST again, so a caller
        never reuses what it kept of a publish it did not see."""
        self._pos -= count
        self._last_prefix = None
        self._repeatable = False


def content_body(header: bytes, content: bytes) -> bytes:
    """The body in ``content`` (a content header frame with payload ``header``,
    then one body frame), as :meth:`FrameReader.next_publish` hands them out."""
    return content[len(header) + 15 : -1]  # header frame (7 + payload + 1), body frame header
