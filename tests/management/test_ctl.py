"""``amqpbroker ctl`` verbs against a running broker, as an operator reads them."""

from __future__ import annotations

import io
import json
import pathlib
from collections.abc import Iterator

import pika
import pytest

import amqpbroker
from amqpbroker.management import ctl

from .conftest import Http


def run(mgmt: amqpbroker.Broker, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = ctl.main(["--url", mgmt.management_url, *argv], out=out)
    return code, out.getvalue()


@pytest.fixture
def vhost(mgmt: amqpbroker.Broker) -> Iterator[str]:
    name = "ctl-vhost"
    code, out = run(mgmt, "add_vhost", name)
    assert code == 0 and out == 'Adding vhost "ctl-vhost" ...\n'
    mgmt.add_vhost(name)  # permissions for guest where the broker has them
    yield name
    run(mgmt, "delete_vhost", name)


def test_list_queues_like_rabbitmqctl(mgmt: amqpbroker.Broker, vhost: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(mgmt.url_for(vhost)))
    channel = connection.channel()
    channel.queue_declare("orders", durable=True, arguments={"x-max-length": 10})
    channel.basic_publish("", "orders", b"one")
    code, out = run(mgmt, "-p", vhost, "list_queues")
    assert code == 0
    assert out == (
        "Timeout: 60.0 seconds ...\n"
        f"Listing queues for vhost {vhost} ...\n"
        "name\tmessages\n"
        "orders\t1\n"
    )
    code, out = run(mgmt, "-q", "-p", vhost, "list_queues", "name", "durable", "arguments")
    assert out == 'name\tdurable\targuments\norders\ttrue\t[{"x-max-length",10}]\n'
    code, out = run(mgmt, "-q", "--no-table-headers", "-p", vhost, "list_bindings")
    assert out == "\texchange\torders\tqueue\torders\t[]\n"
    channel.basic_consume("orders", lambda *a: None, consumer_tag="c1")
    code, out = run(mgmt, "-q", "-p", vhost, "list_consumers", "queue_name", "consumer_tag")
    assert out == "queue_name\tconsumer_tag\norders\tc1\n"
    code, out = run(mgmt, "-q", "list_connections", "user", "vhost")
    assert f"guest\t{vhost}\n" in out
    connection.close()
    assert run(mgmt, "-p", vhost, "purge_queue", "orders")[0] == 0
    code, out = run(mgmt, "-p", vhost, "delete_queue", "orders")
    assert code == 0 and out.endswith("Queue was successfully deleted with 0 ready messages\n")


def test_exchanges_and_vhosts(mgmt: amqpbroker.Broker, vhost: str) -> None:
    code, out = run(mgmt, "-q", "-p", vhost, "list_exchanges")
    assert code == 0 and "amq.topic\ttopic\n" in out and out.startswith("name\ttype\n")
    code, out = run(mgmt, "-q", "list_vhosts")
    assert f"\n{vhost}\n" in out


def test_definitions_roundtrip(mgmt: amqpbroker.Broker, tmp_path: pathlib.Path) -> None:
    http = Http(mgmt.management_url)
    http.request("PUT", "/api/queues/%2F/ctl-defs", {"durable": True})
    path = tmp_path / "defs.json"
    assert run(mgmt, "export_definitions", str(path))[0] == 0
    exported = json.loads(path.read_text())
    assert any(q["name"] == "ctl-defs" for q in exported["queues"])
    http.request("DELETE", "/api/queues/%2F/ctl-defs")
    assert run(mgmt, "import_definitions", str(path))[0] == 0
    assert http.request("GET", "/api/queues/%2F/ctl-defs")[0] == 200
    http.request("DELETE", "/api/queues/%2F/ctl-defs")


def test_errors_and_exit_codes(mgmt: amqpbroker.Broker, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(mgmt, "purge_queue", "no-such-queue")[0] == 69
    assert run(mgmt, "list_queues", "bogus")[0] == 64
    code = ctl.main(["--url", "http://127.0.0.1:1", "-q", "list_queues"], out=io.StringIO())
    assert code == 69
    assert "unable to reach the broker's management API" in capsys.readouterr().err
