"""Page-in for durable queues larger than memory (broker/paging.py).

Reads a paged queue's next messages from the store in a worker thread, so the
event loop never waits for the disk; applies them on the loop.  A read that finds
the next rows not committed yet is retried after the next group commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from ..broker.broker import Broker
from ..broker.paging import page_in_below
from ..broker.queue import Queue
from ..store.base import StoreError

log = logging.getLogger("amqpbroker.pager")

# Pause after a failed read, doubled per failure in a row up to the maximum (seconds).
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


async def run_pager(
    broker: Broker, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    store = broker.store
    assert store is not None
    wakeup = trio.Event()

    def wake() -> None:
        wakeup.set()

    broker.wake_pager = wake
    failures = 0  # failed reads in a row
    task_status.started()
    try:
        while True:
            await wakeup.wait()
            wakeup = trio.Event()
            while broker.page_requests:
                queue = broker.page_requests.pop()
                plan = queue.page_in_plan()
                if plan is None:
                    continue
                after, limit, generation = plan
                try:
                    records = await trio.to_thread.run_sync(
                        store.read_messages, queue.store_id, after, limit
                    )
                except StoreError as exc:
                    pause = min(RETRY_FIRST_S * 2**failures, RETRY_MAX_S)
                    failures += 1
                    log.error(
                        "queue %r in vhost %r: reading its next messages failed, they stay"
                        " on disk (retrying in %g s): %s",
                        queue.name,
                        queue.vhost,
                        pause,
                        exc,
                    )
                    broker.page_requests.add(queue)
                    await trio.sleep(pause)
                    continue
                failures = 0
                if not queue.paged_in(records, after, generation):
                    broker.after_commit(_retry(broker, queue))
                elif queue.tail is not None and len(queue.ready) < page_in_below():
                    broker.page_requests.add(queue)
    finally:
        broker.wake_pager = None


def _retry(broker: Broker, queue: Queue) -> Callable[[], None]:
    def retry() -> None:
        broker.request_page_in(queue)

    return retry
