"""Comparing declare arguments the way RabbitMQ reports a mismatch.

RabbitMQ names field values by their AMQP type in its ``inequivalent arg`` texts
when one side is missing ("received the value '2000' of type 'signedint' but current
is none"), and shows bare values when both are there ("received '3000' but current
is '2000'"; checked against RabbitMQ 3.10).  Values decoded from the wire remember
their type (protocol.tables); for plain Python values the type is inferred the
way pika and aio-pika encode them (ints that fit 32 bits go out as signed int).
Like RabbitMQ, values compare by type class: every integer type is one class.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from .. import errors

# RabbitMQ's names for the field types our decoder tags its numbers with.
_TAG_NAMES = {
    b"b": "byte",
    b"B": "unsignedbyte",
    b"s": "short",
    b"u": "unsignedshort",
    b"I": "signedint",
    b"i": "unsignedint",
    b"l": "long",
    b"f": "float",
    b"d": "double",
}
_INT_TYPES = frozenset(
    {"byte", "unsignedbyte", "short", "unsignedshort", "signedint", "unsignedint", "long"}
)


def amqp_type(value: Any) -> str:
    tag = getattr(type(value), "tag", None)
    if isinstance(tag, bytes) and tag in _TAG_NAMES:
        return _TAG_NAMES[tag]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, bytes | bytearray):
        return "longstr"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if value is None:
        return "void"
    return type(value).__name__


def _type_class(type_name: str) -> str:
    if type_name in _INT_TYPES:
        return "int"
    return "float" if type_name == "double" else type_name


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    if isinstance(value, int):
        return str(int(value))  # tagged ints repr as e.g. SignedInt(5)
    if isinstance(value, float):
        return repr(float(value))
    return str(value)


def describe(value: Any, present: bool = True) -> str:
    """RabbitMQ's rendering of an argument value in an error text."""
    if not present:
        return "none"
    return f"the value '{_format_value(value)}' of type '{amqp_type(value)}'"


def assert_flag_equivalent(
    kind: str, name: str, vhost: str, arg: str, received: bool, current: bool
) -> None:
    if received != current:
        raise errors.PreconditionFailed(
            f"inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': "
            f"received '{_format_value(received)}' but current is '{_format_value(current)}'"
        )


def assert_args_equivalent(
    kind: str,
    name: str,
    vhost: str,
    received: dict[str, Any],
    current: dict[str, Any],
    keys: frozenset[str] | tuple[str, ...],
) -> None:
    """Only the arguments RabbitMQ checks on redeclare are compared (``keys``)."""
    for key in keys:
        in_received, in_current = key in received, key in current
        if not in_received and not in_current:
            continue
        r, c = received.get(key), current.get(key)
        if in_received and in_current:
            if _type_class(amqp_type(r)) == _type_class(amqp_type(c)) and r == c:
                continue
            shown = f"'{_format_value(r)}' but current is '{_format_value(c)}'"
        elif key == "x-queue-type" and _text(r if in_received else c) == "classic":
            continue  # RabbitMQ: no x-queue-type means classic
        else:
            shown = f"{describe(r, in_received)} but current is {describe(c, in_current)}"
        raise errors.PreconditionFailed(
            f"inequivalent arg '{key}' for {kind} '{name}' in vhost '{vhost}': received {shown}"
        )


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value


# --------------------------------------------------------- queue.declare arguments

# rabbit_misc's ceiling for x-message-ttl / x-expires (ten years in ms).
_MAX_EXPIRY = 315_360_000_000
_MAX_PRIORITY = 255
_OVERFLOW_MODES = frozenset({"drop-head", "reject-publish", "reject-publish-dlx"})
_QUEUE_MODES = frozenset({"default", "lazy"})
_QUEUE_TYPES = frozenset({"classic", "quorum", "stream"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(value: Any) -> str | int:
    """The value as an int, or RabbitMQ's complaint about its type."""
    if not _is_int(value):
        return f'"expected integer, got {amqp_type(value)}"'
    return int(value)


def _check_expiry(value: Any, zero_allowed: bool) -> str | None:
    number = _integer(value)
    if isinstance(number, str):
        return number
    if number == 0 and not zero_allowed:
        return "{value_zero,0}"
    if number < 0:
        return f"{{value_negative,{number}}}"
    if number > _MAX_EXPIRY:
        return f"{{value_too_large,{number}}}"
    return None


def _check_non_negative(value: Any) -> str | None:
    number = _integer(value)
    if isinstance(number, str):
        return number
    return f"{{value_negative,{number}}}" if number < 0 else None


def _check_priority(value: Any) -> str | None:
    problem = _check_non_negative(value)
    if problem is None and int(value) > _MAX_PRIORITY:
        return f"{{max_value_exceeded,{int(value)}}}"
    return problem


def _check_choice(value: Any, choices: frozenset[str], complaint: str) -> str | None:
    if not isinstance(value, str | bytes | bytearray):
        return f"{{unacceptable_type,{amqp_type(value)}}}"
    text = _text(value)
    return None if text in choices else complaint.format(text)


def _check_string(value: Any) -> str | None:
    if isinstance(value, str | bytes | bytearray):
        return None
    return f"{{unacceptable_type,{amqp_type(value)}}}"


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{{unacceptable_type,{amqp_type(value)}}}"


def _check_version(value: Any) -> str | None:
    number = _integer(value)
    if isinstance(number, str):
        return number
    return None if number in (1, 2) else f"\"unsupported queue version '{number}'\""


# In the order RabbitMQ 3.10 checks them (rabbit_amqqueue:declare_args), since only
# the first failure is reported.
_QUEUE_ARGUMENT_CHECKS: tuple[tuple[str, Any], ...] = (
    ("x-expires", lambda v: _check_expiry(v, zero_allowed=False)),
    ("x-message-ttl", lambda v: _check_expiry(v, zero_allowed=True)),
    ("x-dead-letter-exchange", None),  # its own message format, see below
    ("x-dead-letter-routing-key", _check_string),
    ("x-max-length", _check_non_negative),
    ("x-max-length-bytes", _check_non_negative),
    ("x-max-priority", _check_priority),
    ("x-overflow", lambda v: _check_choice(v, _OVERFLOW_MODES, "invalid_overflow")),
    (
        "x-queue-mode",
        lambda v: _check_choice(v, _QUEUE_MODES, "\"unsupported queue mode '{}'\""),
    ),
    ("x-single-active-consumer", _check_bool),
    (
        "x-queue-type",
        lambda v: _check_choice(v, _QUEUE_TYPES, "\"unsupported queue type '{}'\""),
    ),
    ("x-queue-version", _check_version),
)


def validate_queue_arguments(name: str, vhost: str, arguments: dict[str, Any]) -> None:
    """Refuse the x-arguments RabbitMQ 3.10 refuses when it creates a classic queue
    (406, with its texts, checked against a real broker).  Unknown arguments pass."""
    dlx = arguments.get("x-dead-letter-exchange")
    for key, check in _QUEUE_ARGUMENT_CHECKS:
        if key not in arguments:
            continue
        if check is None:
            if _check_string(dlx) is not None:
                raise errors.PreconditionFailed(
                    f"invalid type '{amqp_type(dlx)}' for arg 'x-dead-letter-exchange' in "
                    f"queue '{name}' in vhost '{vhost}'"
                )
            continue
        problem = check(arguments[key])
        if problem is None and key == "x-dead-letter-routing-key" and dlx is None:
            problem = "routing_key_but_no_dlx_defined"
        if problem is not None:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for queue '{name}' in vhost '{vhost}': {problem}"
            )
