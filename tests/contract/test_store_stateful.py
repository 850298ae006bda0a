"""A stateful model test of the stores, after RabbitMQ's classic_queue_prop_SUITE.

Hypothesis drives the broker's side of the contract: publish (enqueue), fetch (read_messages),
ack (remove), deliver/requeue (mark_delivered), purge, commit, queue deletion, a clean restart
and a crash-restart, against a model that is a dict of committed messages plus the list of
operations not yet committed. After every step the store's committed state must equal the
model's, which is the strong form of: a committed message is never lost, a removed-and-
committed message never comes back, and a message marked delivered comes back after a crash
with redelivered=True. Runs against both stores.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from amqpbroker.store import MemoryImage, MemoryStore, MessageRecord, SQLiteStore, Store

QUEUES = ("q1", "q2")
queues = st.sampled_from(QUEUES)
# Picks one of a queue's candidate seqs (index modulo their count), so that shrinking works
# on plain integers.
picks = st.integers(min_value=0, max_value=1_000)

# Model operations: (kind, queue_id, seq, record), kind being "enqueue" (with the record),
# "remove", "delivered" or "purge" (seq 0).
ModelOp = tuple[str, int, int, MessageRecord | None]


class StoreMachine(RuleBasedStateMachine):
    backend: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.image = MemoryImage()
        self.dir = tempfile.mkdtemp(prefix="store-stateful-")
        self.store = self.make_store()
        self.store.open()
        self.queue_ids = {name: self.store.put_queue("/", name, True, False, {}) for name in QUEUES}
        # The model: committed messages per live queue, and operations buffered since.
        self.committed: dict[int, dict[int, MessageRecord]] = {
            q: {} for q in self.queue_ids.values()
        }
        self.pending: list[ModelOp] = []
        self.max_seq = 0
        self.next_seq = 1

    def make_store(self) -> Store:
        if self.backend == "memory":
            return MemoryStore(self.image)
        # sync="off": durability against the OS is the same in-process, and fsync is slow.
        return SQLiteStore(self.dir, sync="off")

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def candidates(self, queue_id: int) -> list[int]:
        """Seqs a broker could name for this queue: committed or enqueued since."""
        seqs = set(self.committed.get(queue_id, {}))
        seqs.update(s for kind, q, s, _ in self.pending if kind == "enqueue" and q == queue_id)
        return sorted(seqs)

    def pick(self, queue: str, pick: int) -> tuple[int, int]:
        queue_id = self.queue_ids[queue]
        choices = self.candidates(queue_id) or [10**9]  # nothing there: name a missing seq
        return queue_id, choices[pick % len(choices)]

    def apply_pending(self) -> None:
        for kind, queue_id, seq, rec in self.pending:
            if kind == "enqueue":
                self.max_seq = max(self.max_seq, seq)
            messages = self.committed.get(queue_id)
            if messages is None:  # deleted queue
                continue
            if kind == "enqueue":
                assert rec is not None
                messages[seq] = rec
            elif kind == "remove":
                messages.pop(seq, None)
            elif kind == "delivered":
                old = messages.get(seq)
                if old is not None:
                    messages[old.seq] = MessageRecord(
                        old.seq, old.exchange, old.routing_key, old.header, old.body, True
                    )
            else:
                messages.clear()
        self.pending = []

    def restart(self) -> None:
        self.store = self.make_store()
        defs = self.store.open()
        assert defs.max_seq == self.max_seq
        assert {q.name: q.queue_id for q in defs.queues} == self.queue_ids
        # A restarted broker numbers on from max_seq: seqs of lost messages get reused.
        self.next_seq = defs.max_seq + 1

    # -- rules -------------------------------------------------------------------------------

    @rule(queue=queues, body=st.binary(max_size=12), redelivered=st.booleans())
    def publish(self, queue: str, body: bytes, redelivered: bool) -> None:
        queue_id = self.queue_ids[queue]
        rec = MessageRecord(self.next_seq, "amq.direct", queue, b"\x00<hdr", body, redelivered)
        self.next_seq += 1
        self.store.enqueue(queue_id, rec)
        self.pending.append(("enqueue", queue_id, rec.seq, rec))

    @rule(queue=queues, pick=picks)
    def ack(self, queue: str, pick: int) -> None:
        queue_id, seq = self.pick(queue, pick)
        self.store.remove(queue_id, seq)
        self.pending.append(("remove", queue_id, seq, None))

    @rule(queue=queues, pick=picks)
    def deliver_or_requeue(self, queue: str, pick: int) -> None:
        queue_id, seq = self.pick(queue, pick)
        self.store.mark_delivered(queue_id, seq)
        self.pending.append(("delivered", queue_id, seq, None))

    @rule(queue=queues)
    def purge(self, queue: str) -> None:
        queue_id = self.queue_ids[queue]
        self.store.purge(queue_id)
        self.pending.append(("purge", queue_id, 0, None))

    @rule(queue=queues, after=picks, limit=st.integers(min_value=1, max_value=5))
    def fetch(self, queue: str, after: int, limit: int) -> None:
        queue_id = self.queue_ids[queue]
        after_seq = after % (self.next_seq + 1)
        want = sorted(s for s in self.committed[queue_id] if s > after_seq)[:limit]
        got = self.store.read_messages(queue_id, after_seq, limit)
        assert got == [self.committed[queue_id][s] for s in want]

    @rule()
    def commit(self) -> None:
        assert self.store.commit() == len(self.pending)
        self.apply_pending()

    @rule(queue=queues)
    def delete_and_redeclare_queue(self, queue: str) -> None:
        old = self.queue_ids[queue]
        self.store.delete_queue(old)
        del self.committed[old]
        new = self.store.put_queue("/", queue, True, False, {})
        assert new != old
        self.queue_ids[queue] = new
        self.committed[new] = {}

    @rule()
    def close_and_restart(self) -> None:
        self.store.close()  # writes what is buffered
        self.apply_pending()
        self.restart()

    @rule()
    def crash_and_restart(self) -> None:
        self.store.simulate_crash()
        self.pending = []  # lost, and never confirmed to anyone
        self.restart()

    # -- what must always hold ---------------------------------------------------------------

    @invariant()
    def committed_state_matches_the_model(self) -> None:
        assert self.store.has_pending() == bool(self.pending)
        for queue_id, messages in self.committed.items():
            got, after = [], 0
            while page := self.store.read_messages(queue_id, after, 4):
                got.extend(page)
                after = page[-1].seq
            assert got == [messages[s] for s in sorted(messages)]
            want_depth = (len(messages), sum(len(m.body) for m in messages.values()))
            assert self.store.queue_depth(queue_id) == want_depth
            assert self.store.message_count(queue_id) == len(messages)


SETTINGS = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class MemoryStoreMachine(StoreMachine):
    backend = "memory"


class SQLiteStoreMachine(StoreMachine):
    backend = "sqlite"


TestMemoryStoreStateful = MemoryStoreMachine.TestCase
TestMemoryStoreStateful.settings = SETTINGS
TestSQLiteStoreStateful = SQLiteStoreMachine.TestCase
TestSQLiteStoreStateful.settings = SETTINGS
