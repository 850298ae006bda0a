"""amqpbroker: an AMQP 0-9-1 broker that stock RabbitMQ clients can use as RabbitMQ."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Type checkers (ours and users', through py.typed) see the real classes; at run
    # time __getattr__ below imports them on first use.
    from .broker.timers import ManualClock
    from .embed import Broker, open_broker

__version__ = "0.1.0"

__all__ = ["Broker", "ManualClock", "__version__", "open_broker"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import amqpbroker` (e.g. by the pytest plugin of a
    # suite that never starts a broker) does not pay for trio and pamqp.
    if name in ("Broker", "open_broker"):
        from . import embed

        return getattr(embed, name)
    if name == "ManualClock":
        from .broker.timers import ManualClock

        return ManualClock
    raise AttributeError(name)
