"""A stateful model test of durable queues that page their tail out to the store.

Hypothesis publishes persistent and transient messages, fetches, acks, requeues,
purges and group-commits in any order against a queue whose in-memory window is
four messages, and checks after every step that the queue holds exactly what a
model list says, in the model's order, whatever part of it is on disk.  Run for a
plain queue and for the feature queues that page (drop-head and reject-publish
length limits, quorum type, whose returned messages go to the back).

The broker is driven directly (sans-IO): without a pager task it reads a page in
synchronously when asked, and the ``commit`` rule also asks again, as the pager
retries after a group commit when it found rows not committed yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pamqp import commands

from amqpbroker.broker import queue as queue_module
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.message import Message, QueuedMessage
from amqpbroker.broker.queue import REFUSED
from amqpbroker.config import Settings
from amqpbroker.protocol import properties as props
from amqpbroker.store import MemoryImage, MemoryStore

WINDOW = 4
MAX_LENGTH = 9


def header(persistent: bool) -> bytes:
    properties = commands.Basic.Properties(delivery_mode=2 if persistent else 1)
    return props.encode_header_payload(properties, 1)


@pytest.fixture(autouse=True)
def small_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(queue_module, "PAGE_OUT_AT", WINDOW)
    yield


class PagedQueueMachine(RuleBasedStateMachine):
    arguments: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore(MemoryImage())
        self.store.open()
        # RabbitMQ 3.10's quorum queues return messages to the back, as the model does
        # (4.x serves returns first: tests/durability/test_paging.py).
        self.broker = Broker(
            Settings(rabbitmq_version="3.10", consumer_timeout=0), self.store, clock=lambda: 1000.0
        )
        self.queue, _ = self.broker.vhosts["/"].declare_queue(
            "q", owner=None, durable=True, arguments=dict(self.arguments)
        )
        self.store.commit()
        self.published = 0
        self.model: list[int] = []  # message numbers, head first
        self.held: dict[int, QueuedMessage] = {}  # fetched, not settled
        self.was_paged = False

    @property
    def drop_head(self) -> bool:
        return "x-max-length" in self.arguments and "x-overflow" not in self.arguments

    @property
    def quorum(self) -> bool:
        return self.arguments.get("x-queue-type") == "quorum"

    def teardown(self) -> None:
        self.store.close()

    # -- what clients do -------------------------------------------------------------------

    @rule(persistent=st.booleans())
    def publish(self, persistent: bool) -> None:
        n = self.published
        self.published += 1
        body = b"%d" % n
        result = self.queue.publish(Message("", "q", header(persistent), body))
        rejecting = self.arguments.get("x-overflow") == "reject-publish"
        if rejecting and len(self.model) >= MAX_LENGTH:
            assert result is REFUSED
            return
        assert result is not REFUSED
        self.model.append(n)
        if self.drop_head:
            del self.model[: max(0, len(self.model) - MAX_LENGTH)]

    @rule()
    def fetch(self) -> None:
        qm = self.queue.get()
        if qm is None and self.model:
            # Only rows a group commit has not written yet may be out of reach.
            assert self.store.has_pending()
            self.commit()
            qm = self.queue.get()
        if not self.model:
            assert qm is None
            return
        assert qm is not None
        assert int(qm.message.body) == self.model.pop(0)
        self.held[int(qm.message.body)] = qm

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(sorted(self.held)))
        self.queue.settled(self.held.pop(n))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(sorted(self.held)))
        self.queue.requeue([self.held.pop(n)])
        if self.quorum:
            self.model.append(n)  # back of the queue
        else:
            self.model.append(n)
            self.model.sort()  # its original place
            if self.drop_head:
                del self.model[: max(0, len(self.model) - MAX_LENGTH)]

    @rule()
    def purge(self) -> None:
        pending = self.store.has_pending()
        purged = self.queue.purge()
        if purged > len(self.model) and self.drop_head:
            # The state counts_match_the_model allows: drop-head found the head empty
            # and its oldest rows not committed yet, so the purge takes the messages it
            # would have dropped too (RabbitMQ would count MAX_LENGTH and dead-letter
            # the rest as maxlen). Only while a group commit is owed.
            assert pending
            assert len(self.model) == MAX_LENGTH
        else:
            assert purged == len(self.model)
        self.model.clear()

    @rule()
    def commit(self) -> None:
        self.store.commit()
        if self.queue.tail is not None:
            self.broker.request_page_in(self.queue)

    # -- what must always hold -------------------------------------------------------------

    @invariant()
    def counts_match_the_model(self) -> None:
        count = self.queue.message_count
        if count > len(self.model) and self.drop_head:
            # drop-head found the head empty and the oldest messages not committed
            # yet: it drops them once the group commit has written them.
            assert self.store.has_pending()
            return
        assert count == len(self.model)
        if self.queue.tail is not None:
            self.was_paged = True
            assert self.queue.tail.count == len(self.model) - len(self.queue.ready)

    @invariant()
    def memory_holds_a_window(self) -> None:
        # The head holds at most the window, plus what was requeued into it.
        assert len(self.queue.ready) <= WINDOW + self.published


SETTINGS = settings(
    max_examples=120,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class PlainMachine(PagedQueueMachine):
    arguments: ClassVar[dict[str, Any]] = {}


class DropHeadMachine(PagedQueueMachine):
    arguments: ClassVar[dict[str, Any]] = {"x-max-length": MAX_LENGTH}


class RejectPublishMachine(PagedQueueMachine):
    arguments: ClassVar[dict[str, Any]] = {
        "x-max-length": MAX_LENGTH,
        "x-overflow": "reject-publish",
    }


class QuorumMachine(PagedQueueMachine):
    arguments: ClassVar[dict[str, Any]] = {"x-queue-type": "quorum"}


TestPlainPagedQueue = PlainMachine.TestCase
TestPlainPagedQueue.settings = SETTINGS
TestDropHeadPagedQueue = DropHeadMachine.TestCase
TestDropHeadPagedQueue.settings = SETTINGS
TestRejectPublishPagedQueue = RejectPublishMachine.TestCase
TestRejectPublishPagedQueue.settings = SETTINGS
TestQuorumPagedQueue = QuorumMachine.TestCase
TestQuorumPagedQueue.settings = SETTINGS
