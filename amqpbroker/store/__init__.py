"""Durable state of the broker: the contract (base), an in-memory store and a SQLite store.

``open_store`` picks one from the ``--data-dir`` value: ":memory:" keeps everything in memory
(``--transient``), anything else is a directory for the SQLite store, and None means the
per-user default directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amqpbroker.store.base import (
    BindingRecord,
    Definitions,
    ExchangeRecord,
    MessageRecord,
    PermissionRecord,
    QueueRecord,
    Store,
    StoreError,
    UserRecord,
)
from amqpbroker.store.datadir import DataDirLocked, default_data_dir
from amqpbroker.store.memory import MemoryImage, MemoryStore

if TYPE_CHECKING:
    from amqpbroker.store.sqlite import SYNC_MODES, SQLiteStore

MEMORY: str = ":memory:"

__all__ = [
    "MEMORY",
    "SYNC_MODES",
    "BindingRecord",
    "DataDirLocked",
    "Definitions",
    "ExchangeRecord",
    "MemoryImage",
    "MemoryStore",
    "MessageRecord",
    "PermissionRecord",
    "QueueRecord",
    "SQLiteStore",
    "Store",
    "StoreError",
    "UserRecord",
    "default_data_dir",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # The SQLite store (and sqlite-utils, ~60 ms to import) loads only when a broker
    # has a data dir: in-memory brokers for test suites start without it.
    if name in ("SQLiteStore", "SYNC_MODES"):
        from amqpbroker.store import sqlite

        return getattr(sqlite, name)
    raise AttributeError(name)


def open_store(data_dir: str | None, sync: str = "full", check: str = "auto") -> Store:
    """Build the store for ``data_dir`` (not opened yet: call ``.open()`` for the recovered
    Definitions). ``sync`` and ``check`` (the startup integrity check) apply to the
    SQLite store; an invalid one raises StoreError."""
    if data_dir == MEMORY:
        return MemoryStore()
    from amqpbroker.store.sqlite import SQLiteStore

    return SQLiteStore(default_data_dir() if data_dir is None else data_dir, sync, check)
