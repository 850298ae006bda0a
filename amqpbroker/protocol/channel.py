"""Per-channel protocol state: open or closing, and content assembly.

A basic.publish method frame is followed by a content header and body frames on
the same channel; :class:`ChannelState` collects them until the message is whole.
Whole small publishes never come here: they take the connection's fast path
(FrameReader.next_publish).  The connection owns the channel table and turns the
errors raised here into close frames.
"""

from __future__ import annotations

import struct

from .. import errors

__all__ = ["ChannelState"]

_HEADER_PREFIX = struct.Struct(">HHQ")
_BASIC_CLASS = 60
# While a publish awaits its content, RabbitMQ's 505 names basic.publish (60, 40) as
# the method it failed (3.10.8 and 4.0.5 alike); with no publish pending, 0 / 0.
PUBLISH_IDS = {"class_id": 60, "method_id": 40}


class ChannelState:
    """Per-channel protocol state: open/closing and content assembly."""

    __slots__ = ("body_parts", "body_remaining", "closing", "header", "publish")

    def __init__(self) -> None:
        self.closing = False  # we sent channel.close, awaiting close-ok
        self.publish: bytes | None = None  # method payload awaiting content
        self.header: bytes | None = None
        self.body_parts: list[bytes] = []
        self.body_remaining = 0

    def content_header(self, payload: bytes, max_message_size: int) -> bool:
        """Take the content-header frame of the publish awaiting content; True
        when the content is whole (an empty body): then :meth:`take_content`.

        Error handling: a frame out of place raises UnexpectedFrame (505), a short
        header FrameError (501), both connection errors; a body over
        ``max_message_size`` raises PreconditionFailed (406, a channel error) after
        dropping the publish.
        """
        if self.publish is None:
            raise errors.UnexpectedFrame("expected method frame, got non method frame instead")
        if self.header is not None:
            raise errors.UnexpectedFrame(
                "expected content body, got non content body frame instead", **PUBLISH_IDS
            )
        if len(payload) < 14:
            raise errors.FrameError("content header too short")
        class_id, _weight, body_size = _HEADER_PREFIX.unpack_from(payload)
        if class_id != _BASIC_CLASS:
            raise errors.UnexpectedFrame(
                f"expected content header for class 60, got one for class {class_id} instead"
            )
        if body_size > max_message_size:
            self.publish = None
            raise errors.PreconditionFailed(
                f"message size {body_size} is larger than configured max size {max_message_size}",
                class_id=60,
                method_id=40,
            )
        if payload[13] & 0x03:
            # The two low flag bits mean nothing in 0-9-1 (bit 0 would announce a
            # second flags word) and RabbitMQ ignores them, but forwards them: clients
            # (pika, pamqp) then fail to parse the delivery. Cleared, so one publisher
            # cannot poison every consumer of a queue.
            payload = payload[:13] + bytes((payload[13] & 0xFC,)) + payload[14:]
        self.header = payload
        self.body_remaining = body_size
        return self.body_remaining == 0

    def content_body(self, payload: bytes) -> bool:
        """Take a content-body frame; True when the content is whole: then
        :meth:`take_content`.  A frame out of place raises UnexpectedFrame (505),
        more body than the header declared FrameError (501)."""
        if self.publish is None:
            raise errors.UnexpectedFrame("expected method frame, got non method frame instead")
        if self.header is None:
            raise errors.UnexpectedFrame(
                "expected content header for class 60, got non content header frame instead",
                **PUBLISH_IDS,
            )
        self.body_remaining -= len(payload)
        if self.body_remaining < 0:
            raise errors.FrameError("content body larger than the size its header declared")
        self.body_parts.append(payload)
        return self.body_remaining == 0

    def method_during_content(self) -> errors.UnexpectedFrame:
        """The 505 for a method frame while the publish awaits its content."""
        return errors.UnexpectedFrame(
            "expected content header for class 60, got non content header frame instead"
            if self.header is None
            else "expected content body, got non content body frame instead",
            **PUBLISH_IDS,
        )

    def take_content(self) -> tuple[bytes, bytes, bytes]:
        """The whole publish (method payload, header payload, body); the channel
        then awaits the next method."""
        parts = self.body_parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        method, header = self.publish, self.header
        assert method is not None and header is not None
        self.publish = self.header = None
        self.body_parts = []
        return method, header, body
