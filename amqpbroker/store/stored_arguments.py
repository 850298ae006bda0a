"""AMQP argument tables to and from one canonical text form.

Exchange, queue and binding arguments are AMQP field tables: values may be str, int, float,
bool, None, bytes, Decimal, datetime, lists and nested tables. JSON holds most of these and
keeps int, float and bool apart; the rest are written as one-key objects tagged with a "$"
name. Keys are sorted, so equal tables encode to equal text: a binding's arguments are part
of its identity, and the stores compare bindings by this text (that is also why the memory
store keeps the encoded form, so both stores agree on identity and on normalisation).

Values decoded from the wire remember their field type (``protocol.tables``: a
``SignedInt`` is an int read as ``I``). That type is part of a binding's identity, as in
RabbitMQ, and of the inequivalent-arg texts, so it must survive a restart: such a value is
stored as its wire bytes ({"$amqp": hex}) and decoded back by the same codec.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from collections.abc import Mapping
from typing import Any

from amqpbroker.protocol import tables

_BYTES = "$bytes"
_DECIMAL = "$decimal"
_DATETIME = "$datetime"
# Wraps a user table that would otherwise read as a tag ({"$bytes": "..."} as real arguments).
_TABLE = "$table"
_AMQP = "$amqp"
_TAGS = frozenset({_BYTES, _DECIMAL, _DATETIME, _TABLE, _AMQP})
# The types the codec gives values read off the wire (every one of them remembers its tag).
_WIRE_TYPED = (
    tables.Byte,
    tables.UnsignedByte,
    tables.Short,
    tables.UnsignedShort,
    tables.SignedInt,
    tables.UnsignedInt,
    tables.Long,
    tables.RawTimestamp,
    tables.Float,
    tables.Double,
    tables.Timestamp,
)
# A field table holding one value under the key "v": its length prefix and "\x01v" come
# before the value's own wire bytes.
_ONE_VALUE_PREFIX = len(b"\x00\x00\x00\x00\x01v")


def encode_arguments(arguments: Mapping[str, Any]) -> str:
    """Canonical JSON text for an argument table; TypeError for a value no table can hold."""
    return json.dumps(_to_json(arguments), sort_keys=True, separators=(",", ":"))


def decode_arguments(text: str) -> dict[str, Any]:
    table = _from_json(json.loads(text))
    if not isinstance(table, dict):
        raise ValueError(f"stored arguments are not a table: {text[:80]!r}")
    return table


def _to_json(value: Any) -> Any:
    # bool before int: bool is a subclass of int and must stay a bool.
    if isinstance(value, _WIRE_TYPED):
        return {_AMQP: tables.encode_table({"v": value})[_ONE_VALUE_PREFIX:].hex()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, decimal.Decimal):
        return {_DECIMAL: str(value)}
    if isinstance(value, datetime.datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, Mapping):
        table = {_key(k): _to_json(v) for k, v in value.items()}
        if len(table) == 1 and next(iter(table)) in _TAGS:
            return {_TABLE: table}
        return table
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    raise TypeError(f"cannot store argument value of type {type(value).__name__}")


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"argument table keys must be str, not {type(key).__name__}")
    return key


def _from_json(value: Any) -> Any:
    # Decoded top-down (not with json's object_hook, which works bottom-up) so the contents of
    # a "$table" wrapper are never mistaken for a tag.
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == _BYTES:
            return base64.b64decode(inner)
        if tag == _DECIMAL:
            return decimal.Decimal(inner)
        if tag == _DATETIME:
            return datetime.datetime.fromisoformat(inner)
        if tag == _TABLE:
            return {k: _from_json(v) for k, v in inner.items()}
        if tag == _AMQP:
            return tables.decode_table(b"\x01v" + bytes.fromhex(inner))["v"]
    return {k: _from_json(v) for k, v in value.items()}
