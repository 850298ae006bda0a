"""The broker's clock and its deadlines: a heap the I/O layer drives (sans-IO).

Queues need to act when nobody sends anything: a message's TTL runs out, an unused
queue reaches its ``x-expires``, a consumer sits on a delivery past the
acknowledgement timeout.  The domain never sleeps; it files a deadline here with
:meth:`Timers.call_at` and the server's single timer task (``server/clock.py``)
sleeps until :meth:`Timers.next_deadline`, then calls :meth:`Timers.run_due`.
Adding a deadline earlier than every other calls ``wake`` so the task re-arms.

Times are seconds on the broker's clock (``Broker.clock``, wall-clock time by
default, as RabbitMQ computes message expiry from ``os:system_time``); tests pass
their own clock and call :meth:`run_due` themselves, so no test needs to sleep.

Resource handling: a cancelled handle stays in the heap until its deadline comes up
and is then skipped (cancelling is O(1), as in trio's and asyncio's timer heaps).
Error handling: a callback that raises is logged and the others still run; a bug in
one queue's timer must not stop every other queue's.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable

log = logging.getLogger("amqpbroker.timers")


def _noop() -> None:
    pass


class TimerHandle:
    """One pending call; ``cancel()`` makes it a no-op."""

    __slots__ = ("callback", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None

    @property
    def cancelled(self) -> bool:
        return self.callback is None


class Timers:
    """Deadlines in a heap, ordered by time and then by the order they were filed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._order = itertools.count()
        # Set by the I/O layer: called when a deadline earlier than all others arrives.
        self.wake: Callable[[], None] = _noop

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(deadline, callback)
        heap = self._heap
        earliest = not heap or deadline < heap[0][0]
        heapq.heappush(heap, (deadline, next(self._order), handle))
        if earliest:
            self.wake()
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self.clock() + delay, callback)

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None when nothing is pending."""
        heap = self._heap
        while heap and heap[0][2].callback is None:
            heapq.heappop(heap)  # cancelled: drop it now rather than wake for nothing
        return heap[0][0] if heap else None

    def run_due(self, now: float | None = None) -> int:
        """Call every callback whose deadline is <= now; returns how many ran.

        Callbacks may file new deadlines; one that is already due runs in this same
        call (a queue whose next head has also expired is handled at once).
        """
        if now is None:
            now = self.clock()
        heap = self._heap
        ran = 0
        while heap and heap[0][0] <= now:
            _deadline, _order, handle = heapq.heappop(heap)
            callback = handle.callback
            if callback is None:
                continue
            handle.callback = None
            ran += 1
            try:
                callback()
            except Exception:
                log.exception("timer callback failed")
        return ran
