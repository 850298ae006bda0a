"""The sans-IO core of the queue extensions, driven with a fake clock: the timer heap,
TTL and x-expires deadlines, dead-letter headers and cycles, priority ready lists,
and the order of publisher confirms when some publishes are refused.

No sockets and no sleeping: the broker takes a clock, and the test moves it and
calls ``run_timers`` the way the server's timer task would.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pamqp import commands

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.channel import Channel
from amqpbroker.broker.deadletter import dead_lettered, is_cycle
from amqpbroker.broker.features import FeatureRules
from amqpbroker.broker.message import Message, QueuedMessage
from amqpbroker.broker.queue import REFUSED, Queue
from amqpbroker.broker.queue_arguments import QueueOptions, options_from
from amqpbroker.broker.ready import PriorityReady
from amqpbroker.broker.timers import Timers
from amqpbroker.config import Settings
from amqpbroker.protocol import basic_codec
from amqpbroker.protocol import properties as props
from amqpbroker.versions import V3_10, V4_0


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def header(**properties: Any) -> bytes:
    return props.encode_header_payload(commands.Basic.Properties(**properties), 1)


def message(body: bytes = b"x", routing_key: str = "q", **properties: Any) -> Message:
    return Message("", routing_key, header(**properties), body)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker(clock: FakeClock) -> Broker:
    return Broker(Settings(consumer_timeout=0), clock=clock)  # no ack-timeout scan


def declare(broker: Broker, name: str, **arguments: Any) -> Queue:
    queue, created = broker.vhosts["/"].declare_queue(name, owner=None, arguments=arguments)
    assert created
    return queue


def bodies(queue: Queue) -> list[bytes]:
    return [qm.message.body for qm in queue.ready]


# -------------------------------------------------------------------- timers


def test_timers_run_in_deadline_order_and_skip_cancelled(clock: FakeClock) -> None:
    timers = Timers(clock)
    ran: list[str] = []
    timers.call_at(clock.now + 2, lambda: ran.append("b"))
    timers.call_at(clock.now + 1, lambda: ran.append("a"))
    timers.call_at(clock.now + 1, lambda: ran.append("a2"))  # same time: filing order
    timers.call_at(clock.now + 1.5, lambda: ran.append("never")).cancel()
    assert timers.next_deadline() == clock.now + 1
    clock.now += 1.6
    assert timers.run_due() == 2
    assert ran == ["a", "a2"]
    assert timers.next_deadline() == clock.now + 0.4  # the cancelled one is skipped
    clock.now += 1
    timers.run_due()
    assert ran == ["a", "a2", "b"]
    assert timers.next_deadline() is None


def test_an_earlier_deadline_wakes_the_timer_task(clock: FakeClock) -> None:
    timers = Timers(clock)
    woken: list[float] = []
    timers.wake = lambda: woken.append(clock.now)
    timers.call_later(10, lambda: None)
    timers.call_later(20, lambda: None)  # later than the earliest: no wake
    timers.call_later(5, lambda: None)
    assert len(woken) == 2


def test_a_failing_callback_does_not_stop_the_others(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    timers = Timers(clock)
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("bug")

    timers.call_later(0, boom)
    timers.call_later(0, lambda: ran.append(1))
    with caplog.at_level(logging.ERROR, "amqpbroker.timers"):
        timers.run_due()
    assert ran == [1]
    assert "timer callback failed" in caplog.text


def test_callbacks_filing_due_deadlines_run_in_the_same_round(clock: FakeClock) -> None:
    timers = Timers(clock)
    ran: list[str] = []
    timers.call_later(0, lambda: timers.call_later(0, lambda: ran.append("second")))
    timers.run_due()
    assert ran == ["second"]


# --------------------------------------------------------- features chosen once


def test_plain_arguments_give_a_plain_queue(broker: Broker) -> None:
    assert declare(broker, "a").rules is None
    assert declare(broker, "b", **{"x-custom": 1, "x-queue-type": "classic"}).rules is None
    assert isinstance(declare(broker, "c", **{"x-message-ttl": 10}).rules, FeatureRules)


def test_options_from_arguments() -> None:
    options = options_from(
        {
            "x-queue-type": "quorum",
            "x-overflow": "reject-publish-dlx",
            "x-delivery-limit": 3,
            "x-max-priority": 5,
            "x-dead-letter-exchange": b"dlx",
        },
        V3_10,
    )
    # Quorum: reject-publish-dlx acts as drop-head, priorities do not apply.
    assert options == QueueOptions(
        queue_type="quorum",
        overflow="drop-head",
        delivery_limit=3,
        dead_letter_exchange="dlx",
    )
    assert options_from({"x-delivery-limit": 3}).delivery_limit is None  # classic
    assert not options_from({}).needs_features


def test_a_plain_queue_gains_features_in_place_for_a_per_message_ttl(
    broker: Broker, clock: FakeClock
) -> None:
    from amqpbroker.broker import publish_extras

    queue = declare(broker, "q")
    queue.publish(message(b"before"))
    vhost = broker.vhosts["/"]
    expiring = message(b"short", expiration="100")
    queues, routed = publish_extras.route(None, vhost, vhost.exchanges[""], expiring)  # type: ignore[arg-type]
    assert list(queues) == [queue] and isinstance(queue.rules, FeatureRules)
    queue.publish(routed)
    queue.publish(message(b"after"))
    clock.now += 1
    broker.run_timers()
    assert bodies(queue) == [b"before", b"short", b"after"]  # not at the head: stays
    assert queue.get() is not None  # "before"; "short" reaches the head, expired
    assert bodies(queue) == [b"after"]


# ------------------------------------------------------------------------ TTL


def test_head_expiry_runs_on_the_timer_and_dead_letters(broker: Broker, clock: FakeClock) -> None:
    dead = declare(broker, "dead")
    queue = declare(
        broker,
        "q",
        **{"x-message-ttl": 500, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"},
    )
    queue.publish(message(b"a"))
    clock.now += 0.3
    queue.publish(message(b"b"))
    assert broker.timers.next_deadline() == pytest.approx(clock.now + 0.2)
    clock.now += 0.2
    broker.run_timers()
    assert bodies(queue) == [b"b"]
    assert bodies(dead) == [b"a"]
    clock.now += 0.3
    broker.run_timers()
    assert bodies(queue) == []
    assert bodies(dead) == [b"a", b"b"]
    assert broker.timers.next_deadline() is None


def test_x_expires_deletes_an_unused_queue(broker: Broker, clock: FakeClock) -> None:
    vhost = broker.vhosts["/"]
    queue = declare(broker, "q", **{"x-expires": 1000})
    clock.now += 0.8
    vhost.declare_queue("q", owner=None, passive=True)  # a use: the clock restarts
    clock.now += 0.8
    broker.run_timers()
    assert "q" in vhost.queues
    clock.now += 0.3
    broker.run_timers()
    assert "q" not in vhost.queues and queue.deleted


# --------------------------------------------------------------- dead letters


def test_dead_lettered_headers(clock: FakeClock) -> None:
    original = Message(
        "ex", "rk", props.encode_header_payload(
            commands.Basic.Properties(headers={"z": 1, "CC": ["c"]}, expiration="5"), 1
        ), b"x"
    )  # fmt: skip
    dead, keys = dead_lettered(original, "expired", "q", clock.now, "dlx", None, V3_10)
    assert (dead.exchange, dead.routing_key, keys) == ("dlx", "rk", ["rk", "c"])
    properties = props.decode_properties(dead.header)
    assert properties.expiration is None
    assert list(properties.headers) == [
        "CC", "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "z",
    ]  # fmt: skip
    [entry] = properties.headers["x-death"]
    assert list(entry) == [
        "count", "reason", "queue", "time", "exchange", "routing-keys", "original-expiration"
    ]  # fmt: skip
    assert entry["time"].raw == int(clock.now)  # a timestamp, in seconds
    again, _keys = dead_lettered(dead, "expired", "q", clock.now + 5, "dlx", "other", V3_10)
    [entry] = props.decode_properties(again.header).headers["x-death"]
    assert (entry["count"], list(entry)) == (2, sorted(entry))
    assert again.routing_key == "other"


def test_dead_lettered_headers_in_4_0(clock: FakeClock) -> None:
    original = Message(
        "ex", "rk", props.encode_header_payload(
            commands.Basic.Properties(
                headers={"z": 1, "x-death": [{"count": 7, "queue": "q", "reason": "expired"}],
                         "x-first-death-reason": "mine", "x-last-death-queue": "mine"},
                expiration="5",
            ), 1,
        ), b"x"
    )  # fmt: skip
    dead, _keys = dead_lettered(original, "expired", "q", clock.now, "dlx", None, V4_0)
    headers = props.decode_properties(dead.header).headers
    # The publisher's death headers are not history: this is the first death.
    assert list(headers) == [
        "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "z",
    ]  # fmt: skip
    [entry] = headers["x-death"]
    assert list(entry) == [
        "original-expiration", "count", "reason", "queue", "time", "exchange", "routing-keys"
    ]  # fmt: skip
    assert (entry["count"], headers["x-first-death-reason"]) == (1, "expired")
    # A message this broker dead-lettered counts on: same order, count 2, and the
    # last death is the newest.
    again, _keys = dead_lettered(dead, "rejected", "q2", clock.now, "dlx", None, V4_0)
    headers = props.decode_properties(again.header).headers
    assert [(d["queue"], d["count"], next(iter(d))) for d in headers["x-death"]] == [
        ("q2", 1, "count"), ("q", 1, "original-expiration")
    ]  # fmt: skip
    assert (headers["x-first-death-queue"], headers["x-last-death-queue"]) == ("q", "q2")


@pytest.mark.parametrize(
    ("deaths", "cycle"),
    [
        ([], False),
        ([{"queue": "q", "reason": "expired"}], True),
        ([{"queue": "b", "reason": "expired"}, {"queue": "q", "reason": "maxlen"}], True),
        ([{"queue": "b", "reason": "rejected"}, {"queue": "q", "reason": "expired"}], False),
        ([{"queue": "b", "reason": "expired"}], False),
    ],
)
def test_cycle_detection(deaths: list[dict[str, str]], cycle: bool) -> None:
    assert is_cycle("q", deaths) is cycle


# ------------------------------------------------------------- ready lists


def test_priority_ready_list_order_and_reinsert() -> None:
    ready = PriorityReady(3)
    items = [
        QueuedMessage(seq, message(b"%d" % seq, priority=p)) for seq, p in enumerate([1, 9, 0, 1])
    ]
    for item in items:
        ready.append(item)
    assert [qm.seq for qm in ready] == [1, 0, 3, 2]
    assert ready[0].seq == 1 and len(ready) == 4
    # By index too, as the management API samples a long queue's first messages.
    assert [ready[i].seq for i in range(4)] == [1, 0, 3, 2] and ready[-1].seq == 2
    with pytest.raises(IndexError):
        ready[4]
    taken = [ready.popleft(), ready.popleft(), ready.popleft()]
    ready.reinsert(taken[2])
    ready.reinsert(taken[1])
    assert [qm.seq for qm in ready] == [0, 3, 2]


# ---------------------------------------------------- confirms with refusals


class _Session:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def write(self, data: bytes) -> None:
        raise AssertionError("no deliveries here")


def test_refused_publishes_are_nacked_in_their_turn() -> None:
    session = _Session()
    channel = Channel(session, 1, None)  # type: ignore[arg-type]
    for seq in range(1, 7):
        if seq in (2, 5):
            channel.publish_refused(seq)
        channel.confirm_ready = seq
    channel.flush_confirms()
    assert session.sent == [
        basic_codec.encode_basic_ack(1, 1, False),
        basic_codec.encode_basic_nack(1, 2, False),
        basic_codec.encode_basic_ack(1, 4, True),
        basic_codec.encode_basic_nack(1, 5, False),
        basic_codec.encode_basic_ack(1, 6, False),
    ]


def test_a_refusal_waits_for_the_commit_before_it() -> None:
    session = _Session()
    channel = Channel(session, 1, None)  # type: ignore[arg-type]
    channel.commit_seq = 1  # publish 1 waits for a group commit
    channel.publish_refused(2)
    channel.flush_confirms()
    assert session.sent == []  # nothing may overtake the unconfirmed publish 1
    channel.confirm_ready = 2  # the commit came: 1 and 2 are both decided
    channel.flush_confirms()
    assert session.sent == [
        basic_codec.encode_basic_ack(1, 1, False),
        basic_codec.encode_basic_nack(1, 2, False),
    ]


def test_refused_is_truthy_and_distinct() -> None:
    assert REFUSED and REFUSED is not True
