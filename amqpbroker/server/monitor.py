"""Resource monitor: raises and clears the broker's memory and disk alarms.

RabbitMQ's defaults: the memory high watermark is 0.4 of the machine's RAM, and
the disk free limit 50 MB on the partition holding the data.  A commit that fails
(disk full, I/O error) also raises the disk alarm until a commit succeeds again
(server/committer.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import trio

from ..broker import alarms
from ..broker.broker import Broker

log = logging.getLogger("amqpbroker.alarms")

# How often resources are checked, seconds.
INTERVAL = 1.0


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


def disk_free(path: Path) -> int | None:
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def check(broker: Broker, data_dir: Path | None) -> None:
    """One round of checks: raise or clear each alarm."""
    settings = broker.settings
    state = broker.alarms
    limit = int(total_memory() * settings.memory_high_watermark)
    used = resident_memory()
    if limit and used > limit:
        if alarms.MEMORY not in state.raised:
            log.warning("memory alarm: %d bytes used, high watermark %d", used, limit)
        state.raise_alarm(alarms.MEMORY)
    elif alarms.MEMORY in state.raised:
        log.warning("memory alarm cleared: %d bytes used", used)
        state.clear_alarm(alarms.MEMORY)
    if data_dir is None:
        return
    free = disk_free(data_dir)
    if free is None:
        return
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
    while True:
        check(broker, data_dir)
        await trio.sleep(INTERVAL)
