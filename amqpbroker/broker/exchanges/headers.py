"""The headers exchange: bindings match on message header values; the routing key is ignored.

Followed from RabbitMQ 3.10-3.12 ``rabbit_exchange_type_headers`` (3.10.8 is the
reference broker):

- ``x-match`` is ``all`` (the default when absent), ``any``, ``all-with-x`` or
  ``any-with-x``; any other value is refused at bind time (406, texts below).
- The ``x-match`` argument itself never takes part in matching.  Plain ``all``/``any``
  also skip every other binding argument starting with ``x-``; the ``-with-x`` modes
  compare those too.
- A binding argument whose value is void (None) matches when the header is present,
  whatever its value.
- ``all`` with nothing left to compare matches every message; ``any`` matches none.
- Values compare as Erlang ``==`` on the decoded terms, so the wire type of a top-level
  value is ignored: longstr and binary are both binaries (str "a" equals bytes b"a"),
  integers of any width and floats compare numerically (1 equals 1.0), a timestamp is
  its integer seconds, booleans are atoms (True never equals 1), a decimal is
  {scale, value} (1.0 and 1.00 differ).  Tables and arrays keep per-element type tags in
  Erlang, so nested values compare with their types and in order (and, both being
  lists, an empty table equals an empty array).  Decoded Python values
  have lost the wire width of numbers, so nested int widths (and float vs double) cannot
  be told apart here; that is the one place we may match where RabbitMQ would not.
  (RabbitMQ 3.13+ switched to exact ``=:=`` on values, making 1 and 1.0 differ.)
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Hashable, Mapping
from decimal import Decimal
from typing import Any

from ... import errors
from .base import NO_DESTINATIONS, BindingKey, Exchange
from .erlang_terms import epoch_seconds, field_type, format_term, is_utf8

_MODES = ("all", "any", "all-with-x", "any-with-x")

# Canonical forms, tagged so that values of unrelated kinds never compare equal.
_BIN, _NUM, _BOOL, _DEC, _LIST, _VOID, _OTHER = range(7)

# Types whose Python == already agrees with RabbitMQ when both sides have that type;
# the matcher skips canonicalisation for them.
_PLAIN = (str, bytes, int, float, bool)

_MISSING = object()


def _canonical(value: object) -> tuple[int, object]:
    """A top-level header value as RabbitMQ's ``==`` sees it."""
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, int | float):
        return (_NUM, value)
    if isinstance(value, str):
        return (_BIN, value.encode())
    if isinstance(value, bytes | bytearray | memoryview):
        return (_BIN, bytes(value))
    if isinstance(value, datetime.datetime):
        return (_NUM, epoch_seconds(value))
    if isinstance(value, Decimal):
        return (_DEC, value.as_tuple())
    # Both are Erlang lists, tables of {Key, Type, Value} and arrays of {Type, Value}:
    # they never compare equal, except that an empty table equals an empty array.
    if isinstance(value, Mapping):
        return (_LIST, tuple((key, *_typed(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return (_LIST, tuple(_typed(item) for item in value))
    if value is None:
        return (_VOID, None)
    return (_OTHER, value)


def _typed(value: object) -> tuple[object, object]:
    """A nested value with its type tag, as it sits inside an Erlang table or array."""
    if isinstance(value, bytearray | memoryview):
        return (bytes, bytes(value))
    if isinstance(value, datetime.datetime):
        return (datetime.datetime, epoch_seconds(value))
    if isinstance(value, Decimal):
        return (Decimal, value.as_tuple())
    if isinstance(value, Mapping):
        return (dict, tuple((key, _typed(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return (list, tuple(_typed(item) for item in value))
    return (type(value), value)


class _Pattern:
    """One binding's arguments compiled for matching: the mode and the fields compared."""

    __slots__ = ("fields", "match_any")

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        mode = arguments.get("x-match")
        # Unknown modes cannot get past validate_binding; RabbitMQ reads them as "all".
        self.match_any = mode in ("any", "any-with-x")
        with_x = mode in ("all-with-x", "any-with-x")
        # (key, raw value, its type if == can compare it directly, canonical value or
        # None when the binding value is void and only presence counts)
        self.fields = tuple(
            (
                key,
                value,
                type(value) if type(value) in _PLAIN else _NoFastPath,
                None if value is None else _canonical(value),
            )
            for key, value in arguments.items()
            if key != "x-match" and (with_x or not key.startswith("x-"))
        )

    def matches(self, headers: Mapping[str, Any]) -> bool:
        match_any = self.match_any
        get = headers.get
        for key, want, plain_type, canonical in self.fields:
            got = get(key, _MISSING)
            if got is _MISSING:
                hit = False
            elif canonical is None:
                hit = True  # void in the binding: presence is enough
            elif type(got) is plain_type:
                hit = got == want  # same plain type: Python's == agrees with Erlang's
            else:
                hit = _canonical(got) == canonical
            if hit is match_any:
                return hit  # any: first hit wins; all: first miss loses
        return not match_any


class _NoFastPath:
    """Never the type of a header value: sends every comparison through _canonical."""


class HeadersExchange(Exchange):
    __slots__ = ("_patterns",)

    type_name = "headers"
    needs_headers = True

    def _init_routing(self) -> None:
        self._patterns: dict[BindingKey, _Pattern] = {}

    def validate_binding(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        if "x-match" not in arguments:
            return
        mode = arguments["x-match"]
        if isinstance(mode, str) and mode in _MODES:
            return
        if isinstance(mode, str) or (isinstance(mode, bytes) and not is_utf8(mode)):
            # pamqp hands back bytes for a longstr that is not UTF-8.
            raise errors.PreconditionFailed(
                f"Invalid x-match field value {format_term(mode)}; "
                "expected all, any, all-with-x, or any-with-x"
            )
        raise errors.PreconditionFailed(
            f"Invalid x-match field type {field_type(mode)} "
            f"(value {format_term(mode)}); expected longstr"
        )

    def route(
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> Collection[Hashable]:
        # Hot path, but inherently linear: every binding is a separate predicate over
        # the headers (RabbitMQ scans them all too).  Patterns are compiled at bind time
        # and a destination already chosen is not tested again.
        if not self._patterns:
            return NO_DESTINATIONS
        if headers is None:
            headers = {}
        result: set[Hashable] | None = None
        for (destination, _, _), pattern in self._patterns.items():
            if result is not None and destination in result:
                continue
            if pattern.matches(headers):
                if result is None:
                    result = {destination}
                else:
                    result.add(destination)
        return NO_DESTINATIONS if result is None else result

    def _add(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        self._patterns[key] = _Pattern(arguments)

    def _remove(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        del self._patterns[key]
