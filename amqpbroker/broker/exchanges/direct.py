"""The direct exchange: a message goes to the bindings whose key equals its routing key."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from typing import Any

from .base import NO_DESTINATIONS, BindingKey, DestinationSet, Exchange


class DirectExchange(Exchange):
    __slots__ = ("_routes",)

    type_name = "direct"

    def _init_routing(self) -> None:
        # routing key -> its destinations; an entry exists only while something is bound.
        self._routes: dict[str, DestinationSet] = {}

    def route(
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> Collection[Hashable]:
        # Hot path: one dict lookup, then the entry's cached frozenset.  An unbound key
        # returns the shared empty set, so unroutable publishes allocate nothing.
        entry = self._routes.get(routing_key)
        if entry is None:
            return NO_DESTINATIONS
        return entry.snapshot()

    def _add(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        destination, routing_key, _ = key
        entry = self._routes.get(routing_key)
        if entry is None:
            entry = self._routes[routing_key] = DestinationSet()
        entry.add(destination)

    def _remove(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        destination, routing_key, _ = key
        entry = self._routes[routing_key]
        entry.remove(destination)
        if not entry:
            # Forget empty keys: otherwise a stream of short-lived queues would grow
            # the table forever.
            del self._routes[routing_key]
