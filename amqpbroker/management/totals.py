"""Broker-wide counts at one moment, and rates between two moments.

A :class:`Snapshot` adds the live counters (sessions, channels) to the totals of
closed ones (``Broker.totals``); it walks connections and channels, not messages.
:class:`Rates` keeps the previous snapshot so ``*_details.rate`` fields and the
dashboard show per-second rates, as RabbitMQ's do (sampled every few seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ..broker.broker import Broker

# RabbitMQ's management samples every 5 s; rates over that interval.
SAMPLE_INTERVAL = 5.0


@attrs.frozen
class Snapshot:
    published: int = 0
    delivered: int = 0
    acked: int = 0
    connections: int = 0
    channels: int = 0
    consumers: int = 0
    queues: int = 0
    exchanges: int = 0
    ready: int = 0
    unacked: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    channels_opened: int = 0
    channels_closed: int = 0


def snapshot(broker: Broker) -> Snapshot:
    totals = broker.totals
    published, delivered, acked = totals.published, totals.delivered, totals.acked
    connections = channels = consumers = 0
    for session in broker.sessions:
        if session.vhost is None:
            continue  # still in the handshake
        connections += 1
        for channel in session.channels.values():
            published += channel.published
            channels += 1
            consumers += len(channel.consumers)
            delivered += channel.next_tag - 1
            acked += channel.acked
    queues = exchanges = ready = unacked = 0
    for vhost in broker.vhosts.values():
        exchanges += len(vhost.exchanges)
        for queue in vhost.queues.values():
            queues += 1
            ready += queue.message_count
            unacked += queue.unacked
    return Snapshot(
        published=published,
        delivered=delivered,
        acked=acked,
        connections=connections,
        channels=channels,
        consumers=consumers,
        queues=queues,
        exchanges=exchanges,
        ready=ready,
        unacked=unacked,
        connections_opened=totals.connections_opened,
        connections_closed=totals.connections_closed,
        channels_opened=totals.channels_opened,
        channels_closed=totals.channels_closed,
    )


class Rates:
    """Per-second rates of the snapshot counters between the last two samples."""

    def __init__(self) -> None:
        self._previous: tuple[float, Snapshot] | None = None
        self._rates: dict[str, float] = {}

    def sample(self, now: float, current: Snapshot) -> None:
        if self._previous is not None:
            then, before = self._previous
            elapsed = now - then
            if elapsed > 0:
                self._rates = {
                    field: (getattr(current, field) - getattr(before, field)) / elapsed
                    for field in ("published", "delivered", "acked", "ready", "unacked")
                }
        self._previous = (now, current)

    def rate(self, field: str) -> float:
        return round(self._rates.get(field, 0.0), 1)
