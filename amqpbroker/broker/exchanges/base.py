"""The contract every exchange type implements, and the binding bookkeeping they share.

An exchange holds bindings ``(destination, routing_key, arguments)`` and answers one
question on the hot path: given a routing key and the message headers, which
destinations get a copy?  Destinations are opaque hashable objects (the broker passes
queues and exchanges); nothing here looks inside them.

This module is pure domain code: no I/O, no event loop.  Errors are raised as
:mod:`amqpbroker.errors` classes carrying the reply code RabbitMQ would send.

Each subclass keeps its own routing index, fed through two hooks, ``_add`` and
``_remove``, which the base class calls exactly once per binding that really appears
or disappears; the base class alone decides binding identity and duplicates.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar

# What a binding points at: a queue or an exchange, compared by identity or by
# whatever __eq__/__hash__ the broker's objects define.
Destination = Hashable

# (destination, routing_key, freeze(arguments)): what makes two bindings the same one.
BindingKey = tuple[Hashable, str, Hashable]

# Returned by every route() that finds nothing, so an unroutable publish allocates
# nothing for its (empty) result.
NO_DESTINATIONS: frozenset[Hashable] = frozenset()


def freeze(value: object) -> Hashable:
    """Turn an AMQP field value (possibly a nested table or array) into a hashable one.

    Used for binding identity.  Scalars keep their Python type next to their value,
    because Python says ``1 == 1.0 == True`` while RabbitMQ compares binding arguments
    as exact terms, where a long, a double and a bool are three different arguments.
    Tables become frozensets, so key order never makes two bindings differ (RabbitMQ
    sorts top-level arguments; we extend that to nested tables, where a client cannot
    control order anyway).
    """
    if isinstance(value, Mapping):
        return frozenset((key, freeze(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    if isinstance(value, bytearray | memoryview):
        return (bytes, bytes(value))
    if isinstance(value, Decimal):
        # Decimal('1.0') == Decimal('1') in Python, but an AMQP decimal carries its scale.
        return (Decimal, value.as_tuple())
    return (type(value), value)


class DestinationSet:
    """The destinations reached through one routing entry (a direct key, a trie node...).

    Counted, because one destination may be bound several times to the same entry with
    different arguments and must stay routed until the last of those bindings goes.
    ``snapshot()`` hands out an immutable frozenset built lazily and kept until the next
    change: routing returns it without copying, callers may keep it across awaits, and a
    burst of binds costs O(1) each instead of rebuilding the set every time.
    """

    __slots__ = ("_counts", "_snapshot")

    def __init__(self) -> None:
        self._counts: dict[Hashable, int] = {}
        self._snapshot: frozenset[Hashable] | None = None

    def add(self, destination: Hashable) -> None:
        self._counts[destination] = self._counts.get(destination, 0) + 1
        self._snapshot = None

    def remove(self, destination: Hashable) -> None:
        """Drop one binding to ``destination``; it must have been added."""
        count = self._counts[destination]
        if count == 1:
            del self._counts[destination]
        else:
            self._counts[destination] = count - 1
        self._snapshot = None

    def snapshot(self) -> frozenset[Hashable]:
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = frozenset(self._counts)
        return snapshot

    def destinations(self) -> Collection[Hashable]:
        """A live view, for building unions without an intermediate snapshot."""
        return self._counts.keys()

    def __len__(self) -> int:
        return len(self._counts)


class Exchange:
    """An exchange: a named set of bindings plus a routing rule (one subclass per type).

    Error handling: ``bind`` raises :class:`~amqpbroker.errors.PreconditionFailed` (via
    ``validate_binding``) for bindings RabbitMQ refuses; nothing else here raises for
    client input.  Checks that need the broker (names, permissions, the destination's
    existence) belong to the broker, not to the exchange.
    """

    __slots__ = (
        "_bindings",
        "_by_destination",
        "arguments",
        "auto_delete",
        "durable",
        "internal",
        "name",
    )

    type_name: ClassVar[str]
    # True only for headers: tells the router it must decode the message headers
    # before calling route(); every other type ignores them.
    needs_headers: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments: dict[str, Any] = dict(arguments) if arguments else {}
        # identity -> the arguments as the client sent them (for listing and persisting).
        self._bindings: dict[BindingKey, dict[str, Any]] = {}
        # destination -> identities of its bindings, so deleting a queue does not scan
        # every binding of a busy exchange.
        self._by_destination: dict[Hashable, dict[BindingKey, None]] = {}
        self._init_routing()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- bindings -----------------------------------------------------------------

    def validate_binding(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        """Raise PreconditionFailed where RabbitMQ refuses this binding; most types accept
        anything."""

    def bind(
        self, destination: Hashable, routing_key: str, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        """Add a binding; True if it is new, False if the very same one already existed
        (RabbitMQ answers bind-ok either way).  Validates first, so an invalid binding
        never enters the routing index."""
        args = dict(arguments) if arguments else {}
        self.validate_binding(routing_key, args)
        key: BindingKey = (destination, routing_key, freeze(args))
        if key in self._bindings:
            return False
        self._bindings[key] = args
        self._by_destination.setdefault(destination, {})[key] = None
        self._add(key, args)
        return True

    def unbind(
        self, destination: Hashable, routing_key: str, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        """Remove a binding; True if it existed."""
        key: BindingKey = (destination, routing_key, freeze(arguments or {}))
        args = self._bindings.pop(key, None)
        if args is None:
            return False
        keys = self._by_destination[destination]
        del keys[key]
        if not keys:
            del self._by_destination[destination]
        self._remove(key, args)
        return True

    def unbind_destination(self, destination: Hashable) -> int:
        """Drop every binding to ``destination`` (it is being deleted); returns how many."""
        keys = self._by_destination.pop(destination, None)
        if not keys:
            return 0
        for key in keys:
            self._remove(key, self._bindings.pop(key))
        return len(keys)

    def bindings(self) -> Iterator[tuple[Hashable, str, dict[str, Any]]]:
        """Every binding as (destination, routing_key, arguments), in binding order."""
        for (destination, routing_key, _), args in self._bindings.items():
            yield destination, routing_key, args

    def has_bindings(self) -> bool:
        return bool(self._bindings)

    def has_destination(self, destination: Hashable) -> bool:
        """Whether any binding still points at ``destination`` (O(1), unlike scanning
        bindings())."""
        return destination in self._by_destination

    @property
    def binding_count(self) -> int:
        return len(self._bindings)

    # -- routing ------------------------------------------------------------------

    def route(
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> Collection[Hashable]:
        """The destinations a message gets copied to, each once.

        HOT PATH, called for every publish.  The result is immutable or freshly built:
        callers may keep it, and must not mutate it.  ``headers`` is only read by types
        with ``needs_headers``; the others accept None.
        """
        raise NotImplementedError

    # -- hooks for subclasses: keep the routing index in step with _bindings ----------

    def _init_routing(self) -> None:
        """Create the empty routing index (called once by __init__, so subclasses keep
        the constructor signature)."""

    def _add(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        raise NotImplementedError

    def _remove(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        raise NotImplementedError
