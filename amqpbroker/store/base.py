"""The storage contract: what the broker may rely on from any store.

The broker keeps queues in memory and uses a store for what must survive a restart. It calls
the store from its event-loop thread, except ``commit()``, which it runs in a worker thread
once per scheduling round and only then confirms persistent messages to publishers. Hence two
kinds of operation:

* entity operations (vhosts, exchanges, queues, bindings) are rare: each is written and
  committed before it returns;
* message operations (``enqueue``, ``remove``, ``mark_delivered``, ``purge``) are frequent: they
  only append to an in-memory buffer, and the next ``commit()`` writes everything buffered so
  far in one transaction (group commit, see PERFORMANCE-NOTES.md).

Like RabbitMQ's ``rabbit_backing_queue``, every method below states its contract; one test suite
(``tests/contract``) holds every implementation to it.
"""

from __future__ import annotations

import abc
from typing import Any

import attrs


class StoreError(Exception):
    """A store could not do what was asked; ``str()`` is one readable line.

    The CLI prints it and stops startup without a traceback, so the text names the path and the
    cause ("cannot open data dir /var/lib/x: permission denied (...)"). Newlines in a cause
    (SQLite messages, OS errors) are folded into spaces so the one-line promise always holds.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.splitlines()))


@attrs.frozen
class MessageRecord:
    """One stored message. ``header`` is the raw AMQP content-header payload and ``body`` the
    body; both are stored and returned byte for byte, never parsed."""

    seq: int
    exchange: str
    routing_key: str
    header: bytes
    body: bytes
    redelivered: bool
    # When the message expires (TTL), in milliseconds since the Unix epoch; 0: never.
    # Stored as an absolute time, as RabbitMQ's queue index does, so a TTL keeps
    # running across a restart.
    expires: int = 0
    # Quorum queues: how many times the message was returned (x-delivery-count).
    deliveries: int = 0


@attrs.frozen
class ExchangeRecord:
    vhost: str
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]


@attrs.frozen
class QueueRecord:
    vhost: str
    name: str
    durable: bool
    auto_delete: bool
    arguments: dict[str, Any]
    queue_id: int


@attrs.frozen
class BindingRecord:
    vhost: str
    source: str
    destination_kind: str  # "queue" | "exchange"
    destination: str
    routing_key: str
    arguments: dict[str, Any]


@attrs.frozen
class UserRecord:
    """A user as RabbitMQ's definitions hold it. ``password_hash`` is base64 of a 4-byte salt
    and the digest of salt + password (amqpbroker.auth.passwords), "" for a user that cannot
    log in with a password; ``tags`` are free-form (administrator, management, ...)."""

    name: str
    password_hash: str
    hashing_algorithm: str
    tags: tuple[str, ...] = ()


@attrs.frozen
class PermissionRecord:
    """A user's permissions in one vhost: three regular expressions, as in RabbitMQ."""

    user: str
    vhost: str
    configure: str
    write: str
    read: str


@attrs.frozen
class Definitions:
    """Everything ``open()`` recovered, in a stable order: vhosts by name, exchanges by
    (vhost, name), queues by queue_id, bindings by their fields.

    ``max_seq`` is at least every seq ever committed by an ``enqueue``, including messages
    removed since (0 for a new store), so the broker can continue numbering at max_seq + 1.
    """

    vhosts: list[str]
    exchanges: list[ExchangeRecord]
    queues: list[QueueRecord]
    bindings: list[BindingRecord]
    max_seq: int
    # False when the previous run did not close() the store (killed, crashed): any
    # recovered message may then have been delivered without its mark being committed.
    clean_shutdown: bool = True
    # Users by name; None when no user was ever put or deleted (a new store, or one
    # written before users existed): the broker then creates its default user.
    users: list[UserRecord] | None = None
    # Permissions by (user, vhost).
    permissions: list[PermissionRecord] = attrs.Factory(list)


