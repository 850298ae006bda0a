"""A definitions import over HTTP does not hold the event loop: between its steps other
tasks run once a time slice is used (here a slice of 0, so after every entity), and the
result is the same as the all-at-once import's."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from amqpbroker.broker.broker import Broker
from amqpbroker.config import Settings
from amqpbroker.management import definitions
from amqpbroker.management.context import ManagementContext

DOCUMENT: dict[str, Any] = {
    "queues": [{"name": f"q{i}", "vhost": "/", "durable": True} for i in range(50)],
    "exchanges": [{"name": "x", "vhost": "/", "type": "topic", "durable": True}],
    "bindings": [
        {"source": "x", "vhost": "/", "destination": f"q{i}", "routing_key": f"k{i}"}
        for i in range(50)
    ],
    "policies": [{"name": "limit", "vhost": "/"}],
}


def test_other_tasks_run_between_the_steps_of_an_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(definitions, "TIME_SLICE_S", 0.0)
    broker = Broker(Settings())
    seen: list[int] = []

    async def main() -> list[str]:
        done = False

        async def watch() -> None:
            while not done:
                seen.append(len(broker.vhosts["/"].queues))
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await trio.lowlevel.checkpoint()
            warnings = await definitions.import_definitions_fairly(
                ManagementContext(broker), DOCUMENT
            )
            done = True
        return warnings

    warnings = trio.run(main)
    assert any(0 < count < 50 for count in seen), seen
    reference = Broker(Settings())
    expected = definitions.import_definitions(ManagementContext(reference), DOCUMENT)
    assert warnings == expected
    assert sorted(broker.vhosts["/"].queues) == sorted(reference.vhosts["/"].queues)
    assert len(broker.vhosts["/"].queues) == 50
