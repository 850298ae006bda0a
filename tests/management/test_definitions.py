"""Definitions exported by a real RabbitMQ 3.10 (fixtures/rabbitmq_3.10_definitions.json)
load here: at start (--load-definitions, or Broker(load_definitions=...)) and by POST."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pika
import pytest

import amqpbroker
from amqpbroker.management.context import ManagementContext
from amqpbroker.management.definitions import import_definitions

from .conftest import Http

EXPORTED = pathlib.Path(__file__).parent / "fixtures" / "rabbitmq_3.10_definitions.json"


def test_loaded_at_start_as_rabbitmq_had_them() -> None:
    with amqpbroker.Broker(management=True, load_definitions=str(EXPORTED)) as broker:
        http = Http(broker.management_url)
        assert {v["name"] for v in http.get("/api/vhosts")} == {"/", "orders"}
        queues = {q["name"]: q for q in http.get("/api/queues/orders")}
        assert set(queues) == {"created", "dead", "work"}
        assert queues["created"]["arguments"] == {
            "x-dead-letter-exchange": "dlx",
            "x-message-ttl": 60000,
        }
        assert queues["work"]["type"] == "quorum" and queues["work"]["durable"]
        exchanges = {e["name"]: e for e in http.get("/api/exchanges/orders")}
        assert exchanges["events"]["type"] == "topic"
        assert exchanges["all"]["arguments"] == {"alternate-exchange": "dlx"}
        bindings = {
            (b["source"], b["destination"], b["destination_type"], b["routing_key"])
            for b in http.get("/api/bindings/orders")
            if b["source"]
        }
        assert bindings == {
            ("events", "created", "queue", "order.created"),
            ("dlx", "dead", "queue", ""),
            ("all", "events", "exchange", "#"),
        }
        # The topology works: all -> events -> created.
        connection = pika.BlockingConnection(pika.URLParameters(broker.url_for("orders")))
        channel = connection.channel()
        channel.basic_publish("all", "order.created", b"o-1")
        method, _props, body = channel.basic_get("created", auto_ack=True)
        assert method is not None and body == b"o-1"
        connection.close()


def test_unsupported_sections_are_reported() -> None:
    with amqpbroker.Broker() as broker:
        assert broker.core is not None
        warnings = broker.call(
            import_definitions, ManagementContext(broker.core), json.loads(EXPORTED.read_text())
        )
    assert "policy 'limit' skipped: not supported" in warnings


def test_cli_refuses_a_bad_definitions_file(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "defs.json"
    bad.write_text('{"queues": [{"name": "q", "vhost": "missing"}]}')
    result = subprocess.run(
        [sys.executable, "-m", "amqpbroker", "--transient", "--port", "0",
         "--no-management", "--load-definitions", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot load definitions" in result.stderr and "missing" in result.stderr


@pytest.mark.parametrize("path", ["/api/definitions"])
def test_import_over_http(http: Http, path: str) -> None:
    data = json.loads(EXPORTED.read_text())
    assert http.request("POST", path, data)[0] == 204
    assert "orders" in {v["name"] for v in http.get("/api/vhosts")}
    assert http.request("DELETE", "/api/vhosts/orders")[0] == 204
