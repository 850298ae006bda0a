"""Broker-wide message and churn totals, for the management API and metrics.

Live channels count for themselves (``published``, ``acked``, and ``next_tag - 1``
deliveries); what a channel counted is added here when it closes, so a total is
this plus the live ones.
The hot path never touches this object: it is updated on open and close only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .channel import Channel


class Totals:
    __slots__ = (
        "acked",
        "channels_closed",
        "channels_opened",
        "connections_closed",
        "connections_opened",
        "delivered",
        "published",
    )

    def __init__(self) -> None:
        self.published = 0
        self.delivered = 0
        self.acked = 0
        self.connections_opened = 0
        self.connections_closed = 0
        self.channels_opened = 0
        self.channels_closed = 0

    def channel_closed(self, channel: Channel) -> None:
        self.published += channel.published
        self.delivered += channel.next_tag - 1
        self.acked += channel.acked
        self.channels_closed += 1
