"""AMQP errors as exceptions that carry their wire meaning.

Every failure a client can observe is raised as a subclass of :class:`AMQPError`
holding the reply code and the reply text RabbitMQ would send.  Exactly one place
(the session that owns the connection) turns them into ``channel.close`` or
``connection.close``: a :class:`ChannelError` closes only the channel it happened on,
an :class:`AMQPConnectionError` closes the whole connection.

The text passed in is the part after the code name; ``reply_text`` prepends the
name the way RabbitMQ does (``"NOT_FOUND - no queue 'q' in vhost '/'"``).
"""

from __future__ import annotations

# Reply codes (AMQP 0-9-1 spec section 1.2, as RabbitMQ uses them).
REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
NO_ROUTE = 312
NO_CONSUMERS = 313
CONNECTION_FORCED = 320
INVALID_PATH = 402
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

REPLY_NAMES: dict[int, str] = {
    REPLY_SUCCESS: "OK",
    CONTENT_TOO_LARGE: "CONTENT_TOO_LARGE",
    NO_ROUTE: "NO_ROUTE",
    NO_CONSUMERS: "NO_CONSUMERS",
    CONNECTION_FORCED: "CONNECTION_FORCED",
    INVALID_PATH: "INVALID_PATH",
    ACCESS_REFUSED: "ACCESS_REFUSED",
    NOT_FOUND: "NOT_FOUND",
    RESOURCE_LOCKED: "RESOURCE_LOCKED",
    PRECONDITION_FAILED: "PRECONDITION_FAILED",
    FRAME_ERROR: "FRAME_ERROR",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    COMMAND_INVALID: "COMMAND_INVALID",
    CHANNEL_ERROR: "CHANNEL_ERROR",
    UNEXPECTED_FRAME: "UNEXPECTED_FRAME",
    RESOURCE_ERROR: "RESOURCE_ERROR",
    NOT_ALLOWED: "NOT_ALLOWED",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    INTERNAL_ERROR: "INTERNAL_ERROR",
}

# Codes that the spec makes connection-level even when raised while handling a
# channel method (RabbitMQ escalates these the same way).
CONNECTION_CODES = frozenset(
    {
        CONNECTION_FORCED,
        INVALID_PATH,
        FRAME_ERROR,
        SYNTAX_ERROR,
        COMMAND_INVALID,
        CHANNEL_ERROR,
        UNEXPECTED_FRAME,
        RESOURCE_ERROR,
        NOT_ALLOWED,
        NOT_IMPLEMENTED,
        INTERNAL_ERROR,
    }
)


class AMQPError(Exception):
    """An error with an AMQP reply code; ``class_id``/``method_id`` name the
    method that caused it (0 when none), as carried by channel.close."""

    reply_code: int = INTERNAL_ERROR

    def __init__(
        self, text: str, *, reply_code: int | None = None, class_id: int = 0, method_id: int = 0
    ) -> None:
        if reply_code is not None:
            self.reply_code = reply_code
        self.text = text
        self.class_id = class_id
        self.method_id = method_id
        super().__init__(self.reply_text)

    @property
    def reply_text(self) -> str:
        name = REPLY_NAMES.get(self.reply_code, str(self.reply_code))
        return f"{name} - {self.text}" if self.text else name


class ChannelError(AMQPError):
    """Closes the channel it happened on; the connection stays open."""


class AMQPConnectionError(AMQPError):
    """Closes the whole connection."""


# Channel-scoped errors.


class AccessRefused(ChannelError):
    reply_code = ACCESS_REFUSED


class NotFound(ChannelError):
    reply_code = NOT_FOUND


class ResourceLocked(ChannelError):
    reply_code = RESOURCE_LOCKED


class PreconditionFailed(ChannelError):
    reply_code = PRECONDITION_FAILED


# Connection-scoped errors.


class ConnectionForced(AMQPConnectionError):
    reply_code = CONNECTION_FORCED


class FrameError(AMQPConnectionError):
    reply_code = FRAME_ERROR


class SyntaxError_(AMQPConnectionError):
    reply_code = SYNTAX_ERROR


class CommandInvalid(AMQPConnectionError):
    reply_code = COMMAND_INVALID


class ChannelErrorCode(AMQPConnectionError):
    reply_code = CHANNEL_ERROR


class UnexpectedFrame(AMQPConnectionError):
    reply_code = UNEXPECTED_FRAME


class ResourceError(AMQPConnectionError):
    reply_code = RESOURCE_ERROR


class NotAllowed(AMQPConnectionError):
    reply_code = NOT_ALLOWED


class NotImplemented_(AMQPConnectionError):
    reply_code = NOT_IMPLEMENTED


class InternalError(AMQPConnectionError):
    reply_code = INTERNAL_ERROR
