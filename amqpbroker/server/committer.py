"""Group commit: one store transaction per scheduling round, in a worker thread.

Every connection's reader buffers store operations while it handles its frames
and then calls ``broker.request_commit``.  This task takes whatever has been
buffered, commits it in one transaction on a worker thread (the event loop keeps
serving meanwhile, buffering the next batch), and then releases the publisher
confirms and tx.commit-oks that waited for it: one multiple-ack per channel
(PERFORMANCE-NOTES: 1 row per fsync'd commit is 3.2k/s, 100 rows is 104k/s).
With the SQLite store the rows are written here, on the loop, and only the COMMIT
(its WAL writes and fsync) runs on a thread of its own; see SQLiteStore.write_batch.

Error handling: a failing commit (disk full, I/O error) keeps its operations
buffered (the store's contract), confirms stay held, and the commit is retried
with a growing pause; nothing is confirmed that is not on disk.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from ..broker import alarms
from ..broker.broker import Broker
from ..store.base import StoreError

if TYPE_CHECKING:
    from ..store.sqlite import SQLiteStore

log = logging.getLogger("amqpbroker.store")

# Pause before retrying a failed commit, doubling up to the maximum.
RETRY_MIN = 0.05
RETRY_MAX = 5.0
# How often, at most, the disk work after a commit runs (a vacuum while the disk alarm
# is up, taking the reserve back after): seconds.
RECLAIM_INTERVAL = 1.0
# The commit thread needs the GIL twice a commit (to take its job, and when the COMMIT
# returns), and while the event loop runs Python it gets it only when the interpreter's
# switch interval (5 ms by default) forces the loop to let go: up to 10 ms added to every
# commit, which the confirms wait for. With nothing else contending for the GIL, a shorter
# interval costs nothing (figures in the commit that set it).
SWITCH_INTERVAL = 0.001


# A function to run, and what reports its outcome back to the event loop.
_Job = tuple[Callable[[], object], Callable[[BaseException | None], None]]


class CommitThread:
    """A thread that runs one function at a time for the event loop.

    ``SQLiteStore.write_batch`` leaves the store's lock held until ``sync_batch`` ends the
    transaction, so the thread must be given the job before the loop runs anything else: a
    task that touches the store meanwhile (a queue.declare) blocks the whole loop on that
    lock. ``trio.to_thread.run_sync`` yields to the scheduler before it starts its thread;
    a ``SimpleQueue.put`` does not.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._token = trio.lowlevel.current_trio_token()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, report = job
            error: BaseException | None = None
            try:
                fn()
            except BaseException as exc:
                error = exc
            with contextlib.suppress(trio.RunFinishedError):  # the broker is gone
                self._token.run_sync_soon(report, error)

    async def run(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the thread, handed over at once; wait for it and raise what it
        raised. Cancelled, this stops waiting, but ``fn`` still runs to its end."""
        done = trio.Event()
        outcome: list[BaseException | None] = []

        def report(error: BaseException | None) -> None:
            outcome.append(error)
            done.set()

        self._jobs.put((fn, report))
        await done.wait()
        if outcome[0] is not None:
            raise outcome[0]

    def stop(self) -> None:
        """The thread ends after its current job."""
        self._jobs.put(None)


@attrs.define
class _SpaceWork:
    """When the disk work after a commit last ran (trio time)."""

    last: float = -RECLAIM_INTERVAL


def _space_unsettled(broker: Broker, store: SQLiteStore) -> bool:
    """Whether there is disk work to do: the disk alarm is up, or the reserve is out."""
    return broker.disk_low or alarms.DISK in broker.alarms.raised or not store.reserve.held


def _room_for_reserve(broker: Broker, store: SQLiteStore) -> bool:
    """Whether taking the reserve back leaves the free-space limit free: a reserve
    taken on a disk that just had room for one commit would fill it again."""
    from .monitor import disk_free

    free = disk_free(store.data_dir)
    return free is not None and free - store.reserve.shortfall >= broker.settings.disk_free_limit


async def _look_after_disk(
    broker: Broker, store: SQLiteStore, thread: CommitThread, space: _SpaceWork
) -> None:
    """While the disk alarm is up, give the space of what was acked back to the
    filesystem (so it can clear); once it is down, take the reserve again.  At most
    once per RECLAIM_INTERVAL, on the commit thread (a vacuum can take a while)."""
    if not _space_unsettled(broker, store):
        return
    alarm = broker.disk_low or alarms.DISK in broker.alarms.raised
    now = trio.current_time()
    if now - space.last < RECLAIM_INTERVAL:
        return
    space.last = now
    try:
        if alarm:
            await thread.run(store.reclaim)
        elif _room_for_reserve(broker, store):
            await thread.run(store.reserve.take)
    except StoreError as exc:
        log.warning("could not give disk space back yet: %s", exc)


async def run_committer(
    broker: Broker, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    store = broker.store
    assert store is not None
    wakeup = trio.Event()

    def request() -> None:
        wakeup.set()

    broker.request_commit = request
    from ..store.sqlite import SQLiteStore  # imported late: transient brokers never need it

    sqlite_store = store if isinstance(store, SQLiteStore) else None
    thread = CommitThread("commit")
    space = _SpaceWork()
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL))
    task_status.started()
    retry = RETRY_MIN
    try:
        while True:
            if sqlite_store is not None and _space_unsettled(broker, sqlite_store):
                # The disk work must not wait for the next commit (a drained queue has none).
                with trio.move_on_after(RECLAIM_INTERVAL):
                    await wakeup.wait()
                if not wakeup.is_set():
                    await _look_after_disk(broker, sqlite_store, thread, space)
                    continue
            else:
                await wakeup.wait()
            # Let the tasks already runnable go first: writers send the deliveries of what
            # was just published before this batch's write holds the loop for a few ms, so
            # the acks come back sooner and more enqueue/remove pairs cancel out in the next
            # batch; readers add what is already in their sockets to this one.
            await trio.lowlevel.checkpoint()
            wakeup = trio.Event()
            batch = broker.take_commit_batch()
            try:
                if sqlite_store is None:
                    await thread.run(store.commit)
                elif sqlite_store.write_batch():
                    await thread.run(sqlite_store.sync_batch)
            except StoreError as exc:
                broker.restore_commit_batch(batch)
                # Stop taking publishes until the store works again (disk full, I/O error).
                broker.commit_failing = True
                broker.alarms.raise_alarm(alarms.DISK)
                if sqlite_store is not None:
                    # The alarm clears when the monitor next finds the free-space limit
                    # and the reserve's room free, not with the next commit that fits:
                    # publishers let in by a commit that just fit would fill the disk
                    # again, and then not even acks could be recorded.
                    broker.disk_low = True
                if sqlite_store is not None and sqlite_store.reserve.release():
                    # Room for this batch's acks: retry at once (store/reserve.py).
                    log.error("commit failed, confirms held, disk reserve released: %s", exc)
                    wakeup.set()
                    continue
                log.error("commit failed, confirms held, retrying in %.2f s: %s", retry, exc)
                await trio.sleep(retry)
                retry = min(retry * 2, RETRY_MAX)
                wakeup.set()
                continue
            retry = RETRY_MIN
            if broker.commit_failing:
                broker.commit_failing = False
                if not broker.disk_low:
                    log.warning("store commits again; disk alarm cleared")
                    broker.alarms.clear_alarm(alarms.DISK)
            broker.finish_commit(batch)
            if sqlite_store is not None:
                await _look_after_disk(broker, sqlite_store, thread, space)
            if store.has_pending() or broker.commit_channels or broker.commit_callbacks:
                wakeup.set()
    finally:
        thread.stop()
        sys.setswitchinterval(switch_interval)
