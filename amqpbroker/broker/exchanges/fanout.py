"""The fanout exchange: every bound destination gets a copy; the routing key is ignored."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from typing import Any

from .base import BindingKey, DestinationSet, Exchange


class FanoutExchange(Exchange):
    __slots__ = ("_all",)

    type_name = "fanout"

    def _init_routing(self) -> None:
        self._all = DestinationSet()

    def route(
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> Collection[Hashable]:
        # Hot path: the same cached frozenset for every message until a binding changes.
        return self._all.snapshot()

    def _add(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        self._all.add(key[0])

    def _remove(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        self._all.remove(key[0])
