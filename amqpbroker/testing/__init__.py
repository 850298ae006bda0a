"""Testing support: the pytest plugin (:mod:`.pytest_plugin`), the inspection helpers
(:class:`BrokerInspector`), external-broker support (:class:`ExternalBroker`) and the
bounded wait for what a client observes (:func:`eventually`).

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
    from .waiting import eventually, eventually_async

__all__ = [
    "BindingInfo",
    "BrokerInspector",
    "ExchangeInfo",
    "ExternalBroker",
    "ManagementError",
    "MessageInfo",
    "QueueInfo",
    "WaitTimeout",
    "eventually",
    "eventually_async",
]
_EXTERNAL = ("ExternalBroker", "ManagementError")
_WAITING = ("eventually", "eventually_async")


def __getattr__(name: str) -> Any:
    if name in _EXTERNAL:
        from . import external

        return getattr(external, name)
    if name in _WAITING:
        from . import waiting

        return getattr(waiting, name)
    if name in __all__:
        from . import helpers

        return getattr(helpers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
