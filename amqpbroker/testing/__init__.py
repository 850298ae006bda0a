"""Testing support: the pytest plugin (:mod:`.pytest_plugin`), the inspection helpers
(:class:`BrokerInspector`) and external-broker support (:class:`ExternalBroker`).

Names are imported lazily: pytest imports this package for its plugin in every
session, and a suite that never uses an AMQP fixture should not pay for the broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .external import ExternalBroker, ManagementError
    from .helpers import (
        BindingInfo,
        BrokerInspector,
        ExchangeInfo,
        MessageInfo,
        QueueInfo,
        WaitTimeout,
    )

__all__ = [
    "BindingInfo",
    "BrokerInspector",
    "ExchangeInfo",
    "ExternalBroker",
    "ManagementError",
    "MessageInfo",
    "QueueInfo",
    "WaitTimeout",
]
_EXTERNAL = ("ExternalBroker", "ManagementError")


def __getattr__(name: str) -> Any:
    if name in _EXTERNAL:
        from . import external

        return getattr(external, name)
    if name in __all__:
        from . import helpers

        return getattr(helpers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
