"""``eventually``: wait for something a client observes, with a bound, never a guess.

A test that needs the broker to have done something it cannot be told about (a
message dead-lettered on a timer, a delivery on another connection) polls for it
instead of sleeping for a guessed time and then asserting::

    clock.advance(1800)                      # amqp_clock: broker time moves at once
    eventually(lambda: count("dead") == 1)   # the client sees it as soon as it is so

The predicate either returns a value (truthy: done, and ``eventually`` returns it)
or raises AssertionError (not yet; the last one is re-raised at the timeout, so a
failing test says what it last saw).  ``eventually_async`` is the same loop for
asyncio code (aio-pika), where a blocking wait would stop the client's own I/O.

Error handling: at the timeout, AssertionError (the predicate's last one, or one
naming the predicate and its last value).  Other exceptions propagate at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough for a busy CI machine; a passing wait returns as soon as it holds.
DEFAULT_TIMEOUT = 5.0
# First pause between tries, doubled up to the longest: a broker answers in well
# under a millisecond, so most waits end on the first or second try.
FIRST_PAUSE = 0.001
LONGEST_PAUSE = 0.05


class _Tries:
    """The retry schedule and failure report shared by both loops."""

    def __init__(self, predicate: object, timeout: float) -> None:
        self.predicate = predicate
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.pause = FIRST_PAUSE
        self.last_error: AssertionError | None = None
        self.last_value: object = None

    def next_pause(self) -> float:
        """The pause before the next try; raises when the time is up."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.fail()
        pause = min(self.pause, remaining)
        self.pause = min(self.pause * 2, LONGEST_PAUSE)
        return pause

    def fail(self) -> None:
        if self.last_error is not None:
            raise AssertionError(
                f"still failing after {self.timeout} s: {self.last_error}"
            ) from self.last_error
        name = getattr(self.predicate, "__qualname__", repr(self.predicate))
        raise AssertionError(
            f"{name} still false after {self.timeout} s (last value: {self.last_value!r})"
        )


def eventually(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT) -> T:
    """Call ``predicate`` until it returns a truthy value (returned) or ``timeout``
    seconds pass (AssertionError).  See the module docstring."""
    tries = _Tries(predicate, timeout)
    while True:
        try:
            value = predicate()
        except AssertionError as exc:
            tries.last_error = exc
        else:
            if value:
                return value
            tries.last_value, tries.last_error = value, None
        time.sleep(tries.next_pause())


async def eventually_async(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = DEFAULT_TIMEOUT
) -> T:
    """:func:`eventually` for asyncio code: ``predicate`` may be a plain function or
    return an awaitable (an ``async def``), and the pauses let the loop run."""
    tries = _Tries(predicate, timeout)
    while True:
        try:
            value = predicate()
            if isinstance(value, Awaitable):
                value = await value
        except AssertionError as exc:
            tries.last_error = exc
        else:
            if value:
                return value
            tries.last_value, tries.last_error = value, None
        await asyncio.sleep(tries.next_pause())
