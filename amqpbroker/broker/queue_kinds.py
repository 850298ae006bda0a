"""The queue a declare (or recovery) gets, with the parts it starts with.

Every classic and quorum queue is a :class:`~.queue.Queue`; its arguments decide
whether it starts with rules (features.py), and a durable queue of a persistent
broker gets a store and a paging part (paging.py).  A new kind of queue (streams:
an append-only log read from offsets) is chosen here, from ``options.queue_type``,
and implements the interface queue.py's docstring lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..store.base import Store
from .features import enable_rules
from .paging import Paging
from .queue import Queue, QueueHost
from .queue_arguments import QueueOptions


def make_queue(host: QueueHost, name: str, options: QueueOptions, **kwargs: Any) -> Queue:
    queue = Queue(host.name, name, **kwargs)
    queue.host = host
    if options.needs_features:
        enable_rules(queue, options)
    return queue


def keep_in_store(
    queue: Queue, store: Store, store_id: int, page_in: Callable[[Queue], None] | None
) -> None:
    """A durable queue of a persistent broker: its persistent messages go to the
    store, and with ``page_in`` (the broker's pager) its tail may page out."""
    queue.store = store
    queue.store_id = store_id
    if page_in is not None:
        queue.paging = Paging(page_in)
