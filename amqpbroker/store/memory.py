"""MemoryStore: the store contract kept in memory, for ``--transient`` and for tests.

What a disk would hold lives in a separate :class:`MemoryImage`, and the store writes to it
only in ``commit()`` and the entity operations. A new MemoryStore over the same image after
``simulate_crash()`` therefore sees exactly what a restarted SQLiteStore would: the committed
state, nothing buffered. Commits apply operations one by one in call order, the plain
reading of the contract, which makes this store the reference the SQLite store's batched
writes are tested against.

Reads are O(queue length) (a scan of one queue's dict): fine for recovery and tests; nothing
needs to page a queue out of memory into memory.
"""

from __future__ import annotations

import heapq
import threading
from typing import Any

import attrs

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
from amqpbroker.store.pending import (
    DELIVERED,
    ENQUEUE,
    REMOVE,
    BufferedMessages,
    Op,
    PendingOps,
)
from amqpbroker.store.stored_arguments import decode_arguments, encode_arguments

# Rows as a database would hold them: arguments as their canonical encoded text.
_ExchangeRow = tuple[str, bool, bool, bool, str]  # type, durable, auto_delete, internal, args
_QueueRow = tuple[str, str, bool, bool, str]  # vhost, name, durable, auto_delete, args
_BindingRow = tuple[str, str, str, str, str, str]  # vhost, source, kind, destination, key, args


@attrs.define
class MemoryImage:
    """The committed state of a MemoryStore: what survives its simulated crash."""

    vhosts: set[str] = attrs.Factory(set)
    exchanges: dict[tuple[str, str], _ExchangeRow] = attrs.Factory(dict)
    queues: dict[int, _QueueRow] = attrs.Factory(dict)
    queue_ids: dict[tuple[str, str], int] = attrs.Factory(dict)  # (vhost, name) -> queue_id
    bindings: set[_BindingRow] = attrs.Factory(set)
    messages: dict[int, dict[int, MessageRecord]] = attrs.Factory(dict)
    max_seq: int = 0
    last_queue_id: int = 0
    clean_shutdown: bool = True
    # None until the first put_user / delete_user (Definitions.users).
    users: dict[str, UserRecord] | None = None
    permissions: dict[tuple[str, str], PermissionRecord] = attrs.Factory(dict)
    # The store that has the image open, like the flock on a SQLite data dir.
    owner: object | None = None


