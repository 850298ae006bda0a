"""The broker's clock and its deadlines: a heap the I/O layer drives (sans-IO).

Queues need to act when nobody sends anything: a message's TTL runs out, an unused
queue reaches its ``x-expires``, a consumer sits on a delivery past the
acknowledgement timeout.  The domain never sleeps; it files a deadline here with
:meth:`Timers.call_at` and the server's single timer task (``server/clock.py``)
sleeps until :meth:`Timers.next_deadline`, then calls :meth:`Timers.run_due`.
Adding a deadline earlier than every other calls ``wake`` so the task re-arms.

Times are seconds on the broker's clock (``Broker.clock``, wall-clock time by
default, as RabbitMQ computes message expiry from ``os:system_time``).  Tests pass a
:class:`ManualClock` and move it with ``advance(seconds)``, which runs each deadline
that falls due at its own time, in order: a 30-minute TTL takes no time and no test
sleeps.

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


def _call_here(func: Callable[[], None]) -> None:
    func()


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


class ManualClock:
    """Broker time that moves only when told to: ``advance(seconds)``.

    Pass one to ``amqpbroker.Broker(clock=...)`` (or ``open_broker``, or the core
    ``Broker``); message and queue TTLs, ``x-expires`` and the consumer timeout then
    follow it instead of the wall clock.  Connection heartbeats stay on real time:
    clients measure those with their own clocks.

    ``advance`` runs every deadline up to the new time, each with the clock set to
    its own deadline and in deadline order, so a queue TTL that dead-letters into a
    queue with its own TTL behaves as it would have in real time.  The embedding
    layer binds the clock to its broker (:meth:`bind`), and ``advance`` then returns
    once the broker's loop has run the due deadlines; unbound, it only moves the time
    (a unit test then calls ``Broker.run_timers`` itself).

    ``frozen=False`` makes a clock that follows the wall clock until :meth:`freeze`
    (the pytest plugin's broker: real time, except in tests that take ``amqp_clock``).
    Time never goes backwards: :meth:`unfreeze` keeps what ``advance`` added.

    Error handling: ``advance`` with a negative number raises ValueError (deadlines
    already run cannot be undone).  Thread safety: reading the time is safe from any
    thread; ``advance`` and ``unfreeze`` hand their work to the broker's thread.
    """

    def __init__(self, start: float | None = None, *, frozen: bool = True) -> None:
        now = time.time() if start is None else start
        self._frozen = frozen
        self._now = now  # the time while frozen
        self._offset = now - time.time()  # broker time minus wall time while running
        # Set by bind(): the broker's deadlines, how to run the due ones, and how to
        # call a function on the broker's thread.
        self._timers: Timers | None = None
        self._run_due: Callable[[], None] = _noop
        self._call: Callable[[Callable[[], None]], None] = _call_here

    def __call__(self) -> float:
        return self._now if self._frozen else time.time() + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen

    def bind(
        self,
        timers: Timers | None,
        run_due: Callable[[], None] = _noop,
        call: Callable[[Callable[[], None]], None] = _call_here,
    ) -> None:
        """Called by the embedding layer when its broker starts (None: it stopped).
        ``run_due`` is ``Broker.run_timers``; ``call(fn)`` runs ``fn()`` on the
        broker's thread and returns when it has."""
        self._timers, self._run_due, self._call = timers, run_due, call

    def freeze(self) -> None:
        """Stop following the wall clock; from now on only ``advance`` moves time."""
        if not self._frozen:
            self._now = self()
            self._frozen = True

    def unfreeze(self) -> None:
        """Follow the wall clock again, from the current time (never backwards)."""
        if not self._frozen:
            return
        self._offset = self._now - time.time()
        self._frozen = False
        timers = self._timers
        if timers is not None:
            self._call(timers.wake)  # the timer task sleeps on real time again

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead (freezing it first), running what falls due."""
        if seconds < 0:
            raise ValueError(f"the clock cannot go back ({seconds} s)")
        self.freeze()
        target = self._now + seconds
        timers = self._timers
        if timers is None:
            self._now = target
            return
        self._call(lambda: self._step_to(target, timers))

    def _step_to(self, target: float, timers: Timers) -> None:
        # One deadline at a time: callbacks see the time they were due at, and the
        # deadlines they file on the way run too when they fall before the target
        # (a periodic scan runs once per period).
        while (deadline := timers.next_deadline()) is not None and deadline <= target:
            self._now = max(self._now, deadline)
            self._run_due()
        self._now = max(self._now, target)
        self._run_due()
