"""The delivery acknowledgement timeout (RabbitMQ's ``consumer_timeout``).

A channel that holds a delivery unacknowledged for longer than the timeout (30 min
by default) is closed with RabbitMQ 3.10's text, checked on a real broker:

    406 PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out.
    Timeout value used: 1800000 ms. This timeout value can be configured, see
    consumers doc guide to learn more

It counts for basic.get deliveries as well as for consumers; closing the channel
requeues what it held, as any channel close does.

Like RabbitMQ, which checks on each channel's periodic tick, this is a scan, so the
hot path pays nothing: one broker timer every ``interval`` looks at the oldest
unacked delivery of every channel (the first entry of its unacked map, which is in
delivery order) and remembers since when that same delivery has been the oldest.
A channel is closed once that is ``timeout`` or more ago, so it fires between
``timeout`` and ``timeout + interval`` after the delivery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errors

if TYPE_CHECKING:
    from .channel import Channel
    from .ports import Connection
    from .timers import Timers

# The scan runs this often relative to the timeout, and at most this far apart
# (RabbitMQ's channel tick is 60 s).
SCAN_FRACTION = 0.25
MAX_SCAN_INTERVAL = 60.0
MIN_SCAN_INTERVAL = 0.01
# Scan times are sums of float intervals: four 0.1 s steps from an epoch time add up
# to a hair under 0.4 s, which would close a channel one scan late.
TIME_EPSILON = 1e-6


def timeout_text(channel: int, timeout_ms: int) -> str:
    return (
        f"delivery acknowledgement on channel {channel} timed out. Timeout value used: "
        f"{timeout_ms} ms. This timeout value can be configured, see consumers doc guide "
        "to learn more"
    )


class AckTimeouts:
    """The periodic scan; started by the broker when ``consumer_timeout`` is set."""

    def __init__(self, timers: Timers, sessions: set[Connection], timeout_ms: int) -> None:
        self.timers = timers
        self.sessions = sessions
        self.timeout_ms = timeout_ms
        self.timeout = timeout_ms / 1000
        self.interval = min(max(self.timeout * SCAN_FRACTION, MIN_SCAN_INTERVAL), MAX_SCAN_INTERVAL)
        # channel -> (its oldest unacked delivery tag, when we first saw it oldest)
        self._oldest: dict[Channel, tuple[int, float]] = {}

    def start(self) -> None:
        self.timers.call_later(self.interval, self.scan)

    def scan(self) -> None:
        now = self.timers.clock()
        seen = self._oldest
        oldest: dict[Channel, tuple[int, float]] = {}
        expired: list[Channel] = []
        for session in list(self.sessions):
            channel: Channel
            for channel in session.channels.values():
                if not channel.unacked:
                    continue
                tag = next(iter(channel.unacked))
                previous = seen.get(channel)
                since = previous[1] if previous is not None and previous[0] == tag else now
                if now - since >= self.timeout - TIME_EPSILON:
                    expired.append(channel)
                else:
                    oldest[channel] = (tag, since)
        self._oldest = oldest
        for channel in expired:
            channel.outbox.close_channel(
                channel.number,
                errors.PreconditionFailed(timeout_text(channel.number, self.timeout_ms)),
            )
        self.timers.call_later(self.interval, self.scan)
