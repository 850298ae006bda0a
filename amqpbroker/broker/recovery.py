"""Rebuild a broker's durable state from what the store recovered at startup.

Entities are recreated directly (not through the vhost's declare methods) so that
recovery writes nothing back to the store: 10,000 durable bindings must not cost
10,000 commits at boot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs

from ..store.base import Definitions, Store
from . import queue as _queue
from .exchanges import make_exchange
from .features import enable_rules
from .message import Message
from .paging import pageable, resume_paged
from .queue import Queue
from .queue_arguments import PLAIN, options_from
from .queue_kinds import keep_in_store, make_queue

if TYPE_CHECKING:
    from .vhost import VirtualHost

# Messages read from the store per query while recovering a queue.
RECOVERY_PAGE = 10_000


class Target(Protocol):
    """The broker being rebuilt (broker/broker.py's Broker, which calls recover)."""

    @property
    def store(self) -> Store | None: ...

    @property
    def vhosts(self) -> dict[str, VirtualHost]: ...

    def add_vhost(self, name: str) -> VirtualHost: ...

    def request_page_in(self, queue: Queue) -> None: ...


@attrs.define
class RecoveryStats:
    vhosts: int = 0
    exchanges: int = 0
    queues: int = 0
    bindings: int = 0
    messages: int = 0

    def __str__(self) -> str:
        return (
            f"{self.vhosts} vhosts, {self.exchanges} exchanges, {self.queues} queues, "
            f"{self.bindings} bindings, {self.messages} messages"
        )


def recover(broker: Target, definitions: Definitions) -> RecoveryStats:
    store = broker.store
    assert store is not None
    stats = RecoveryStats()
    for name in definitions.vhosts:
        broker.add_vhost(name)
        stats.vhosts += 1
    for ex in definitions.exchanges:
        vhost = broker.add_vhost(ex.vhost)
        if ex.name in vhost.exchanges:
            continue  # predeclared (amq.*) exchanges already exist
        vhost.exchanges[ex.name] = make_exchange(
            ex.type,
            ex.name,
            durable=True,
            auto_delete=ex.auto_delete,
            internal=ex.internal,
            arguments=ex.arguments,
        )
        stats.exchanges += 1
    next_seq = definitions.max_seq + 1
    # After a crash, a delivery may have gone out before its "delivered" mark was
    # committed: every recovered message may have been delivered (RabbitMQ's rule).
    unclean = not definitions.clean_shutdown
    for q in definitions.queues:
        vhost = broker.add_vhost(q.vhost)
        # Queue features come back from the arguments, as at declare (TTL deadlines
        # and delivery counts from each message's record).
        queue = make_queue(
            vhost,
            q.name,
            options_from(q.arguments, vhost.behaviour),
            durable=True,
            auto_delete=q.auto_delete,
            arguments=q.arguments,
        )
        keep_in_store(queue, store, q.queue_id, broker.request_page_in)
        after = 0
        loaded = loaded_bytes = 0
        while True:
            if loaded >= _queue.PAGE_OUT_AT and pageable(queue):
                # A long queue: the rest stays on disk, paged in as it drains (startup
                # reads one window, not the whole queue).
                _resume_tail(queue, q.queue_id, after, loaded, loaded_bytes, unclean, stats)
                break
            records = store.read_messages(q.queue_id, after, min(RECOVERY_PAGE, _queue.PAGE_OUT_AT))
            for rec in records:
                message = Message(rec.exchange, rec.routing_key, rec.header, rec.body)
                redelivered = rec.redelivered or unclean
                if rec.expires and queue.rules is None:
                    enable_rules(queue, PLAIN)  # per-message TTL
                queue.restore(rec, message, redelivered)
                loaded_bytes += len(rec.body)
            stats.messages += len(records)
            loaded += len(records)
            if len(records) < min(RECOVERY_PAGE, _queue.PAGE_OUT_AT):
                break
            after = records[-1].seq
        queue.next_seq = next_seq
        vhost.queues[q.name] = queue
        stats.queues += 1
    for b in definitions.bindings:
        vhost = broker.vhosts[b.vhost]
        source = vhost.exchanges.get(b.source)
        if source is None:
            continue
        if b.destination_kind == "queue":
            bound = vhost.queues.get(b.destination)
            if bound is None:
                continue
            source.bind(bound, b.routing_key, b.arguments)
            bound.bound_from.add(source)
        else:
            dest = vhost.exchanges.get(b.destination)
            if dest is None:
                continue
            if source.bind(dest, b.routing_key, b.arguments):
                vhost.e2e_sources.setdefault(dest, set()).add(source)
                vhost.e2e_count += 1
        stats.bindings += 1
    return stats


def _resume_tail(
    queue: Queue,
    queue_id: int,
    after: int,
    loaded: int,
    loaded_bytes: int,
    unclean: bool,
    stats: RecoveryStats,
) -> None:
    store = queue.store
    assert store is not None
    # Counted from the index alone; the body bytes only when a byte limit needs them
    # (their sum reads every stored message).
    sized = queue.rules is not None and queue.rules.options.max_length_bytes is not None
    if sized:
        count, size = store.queue_depth(queue_id)
        remaining, remaining_bytes = count - loaded, size - loaded_bytes
    else:
        remaining, remaining_bytes = store.message_count(queue_id) - loaded, None
    if remaining > 0:
        resume_paged(queue, after, remaining, remaining_bytes, unclean)
        stats.messages += remaining
