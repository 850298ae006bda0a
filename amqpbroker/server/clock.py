"""The broker's one timer task: sleep until the next deadline, run what is due.

Queue TTLs, x-expires and the acknowledgement timeout are deadlines in the broker's
sans-IO heap (broker/timers.py).  This task is all the I/O they need: it sleeps
until the earliest one, or until the heap says an earlier one was added, runs the
due callbacks on the broker's thread (like every other broker operation, so no
lock), and goes back to sleep.  Connections woken by the callbacks (deliveries,
channel closes) flush through their own writers.

A frozen :class:`~amqpbroker.broker.timers.ManualClock` (tests) moves only when
the test advances it, and its ``advance`` runs the due deadlines itself: the task
then sleeps until woken (a deadline that is already due, or the clock following
real time again), never for a real-time delay.

Error handling: ``Broker.run_timers`` logs callback failures itself; nothing here
raises.  Resource handling: runs until its nursery is cancelled.
"""

from __future__ import annotations

import trio

from ..broker.broker import Broker
from ..broker.timers import ManualClock


async def run_timers(
    broker: Broker, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    timers = broker.timers
    clock = broker.clock
    manual = clock if isinstance(clock, ManualClock) else None
    woken = trio.Event()

    def wake() -> None:
        woken.set()

    timers.wake = wake
    task_status.started()
    try:
        while True:
            deadline = timers.next_deadline()
            if deadline is None:
                await woken.wait()
            else:
                delay = deadline - clock()
                if delay > 0 and manual is not None and manual.frozen:
                    await woken.wait()  # advance() runs it
                elif delay > 0:
                    with trio.move_on_after(delay):
                        await woken.wait()
                else:
                    broker.run_timers()
                    # Let connections run between rounds even if deadlines keep coming.
                    await trio.lowlevel.checkpoint()
            if woken.is_set():
                woken = trio.Event()
    finally:
        timers.wake = _ignore


def _ignore() -> None:
    pass
