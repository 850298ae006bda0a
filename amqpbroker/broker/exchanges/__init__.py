"""Exchange types, one per module, behind the small interface in :mod:`.base`.

``make_exchange`` is how the broker creates a declared exchange; the default exchange
("") is built directly with :class:`DefaultExchange` because it routes through the
queue table rather than stored bindings.
"""

from __future__ import annotations

from typing import Any

from ... import errors
from .base import NO_DESTINATIONS, DestinationSet, Exchange, freeze
from .default import DefaultExchange
from .direct import DirectExchange
from .fanout import FanoutExchange
from .headers import HeadersExchange
from .topic import TopicExchange

EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    cls.type_name: cls for cls in (DirectExchange, FanoutExchange, TopicExchange, HeadersExchange)
}


def make_exchange(type_name: str, name: str, **kw: Any) -> Exchange:
    """Create an exchange of a declared type; ``kw`` are Exchange's keyword options
    (durable, auto_delete, internal, arguments).

    Error handling: an unknown type raises CommandInvalid (503, a connection error), as
    RabbitMQ 3.x answers; 4.x answers 406 instead.
    """
    cls = EXCHANGE_TYPES.get(type_name)
    if cls is None:
        raise errors.CommandInvalid(f"unknown exchange type '{type_name}'")
    return cls(name, **kw)


__all__ = [
    "EXCHANGE_TYPES",
    "NO_DESTINATIONS",
    "DefaultExchange",
    "DestinationSet",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
    "freeze",
    "make_exchange",
]
