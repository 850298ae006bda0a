"""Comparing declare arguments the way RabbitMQ reports a mismatch.

RabbitMQ names field values by their AMQP type in its ``inequivalent arg`` texts
("received the value '2000' of type 'signedint' but current is none").  Clients
lose the wire type when they hand us Python values, so the type is inferred the
way pika and aio-pika encode them (ints that fit 32 bits go out as signed int).
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from .. import errors


def amqp_type(value: Any) -> str:
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


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
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
        if in_received == in_current and r == c and amqp_type(r) == amqp_type(c):
            continue
        raise errors.PreconditionFailed(
            f"inequivalent arg '{key}' for {kind} '{name}' in vhost '{vhost}': "
            f"received {describe(r, in_received)} but current is {describe(c, in_current)}"
        )
