"""Our management API answers with RabbitMQ 3.10's keys, value types and statuses.

The recording (fixtures/rabbitmq_3.10_shapes.json) comes from a real RabbitMQ
running the same calls on the same world (shapes.py); record_shapes.py remakes it.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

import amqpbroker

from .shapes import CALLS, clean_world, differences, make_world, record

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "rabbitmq_3.10_shapes.json"

# Fields RabbitMQ shows only in some states, or that describe its Erlang runtime
# where we have nothing true to say: left out on purpose.
ALLOWED_MISSING = {
    "idle_since",  # set after a period without activity; we do not track idleness
    # Per-exchange publish_in/publish_out counters would cost the publish hot path
    # one more increment per exchange; RabbitMQ omits the field on idle exchanges too.
    "message_stats",
}


@pytest.fixture(scope="module")
def recorded(mgmt: amqpbroker.Broker) -> Iterator[dict[str, Any]]:
    clean_world(mgmt.url)
    connection = make_world(mgmt.url)
    try:
        yield record(mgmt.management_url)
    finally:
        connection.close()
        clean_world(mgmt.url)


def _expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


@pytest.mark.parametrize("key", [call[0] for call in CALLS])
def test_same_shape_as_rabbitmq(recorded: dict[str, Any], key: str) -> None:
    expected = _expected()[key]
    ours = recorded[key]
    assert ours["status"] == expected["status"], (key, ours)
    if expected["shape"] is None:
        assert ours["shape"] is None, (key, ours)
        return
    found = [
        d
        for d in differences(expected["shape"], ours["shape"])
        if d.rsplit(".", 1)[-1].split(":")[0] not in ALLOWED_MISSING
    ]
    assert not found, f"{key}: {found}"