class Store(abc.ABC):
    """A broker's durable state: definitions and the messages of each queue.

    Thread safety: every method may be called from any thread; the broker calls the buffering
    methods from its event loop while ``commit()`` runs in a worker thread. Methods that touch
    storage (entity operations, ``commit``, reads) are serialised, so one of them may wait for
    an in-flight commit. Argument tables (``arguments``) may hold str, int, float, bool, None,
    bytes, Decimal, datetime, lists and nested tables; they come back equal, with tuples as
    lists and table keys sorted, and values read off the wire keep their wire type
    (``protocol.tables.SignedInt`` and kin: part of a binding's identity).
    """

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    def open(self, *, admin: bool = False) -> Definitions:
        """Take exclusive use of the data and return what survived the previous run.

        Opening drops what must not survive a restart: non-durable exchanges and queues, the
        messages of those queues, and bindings from or to them. Everything committed before is
        visible, whether the previous run closed cleanly or crashed; anything only buffered then
        is gone. A location can be open in one store at a time: a second ``open()`` on the same
        data, from this or another process, raises ``StoreError`` (``DataDirLocked`` when
        another store holds it), as does any startup failure (each with a one-line message).
        Call it once, before any other method.

        ``admin=True`` opens a stopped broker's data for offline administration (``amqpbroker
        ctl``): it is locked as usual, but nothing that belongs to a broker run changes, so
        transient entities stay for the next run to drop, and the next ``open()`` still sees
        whether the last *broker* run shut down cleanly (``close()`` leaves that flag alone).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Write any buffered message operations (as ``commit()`` would), then release the data
        so another store can open it. Idempotent; after it every other method raises
        ``StoreError``."""

    @abc.abstractmethod
    def simulate_crash(self) -> None:
        """Let go of the data the way a killed process would: buffered operations are dropped
        unwritten and nothing is flushed or cleaned up, but the data is released so a new store
        can open it and recover. For crash tests (of the store and of the broker); the broker
        itself never calls it. Afterwards every other method raises ``StoreError``."""

    # -- entities: written and committed before returning -------------------------------------

    @abc.abstractmethod
    def put_vhost(self, name: str) -> None:
        """Record that vhost ``name`` exists; idempotent. Committed before returning."""

    @abc.abstractmethod
    def delete_vhost(self, name: str) -> None:
        """Delete vhost ``name`` with everything in it, in one transaction: its exchanges,
        queues (with their messages), bindings and user permissions (a new vhost of the same
        name must not inherit them). Buffered message operations for those queues are
        discarded at the next commit. Deleting a missing vhost does nothing."""

    @abc.abstractmethod
    def put_exchange(self, rec: ExchangeRecord) -> None:
        """Create exchange (rec.vhost, rec.name), or replace all its attributes if it exists.
        The store does not check that the vhost exists. Committed before returning."""

    @abc.abstractmethod
    def delete_exchange(self, vhost: str, name: str) -> None:
        """Delete the exchange and every binding from it or to it (exchange-to-exchange), in
        one transaction. Deleting a missing exchange does nothing."""

    @abc.abstractmethod
    def put_queue(
        self,
        vhost: str,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> int:
        """Create queue (vhost, name) and return its queue_id, the key of every message
        operation. If the queue exists, return its existing queue_id and replace its attributes.
        A queue_id is never reused, even after the queue is deleted, so late operations for a
        deleted queue can never land in a new one. Committed before returning."""

    @abc.abstractmethod
    def delete_queue(self, queue_id: int) -> None:
        """Delete the queue, its messages and the bindings to it, in one transaction. Message
        operations for it that are still buffered, or buffered later, are discarded at commit.
        Deleting a missing queue does nothing."""

    @abc.abstractmethod
    def put_binding(self, rec: BindingRecord) -> None:
        """Add a binding; idempotent. All six fields, arguments included, identify a binding,
        so the same key with other arguments is another binding. Committed before returning."""

    @abc.abstractmethod
    def delete_binding(self, rec: BindingRecord) -> None:
        """Remove the binding equal to ``rec`` (all six fields). A missing one does nothing."""

    # -- users and permissions: written and committed before returning ------------------------

    @abc.abstractmethod
    def put_user(self, rec: UserRecord) -> None:
        """Create user ``rec.name`` or replace all its fields. From the first put_user or
        delete_user on, ``open()`` returns ``Definitions.users`` as a list, never None."""

    @abc.abstractmethod
    def delete_user(self, name: str) -> None:
        """Delete the user and all its permissions, in one transaction. A missing user does
        nothing (but still counts for ``Definitions.users`` as in put_user)."""

    @abc.abstractmethod
    def put_permission(self, rec: PermissionRecord) -> None:
        """Set (rec.user, rec.vhost)'s permissions, replacing earlier ones. The store checks
        neither the user nor the vhost; ``delete_vhost`` and ``delete_user`` remove them."""

    @abc.abstractmethod
    def delete_permission(self, user: str, vhost: str) -> None:
        """Remove the user's permissions in the vhost; missing ones do nothing."""

    # -- messages: buffered until the next commit() -------------------------------------------

    @abc.abstractmethod
    def enqueue(self, queue_id: int, rec: MessageRecord) -> None:
        """Buffer storing ``rec`` in queue ``queue_id``. Cheap: nothing is written until
        ``commit()``, and a crash before it loses the message. ``rec.seq`` is chosen by the
        broker: unique within the queue and larger than any seq the queue had before; enqueuing
        a seq the queue already holds replaces that message."""

    @abc.abstractmethod
    def remove(self, queue_id: int, seq: int) -> None:
        """Buffer deleting message ``seq`` from the queue (acked, expired, dropped). It may
        have been enqueued in an earlier batch or earlier in this one; a missing seq is
        ignored. Until committed, a crash brings the message back."""

    @abc.abstractmethod
    def mark_delivered(self, queue_id: int, seq: int) -> None:
        """Buffer setting the message's redelivered flag, so that once committed it is read back
        with ``redelivered=True``, after a crash in particular (RabbitMQ: every recovered message
        that may have been delivered carries the flag). A missing seq is ignored."""

    @abc.abstractmethod
    def purge(self, queue_id: int, from_seq: int = 0) -> None:
        """Buffer deleting every message of the queue with seq >= ``from_seq`` that exists at
        this point of the operation order: messages enqueued after the purge call (even in the
        same batch) stay. ``from_seq`` lets a paged queue drop its on-disk tail while the
        messages delivered from its head (lower seqs, unacked) stay stored."""

    @abc.abstractmethod
    def commit(self) -> int:
        """Write every buffered message operation in one transaction and return how many
        operations (calls) it took from the buffer; 0, without touching storage, if there were
        none. Operations take effect in call order, as if applied one by one. It takes the
        buffer atomically at its start, so operations buffered while it runs go to the next
        commit. When it returns, the batch is durable to the degree of the sync mode (the OS
        for "normal"/"off", the disk for "full"). If it raises ``StoreError``, nothing of the
        batch was written and the operations stay buffered, ahead of newer ones, for the next
        commit to retry."""

    @abc.abstractmethod
    def has_pending(self) -> bool:
        """Whether message operations are buffered and not yet taken by a commit."""

    @abc.abstractmethod
    def pending_bytes(self) -> int:
        """The memory the buffered operations hold: at least the header and body bytes of
        every buffered enqueue; 0 when nothing is buffered. Read once a second by the
        memory alarm, never on a message's path."""

    # -- reading: committed data only -----------------------------------------------------------

    @abc.abstractmethod
    def read_messages(self, queue_id: int, after_seq: int, limit: int) -> list[MessageRecord]:
        """Return up to ``limit`` committed messages of the queue with seq > ``after_seq``, in
        seq order, for recovery and for paging queues larger than memory. Buffered operations
        are not visible. An unknown queue reads as empty."""

    @abc.abstractmethod
    def queue_depth(self, queue_id: int) -> tuple[int, int]:
        """Return (message count, total body bytes) of the queue's committed messages."""

    def message_count(self, queue_id: int) -> int:
        """Return the number of the queue's committed messages (``queue_depth``'s first
        half, which a store may answer without reading the messages themselves)."""
        return self.queue_depth(queue_id)[0]
