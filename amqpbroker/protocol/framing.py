"""AMQP 0-9-1 framing: frame types, the frame envelope, method keys, and the
FRAME_ERROR texts every decoder raises.

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

The rest of the codec: reader.py splits a byte stream into frames,
method_codec.py decodes and encodes the rare methods through pamqp's
definitions, basic_codec.py is the hand-written hot path (publish, ack, deliver).
"""

from __future__ import annotations

import struct

from .. import errors

__all__ = [
    "FRAME_BODY",
    "FRAME_END",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "FRAME_OVERHEAD",
    "HEARTBEAT_FRAME",
    "PROTOCOL_HEADER",
    "encode_frame",
    "frame_summary",
    "method_key",
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
_U32 = struct.Struct(">I")
_END = b"\xce"

# ------------------------------------------------------------------- error texts


def _erl_binary(data: bytes | bytearray) -> str:
    """Render bytes as Erlang's ``~p`` would, which is what RabbitMQ's texts show."""
    if data and all(32 <= b < 127 for b in data):
        text = bytes(data).decode("ascii").replace("\\", "\\\\").replace('"', '\\"')
        return f'<<"{text}">>'
    return "<<" + ",".join(map(str, data)) + ">>"


def frame_summary(frame_type: int, payload: bytes | bytearray) -> str:
    """A frame as rabbit_reader's errors show it: "type ~p, ~s octets = ~p", at most
    the first 16 octets."""
    which = "all" if len(payload) <= 16 else "first 16"
    return f"type {frame_type}, {which} octets = {_erl_binary(payload[:16])}"


def _frame_error(frame_type: int, payload: bytes | bytearray, reason: str) -> errors.FrameError:
    # rabbit_reader:frame_error/5: "type ~p, ~s octets = ~p: ~p".
    return errors.FrameError(f"{frame_summary(frame_type, payload)}: {reason}")


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


def encode_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_HEADER.pack(frame_type, channel, len(payload)) + payload + _END


# -------------------------------------------------------------- generic methods


def method_key(payload: bytes) -> int:
    """``(class_id << 16) | method_id`` of a method-frame payload: one int to
    dispatch on.  A payload under 4 bytes raises FrameError (501)."""
    if len(payload) < 4:
        raise _frame_error(FRAME_METHOD, payload, "unknown_frame")
    return int(_U32.unpack_from(payload)[0])
