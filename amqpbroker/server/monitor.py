"""Resource monitor: raises and clears the broker's memory and disk alarms.

RabbitMQ's defaults: the memory high watermark is 0.4 of the machine's RAM, and
the disk free limit 50 MB on the partition holding the data.  Memory is weighed as
the bytes the broker holds (broker/memory.py), with the resident size as a safety
net.  A commit that fails
(disk full, I/O error) also raises the disk alarm until a commit succeeds again
(server/committer.py).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import trio

from ..broker import alarms, memory
from ..broker.broker import Broker

log = logging.getLogger("amqpbroker.alarms")

# How often resources are checked, seconds.
INTERVAL = 1.0
# The resident-size safety net (for memory the accounting of broker/memory.py does not
# see) trips at this multiple of the watermark of growth since start: above the
# accounted mark, since freed memory that stays resident must not hold the alarm up.
RSS_SAFETY_FACTOR = 3.0
# ... and never below the watermark plus this: under a small watermark the interpreter's
# own growth (imports, caches, a freed backlog's fragments) would hold the alarm up with
# nothing held (seen in the soak run: 8 MB of growth under a 4 MB mark).
RSS_SAFETY_FLOOR = 256 * 1024 * 1024


def total_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def resident_memory() -> int:
    """This process's resident set size in bytes (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _resident_growth(limit: int, raised: bool, baseline: int) -> str:
    """The safety net: why the resident size alone calls for the alarm, or "".
    Growth past RSS_SAFETY_FACTOR x the watermark counts only if it is still there
    after malloc gave its free pages back."""
    mark = max(int(limit * RSS_SAFETY_FACTOR), limit + RSS_SAFETY_FLOOR)
    growth = resident_memory() - baseline
    if not memory.past_mark(growth, mark, raised):
        return ""
    trim_malloc()
    growth = resident_memory() - baseline
    if not memory.past_mark(growth, mark, raised):
        return ""
    return f"resident size grew by {growth} bytes, past {mark} unaccounted"


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim with
        return None
    return trim


def trim_malloc() -> None:
    """Ask glibc's malloc to return free memory to the system (no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def disk_free(path: Path) -> int | None:
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def check(broker: Broker, data_dir: Path | None, baseline_rss: int = 0) -> None:
    """One round of checks: raise or clear each alarm.  ``baseline_rss``: the
    resident size when the broker started (the safety net weighs growth past it)."""
    settings = broker.settings
    state = broker.alarms
    limit = int(total_memory() * settings.memory_high_watermark)
    raised = alarms.MEMORY in state.raised
    held = memory.held_bytes(broker)
    why = ""
    if memory.past_mark(held, limit, raised):
        why = f"{held} bytes held"
    else:
        why = _resident_growth(limit, raised, baseline_rss)
    if why:
        if not raised:
            log.warning("memory alarm: %s, high watermark %d", why, limit)
        state.raise_alarm(alarms.MEMORY)
    elif raised:
        log.warning("memory alarm cleared: %d bytes held", held)
        state.clear_alarm(alarms.MEMORY)
        # Give the drained backlog's pages back, so RSS follows the accounting down.
        trim_malloc()
    if data_dir is None:
        return
    free = disk_free(data_dir)
    if free is None:
        return
    reserve = getattr(broker.store, "reserve", None)
    if reserve is not None:
        # A released reserve is owed: it must fit again before the alarm clears.
        free -= reserve.shortfall
    if free < settings.disk_free_limit:
        if alarms.DISK not in state.raised:
            log.warning("disk alarm: %d bytes free, limit %d", free, settings.disk_free_limit)
        broker.disk_low = True
        state.raise_alarm(alarms.DISK)
    elif broker.disk_low:
        broker.disk_low = False
        if not broker.commit_failing:
            log.warning("disk alarm cleared: %d bytes free", free)
            state.clear_alarm(alarms.DISK)


async def run_monitor(broker: Broker) -> None:
    store = broker.store
    data_dir = getattr(store, "data_dir", None)
    data_dir = Path(data_dir) if data_dir is not None else None
    baseline = resident_memory()
    while True:
        check(broker, data_dir, baseline)
        await trio.sleep(INTERVAL)
