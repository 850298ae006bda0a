"""The default exchange: "" of type direct, where every queue is bound by its own name.

Those bindings are implicit, so instead of storing one per queue it asks the broker's
queue table (the ``lookup`` callable) at publish time: a queue declared or deleted is
routable or not at once, with nothing to keep in step.  A routing key no queue has
as its name is looked up with ``fallback`` (the broker's live direct reply-to names),
so replies cost nothing on the hot path of ordinary publishes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from typing import Any

from ... import errors
from .base import NO_DESTINATIONS, Exchange

_REFUSED = "operation not permitted on the default exchange"


class DefaultExchange(Exchange):
    __slots__ = ("_fallback", "_lookup")

    type_name = "direct"

    def __init__(
        self,
        lookup: Callable[[str], Hashable | None],
        fallback: Callable[[str], Hashable | None] | None = None,
    ) -> None:
        # RabbitMQ reports the default exchange as durable.
        super().__init__("", durable=True)
        self._lookup = lookup
        self._fallback = fallback

    def _init_routing(self) -> None:
        pass  # the queue table is the routing index

    def route(
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> Collection[Hashable]:
        # Hot path (most publishes in practice): one lookup and a 1-tuple, which is the
        # cheapest collection Python builds.
        destination = self._lookup(routing_key)
        if destination is None:
            if self._fallback is None:
                return NO_DESTINATIONS
            destination = self._fallback(routing_key)
            if destination is None:
                return NO_DESTINATIONS
        return (destination,)

    # Clients cannot change the implicit bindings: 403, as RabbitMQ answers.  The broker
    # refuses earlier with the same text; raising here keeps the exchange honest anyway.

    def validate_binding(self, routing_key: str, arguments: Mapping[str, Any]) -> None:
        raise errors.AccessRefused(_REFUSED)

    def bind(
        self, destination: Hashable, routing_key: str, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        raise errors.AccessRefused(_REFUSED)

    def unbind(
        self, destination: Hashable, routing_key: str, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        raise errors.AccessRefused(_REFUSED)
