"""How RabbitMQ prints field values in error texts (Erlang's ``~tp``), and the AMQP type
names it reports, so that our 406 texts read exactly like RabbitMQ's."""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Mapping
from decimal import Decimal


def epoch_seconds(value: datetime.datetime) -> int:
    """AMQP timestamps are whole seconds; naive datetimes are taken as UTC."""
    return calendar.timegm(value.utctimetuple())


def is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def field_type(value: object) -> str:
    """The AMQP field type RabbitMQ would report; for ints, the width pika and py-amqp
    pick (signed 32-bit when it fits, else 64-bit)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    names: list[tuple[type | tuple[type, ...], str]] = [
        (float, "double"),
        (str, "longstr"),
        ((bytes, bytearray), "binary"),
        (datetime.datetime, "timestamp"),
        (Decimal, "decimal"),
        (Mapping, "table"),
        ((list, tuple), "array"),
        (type(None), "void"),
    ]
    for kind, name in names:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _erlang_binary(value: bytes) -> str:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        text = None
    if text is None or not all(ch.isprintable() or ch in "\n\r\t" for ch in text):
        return "<<" + ",".join(str(byte) for byte in value) + ">>"
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'<<"{escaped}">>' if text.isascii() else f'<<"{escaped}"/utf8>>'


def format_term(value: object) -> str:
    """Best-effort Erlang ~tp rendering of a decoded field value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa and mantissa.lstrip("-").isdigit():
            mantissa += ".0"
        return f"{mantissa}e{int(exponent)}" if exponent else mantissa
    if isinstance(value, str):
        return _erlang_binary(value.encode())
    if isinstance(value, bytes | bytearray):
        return _erlang_binary(bytes(value))
    if value is None:
        return "undefined"
    if isinstance(value, datetime.datetime):
        return str(epoch_seconds(value))
    if isinstance(value, Decimal):
        sign, digits, power = value.as_tuple()
        unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        scale = -power if isinstance(power, int) else 0
        return f"{{{scale},{unscaled}}}"
    if isinstance(value, Mapping):
        fields = (
            f"{{{_erlang_binary(str(key).encode())},{field_type(item)},{format_term(item)}}}"
            for key, item in value.items()
        )
        return "[" + ",".join(fields) + "]"
    if isinstance(value, list | tuple):
        items = (f"{{{field_type(item)},{format_term(item)}}}" for item in value)
        return "[" + ",".join(items) + "]"
    return repr(value)
