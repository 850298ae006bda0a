"""Every route's user-tag and vhost rule, as RabbitMQ 3.10's management plugin has
them: the walk of routewalk.py against our broker, compared with the recording of
a real RabbitMQ 3.10 (fixtures/rabbitmq_3.10_route_rules.json)."""

from __future__ import annotations

import json
import pathlib

import pytest

import amqpbroker
from amqpbroker.management.app import ROUTE_TABLES

from .routewalk import CALLS, walk

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "rabbitmq_3.10_route_rules.json"


def test_the_walk_covers_every_route() -> None:
    walked = {(method, template) for method, template, _, _ in CALLS}
    served = {
        (method, path)
        for table in ROUTE_TABLES
        for path, methods, _, _ in table.entries
        for method in methods
    }
    assert served - walked == set(), "add the new route to routewalk.CALLS and re-record"
    assert walked - served == set()


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, str]]:
    with amqpbroker.Broker(management=True) as broker:
        return walk(broker.management_url, broker.port)


def test_rules_match_rabbitmq(table: dict[str, dict[str, str]]) -> None:
    expected = json.loads(FIXTURE.read_text())
    assert table.keys() == expected.keys()
    wrong = {
        f"{key} as {tag}": f"{table[key][tag]} (RabbitMQ: {want})"
        for key, row in expected.items()
        for tag, want in row.items()
        if table[key][tag] != want
    }
    assert wrong == {}


def test_monitoring_user_cannot_close_connections(table: dict[str, dict[str, str]]) -> None:
    row = table["DELETE /api/connections/{name}"]
    assert row["monitoring"] == "401 User not authorised to access object"
    assert row["administrator"] == "204"