class MemoryStore(BufferedMessages, Store):
    def __init__(self, image: MemoryImage | None = None) -> None:
        self._image = image if image is not None else MemoryImage()
        self._pending = PendingOps()
        # Serialises everything that reads or writes the image.
        self._lock = threading.Lock()
        self._state = "new"
        self._admin = False

    def __repr__(self) -> str:
        return f"MemoryStore({self._state})"

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, *, admin: bool = False) -> Definitions:
        with self._lock:
            if self._state != "new":
                raise StoreError(f"memory store is {self._state}; open() it only once")
            image = self._image
            if image.owner is not None:
                raise StoreError("memory image is already open in another store")
            image.owner = self
            self._state = "open"
            self._admin = admin
            if not admin:
                self._drop_transient()
            definitions = self._definitions()
            if not admin:
                image.clean_shutdown = False  # until close()
            return definitions

    def close(self) -> None:
        if self._state != "open":
            self._state = "closed"
            return
        try:
            self.commit()
            if not self._admin:
                self._image.clean_shutdown = True
        finally:
            with self._lock:
                self._release("closed")

    def simulate_crash(self) -> None:
        with self._lock:
            self._pending.clear()
            if self._state == "open":
                self._release("crashed")
            self._state = "crashed"

    def _release(self, state: str) -> None:
        self._image.owner = None
        self._state = state

    def _check_open(self) -> MemoryImage:
        if self._state != "open":
            raise StoreError(f"memory store is {self._state}")
        return self._image

    def _drop_transient(self) -> None:
        image = self._image
        for key, row in list(image.exchanges.items()):
            if not row[1]:
                self._delete_exchange(*key)
        for queue_id, qrow in list(image.queues.items()):
            if not qrow[2]:
                self._delete_queue(queue_id)

    def _definitions(self) -> Definitions:
        image = self._image
        exchanges = [
            ExchangeRecord(vhost, name, t, d, ad, i, decode_arguments(args))
            for (vhost, name), (t, d, ad, i, args) in sorted(image.exchanges.items())
        ]
        queues = [
            QueueRecord(vhost, name, d, ad, decode_arguments(args), queue_id)
            for queue_id, (vhost, name, d, ad, args) in sorted(image.queues.items())
        ]
        bindings = [
            BindingRecord(v, s, k, d, rk, decode_arguments(args))
            for (v, s, k, d, rk, args) in sorted(image.bindings)
        ]
        users = None if image.users is None else [image.users[n] for n in sorted(image.users)]
        return Definitions(
            sorted(image.vhosts),
            exchanges,
            queues,
            bindings,
            image.max_seq,
            image.clean_shutdown,
            users,
            [image.permissions[key] for key in sorted(image.permissions)],
        )

    # -- entities ----------------------------------------------------------------------------

    def put_vhost(self, name: str) -> None:
        with self._lock:
            self._check_open().vhosts.add(name)

    def delete_vhost(self, name: str) -> None:
        with self._lock:
            image = self._check_open()
            image.vhosts.discard(name)
            for queue_id, row in list(image.queues.items()):
                if row[0] == name:
                    self._delete_queue(queue_id)
            for vhost, exchange in list(image.exchanges):
                if vhost == name:
                    self._delete_exchange(vhost, exchange)
            image.bindings = {b for b in image.bindings if b[0] != name}
            image.permissions = {k: p for k, p in image.permissions.items() if k[1] != name}

    def put_exchange(self, rec: ExchangeRecord) -> None:
        args = encode_arguments(rec.arguments)
        with self._lock:
            self._check_open().exchanges[rec.vhost, rec.name] = (
                rec.type,
                rec.durable,
                rec.auto_delete,
                rec.internal,
                args,
            )

    def delete_exchange(self, vhost: str, name: str) -> None:
        with self._lock:
            self._check_open()
            self._delete_exchange(vhost, name)

    def _delete_exchange(self, vhost: str, name: str) -> None:
        image = self._image
        image.exchanges.pop((vhost, name), None)
        image.bindings = {
            b
            for b in image.bindings
            if not (b[0] == vhost and (b[1] == name or (b[2] == "exchange" and b[3] == name)))
        }

    def put_queue(
        self,
        vhost: str,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> int:
        args = encode_arguments(arguments)
        with self._lock:
            image = self._check_open()
            queue_id = image.queue_ids.get((vhost, name))
            if queue_id is None:
                image.last_queue_id += 1
                queue_id = image.queue_ids[vhost, name] = image.last_queue_id
                image.messages[queue_id] = {}
            image.queues[queue_id] = (vhost, name, durable, auto_delete, args)
            return queue_id

    def delete_queue(self, queue_id: int) -> None:
        with self._lock:
            self._check_open()
            self._delete_queue(queue_id)

    def _delete_queue(self, queue_id: int) -> None:
        image = self._image
        row = image.queues.pop(queue_id, None)
        image.messages.pop(queue_id, None)
        if row is not None:
            vhost, name = row[0], row[1]
            del image.queue_ids[vhost, name]
            image.bindings = {
                b
                for b in image.bindings
                if not (b[0] == vhost and b[2] == "queue" and b[3] == name)
            }

    def put_binding(self, rec: BindingRecord) -> None:
        row = _binding_row(rec)
        with self._lock:
            self._check_open().bindings.add(row)

    def delete_binding(self, rec: BindingRecord) -> None:
        row = _binding_row(rec)
        with self._lock:
            self._check_open().bindings.discard(row)

    # -- users and permissions ---------------------------------------------------------------

    def put_user(self, rec: UserRecord) -> None:
        with self._lock:
            image = self._check_open()
            if image.users is None:
                image.users = {}
            image.users[rec.name] = rec

    def delete_user(self, name: str) -> None:
        with self._lock:
            image = self._check_open()
            if image.users is None:
                image.users = {}
            image.users.pop(name, None)
            image.permissions = {k: p for k, p in image.permissions.items() if k[0] != name}

    def put_permission(self, rec: PermissionRecord) -> None:
        with self._lock:
            self._check_open().permissions[rec.user, rec.vhost] = rec

    def delete_permission(self, user: str, vhost: str) -> None:
        with self._lock:
            self._check_open().permissions.pop((user, vhost), None)

    # -- messages ----------------------------------------------------------------------------

    def commit(self) -> int:
        with self._lock:
            image = self._check_open()
            ops = self._pending.take()
            for op in ops:
                _apply(image, op)
            return len(ops)

    # -- reading -----------------------------------------------------------------------------

    def read_messages(self, queue_id: int, after_seq: int, limit: int) -> list[MessageRecord]:
        with self._lock:
            messages = self._check_open().messages.get(queue_id, {})
            seqs = heapq.nsmallest(limit, (s for s in messages if s > after_seq))
            return [messages[s] for s in seqs]

    def queue_depth(self, queue_id: int) -> tuple[int, int]:
        with self._lock:
            messages = self._check_open().messages.get(queue_id, {})
            return len(messages), sum(len(m.body) for m in messages.values())


def _binding_row(rec: BindingRecord) -> _BindingRow:
    return (
        rec.vhost,
        rec.source,
        rec.destination_kind,
        rec.destination,
        rec.routing_key,
        encode_arguments(rec.arguments),
    )


def _apply(image: MemoryImage, op: Op) -> None:
    kind, queue_id, seq, rec = op
    if kind == ENQUEUE and seq > image.max_seq:
        # Counted even for a deleted queue: the broker has used the number either way.
        image.max_seq = seq
    messages = image.messages.get(queue_id)
    if messages is None:  # the queue was deleted: its late operations are discarded
        return
    if kind == ENQUEUE:
        assert rec is not None
        messages[seq] = rec
    elif kind == REMOVE:
        messages.pop(seq, None)
    elif kind == DELIVERED:
        old = messages.get(seq)
        if old is not None and not old.redelivered:
            messages[seq] = attrs.evolve(old, redelivered=True)
    elif seq == 0:  # PURGE of the whole queue
        messages.clear()
    else:  # PURGE from seq on (a paged queue's on-disk tail)
        for stored in [s for s in messages if s >= seq]:
            del messages[stored]
