"""Header tables exactly as they came over the wire: key order and field types.

pika decodes a headers table into a dict, which keeps key order but loses the field
types (a long and a signed int are both ``int``; a timestamp is a datetime).  To
check tables such as ``x-death`` the way RabbitMQ sends them, :func:`record_wire`
makes pika keep each content header's raw property bytes next to the decoded
properties, and :func:`wire` re-reads them with the broker's own typed decoder
(amqpbroker.protocol.tables keeps each value's wire type).

``wire(properties)`` gives the headers as nested lists: a table is a list of
``(key, value)`` pairs in wire order, and a value is ``(type_tag, python_value)``:
``("S", "text")``, ``("l", 1)``, ``("I", 1)``, ``("T", seconds)``,
``("A", [...])``, ``("F", [...])``, ``("t", True)``, ``("V", None)``.
"""

from __future__ import annotations

import struct
from typing import Any

import pika.spec
import pytest

from amqpbroker.protocol import properties as props
from amqpbroker.protocol import tables

_RAW = "_wire_properties"


def record_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on (for this test) every decoded BasicProperties keeps its bytes."""
    original = pika.spec.BasicProperties.decode

    def decode(self: Any, encoded: bytes, offset: int = 0) -> Any:
        setattr(self, _RAW, bytes(encoded[offset:]))
        return original(self, encoded, offset)

    monkeypatch.setattr(pika.spec.BasicProperties, "decode", decode)


def _typed(value: Any) -> tuple[str, Any]:
    if isinstance(value, dict):
        return ("F", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("A", [_typed(v) for v in value])
    if isinstance(value, bool):
        return ("t", value)
    tag = getattr(type(value), "tag", None)
    if isinstance(value, tables.Timestamp):
        return ("T", value.raw)
    if isinstance(tag, bytes):
        return (tag.decode(), int(value) if isinstance(value, int) else float(value))
    if isinstance(value, str):
        return ("S", value)
    if value is None:
        return ("V", None)
    return (type(value).__name__, value)


def properties_of(properties: Any) -> Any:
    """The full typed properties (a pamqp Basic.Properties) of a received message."""
    raw = getattr(properties, _RAW)
    payload = struct.pack(">HHQ", 60, 0, 0) + raw
    return props.decode_properties(payload)


def wire(properties: Any) -> list[tuple[str, Any]]:
    """The headers table of a received message, typed and in wire order."""
    headers = properties_of(properties).headers
    return _typed(headers or {})[1]  # type: ignore[no-any-return]


def sent_wire(properties: pika.spec.BasicProperties) -> list[tuple[str, Any]]:
    """The headers table pika puts on the wire for ``properties``, as :func:`wire`
    shows a received one."""
    payload = struct.pack(">HHQ", 60, 0, 0) + b"".join(properties.encode())
    return _typed(props.decode_properties(payload).headers or {})[1]  # type: ignore[no-any-return]


def entries(table: list[tuple[str, Any]]) -> dict[str, Any]:
    """A typed table as a dict (for reading one value)."""
    return dict(table)
