"""RabbitMQ's own rabbitmqadmin (Debian's rabbitmq-server ships it) against our API.

Skipped where rabbitmqadmin is not installed."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import urllib.parse

import pytest

import amqpbroker

RABBITMQADMIN = shutil.which("rabbitmqadmin")
pytestmark = pytest.mark.skipif(RABBITMQADMIN is None, reason="rabbitmqadmin is not installed")


def admin(mgmt: amqpbroker.Broker, *args: str) -> str:
    port = urllib.parse.urlsplit(mgmt.management_url).port
    assert RABBITMQADMIN is not None and port is not None
    result = subprocess.run(
        [RABBITMQADMIN, "-H", "127.0.0.1", "-P", str(port), "-u", "guest", "-p", "guest",
         "-f", "raw_json", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_declare_publish_get_list_export(mgmt: amqpbroker.Broker, tmp_path: pathlib.Path) -> None:
    assert "queue declared" in admin(mgmt, "declare", "queue", "name=ra-q", "durable=false")
    admin(mgmt, "declare", "exchange", "name=ra-x", "type=fanout", "durable=false")
    admin(mgmt, "declare", "binding", "source=ra-x", "destination=ra-q")
    assert "Message published" in admin(
        mgmt, "publish", "exchange=ra-x", "routing_key=any", "payload=hello"
    )
    queues = json.loads(admin(mgmt, "list", "queues", "name", "messages"))
    assert {"name": "ra-q", "messages": 1} in queues
    exchanges = json.loads(admin(mgmt, "list", "exchanges"))
    assert any(e["name"] == "ra-x" and e["type"] == "fanout" for e in exchanges)
    bindings = json.loads(admin(mgmt, "list", "bindings"))
    assert any(b["source"] == "ra-x" and b["destination"] == "ra-q" for b in bindings)
    [got] = json.loads(admin(mgmt, "get", "queue=ra-q", "ackmode=ack_requeue_false"))
    assert got["payload"] == "hello" and got["exchange"] == "ra-x"
    export = tmp_path / "defs.json"
    admin(mgmt, "export", str(export))
    assert any(q["name"] == "ra-q" for q in json.loads(export.read_text())["queues"])
    admin(mgmt, "delete", "queue", "name=ra-q")
    admin(mgmt, "delete", "exchange", "name=ra-x")
    admin(mgmt, "import", str(export))
    assert {"name": "ra-q", "messages": 0} in json.loads(
        admin(mgmt, "list", "queues", "name", "messages")
    )
    admin(mgmt, "delete", "queue", "name=ra-q")
    admin(mgmt, "delete", "exchange", "name=ra-x")


def test_overview_nodes_and_vhosts(mgmt: amqpbroker.Broker) -> None:
    [overview] = json.loads(admin(mgmt, "show", "overview"))
    assert overview["rabbitmq_version"] == "4.0.5"  # the default --rabbitmq-version
    assert json.loads(admin(mgmt, "list", "nodes"))[0]["type"] == "disc"
    assert "/" in {v["name"] for v in json.loads(admin(mgmt, "list", "vhosts"))}
