"""ManualClock: broker time that only the test moves (broker/timers.py)."""

from __future__ import annotations

import time

import pytest

from amqpbroker import ManualClock
from amqpbroker.broker.broker import Broker
from amqpbroker.broker.timers import Timers
from amqpbroker.config import Settings

START = 1_000_000.0


def bound(clock: ManualClock) -> Timers:
    timers = Timers(clock)
    clock.bind(timers, timers.run_due)
    return timers


def test_it_stands_still_until_advanced() -> None:
    clock = ManualClock(START)
    assert clock() == START
    clock.advance(1800)
    assert clock() == START + 1800


def test_each_deadline_runs_at_its_own_time_in_order() -> None:
    clock = ManualClock(START)
    timers = bound(clock)
    seen: list[tuple[str, float]] = []
    timers.call_at(START + 3, lambda: seen.append(("c", clock())))
    timers.call_at(START + 1, lambda: seen.append(("a", clock())))
    timers.call_at(START + 2, lambda: seen.append(("b", clock())))
    timers.call_at(START + 10, lambda: seen.append(("late", clock())))
    clock.advance(5)
    assert seen == [("a", START + 1), ("b", START + 2), ("c", START + 3)]
    assert clock() == START + 5
    clock.advance(5)
    assert seen[-1] == ("late", START + 10)


def test_deadlines_filed_on_the_way_run_too() -> None:
    # A periodic scan (the consumer timeout) runs once per period of the advance.
    clock = ManualClock(START)
    timers = bound(clock)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock() - START)
        timers.call_later(1.0, tick)

    timers.call_later(1.0, tick)
    clock.advance(3.5)
    assert ticks == [1.0, 2.0, 3.0]


def test_a_deadline_at_the_target_runs_and_one_just_after_does_not() -> None:
    clock = ManualClock(START)
    timers = bound(clock)
    ran: list[str] = []
    timers.call_at(START + 2, lambda: ran.append("at"))
    timers.call_at(START + 2.001, lambda: ran.append("after"))
    clock.advance(2)
    assert ran == ["at"]


def test_it_never_goes_back() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_unfrozen_it_follows_the_wall_clock_from_where_it_was() -> None:
    clock = ManualClock(frozen=False)
    assert abs(clock() - time.time()) < 1
    clock.advance(3600)  # freezes it
    assert clock.frozen
    ahead = clock()
    clock.unfreeze()
    assert not clock.frozen
    assert clock() >= ahead  # still an hour ahead of the wall clock, never back
    assert clock() - time.time() > 3599


def test_the_broker_core_measures_ttls_with_it() -> None:
    clock = ManualClock(START)
    broker = Broker(Settings(consumer_timeout=0), clock=clock)
    clock.bind(broker.timers, broker.run_timers)
    assert broker.clock() == START
    vhost = broker.vhosts["/"]
    assert vhost.timers is broker.timers
    clock.advance(1)
    assert broker.timers.clock() == START + 1
