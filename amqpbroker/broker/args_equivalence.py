"""Whether a redeclare's arguments are equivalent, and RabbitMQ's texts when not.

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
