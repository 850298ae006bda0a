"""The management API as its users see it: HTTP calls next to a real AMQP client."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

import amqpbroker

from .conftest import Http

_ids = itertools.count(1)


@pytest.fixture
def vhost(mgmt: amqpbroker.Broker, http: Http) -> Iterator[str]:
    """A vhost of its own, made through the API (a name with a slash, on purpose)."""
    name = f"mgmt/{os.getpid()}-{next(_ids)}"
    status, _, _ = http.request("PUT", f"/api/vhosts/{q(name)}")
    assert status == 201
    mgmt.add_vhost(name)  # also grants guest access where the broker has permissions
    yield name
    http.request("DELETE", f"/api/vhosts/{q(name)}")


def q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def connect(mgmt: amqpbroker.Broker, vhost: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(mgmt.url_for(vhost)))


def test_queue_lifecycle(mgmt: amqpbroker.Broker, http: Http, vhost: str) -> None:
    v = q(vhost)
    assert http.request("PUT", f"/api/queues/{v}/jobs", {"durable": False})[0] == 201
    assert http.request("PUT", f"/api/queues/{v}/jobs", {"durable": False})[0] == 204
    connection = connect(mgmt, vhost)
    channel = connection.channel()
    for i in range(3):
        channel.basic_publish("", "jobs", f"m{i}".encode())
    channel.basic_consume("jobs", lambda *a: None, auto_ack=False)
    connection.process_data_events(0.2)
    info = http.get(f"/api/queues/{v}/jobs")
    assert info["messages_unacknowledged"] == 3 and info["messages_ready"] == 0
    assert info["consumers"] == 1 and info["consumer_details"][0]["queue"]["name"] == "jobs"
    assert [x["name"] for x in http.get(f"/api/queues/{v}")] == ["jobs"]
    connection.close()
    assert http.get(f"/api/queues/{v}/jobs")["messages_ready"] == 3
    assert http.request("DELETE", f"/api/queues/{v}/jobs/contents")[0] == 204
    assert http.get(f"/api/queues/{v}/jobs")["messages"] == 0
    assert http.request("DELETE", f"/api/queues/{v}/jobs")[0] == 204
    assert http.request("GET", f"/api/queues/{v}/jobs")[0] == 404


def test_delete_if_empty_refused(http: Http, vhost: str) -> None:
    v = q(vhost)
    http.request("PUT", f"/api/queues/{v}/full", {})
    http.request("POST", "/api/exchanges/" + v + "/amq.default/publish",
                 {"properties": {}, "routing_key": "full", "payload": "x",
                  "payload_encoding": "string"})  # fmt: skip
    status, body, _ = http.request("DELETE", f"/api/queues/{v}/full?if-empty=true")
    assert status == 400
    assert body == {"error": "bad_request", "reason": f"queue 'full' in vhost '{vhost}' not empty"}


def test_publish_and_get_roundtrip(http: Http, vhost: str) -> None:
    v = q(vhost)
    http.request("PUT", f"/api/exchanges/{v}/logs", {"type": "topic", "durable": False})
    http.request("PUT", f"/api/queues/{v}/errors", {"durable": False})
    status, _, headers = http.request(
        "POST", f"/api/bindings/{v}/e/logs/q/errors", {"routing_key": "*.error"}
    )
    assert status == 201 and headers["location"] == "errors/%2A.error"
    message = {
        "properties": {"content_type": "text/plain", "headers": {"n": 7}, "delivery_mode": 2},
        "routing_key": "app.error",
        "payload": "//4=",  # 0xff 0xfe: not UTF-8
        "payload_encoding": "base64",
    }
    assert http.request("POST", f"/api/exchanges/{v}/logs/publish", message)[1] == {"routed": True}
    message["routing_key"] = "app.info"
    assert http.request("POST", f"/api/exchanges/{v}/logs/publish", message)[1] == {"routed": False}
    get = {"count": 10, "ackmode": "ack_requeue_true", "encoding": "auto"}
    [got] = http.request("POST", f"/api/queues/{v}/errors/get", get)[1]
    assert got["payload"] == "//4=" and got["payload_encoding"] == "base64"
    assert got["properties"] == {
        "content_type": "text/plain",
        "headers": {"n": 7},
        "delivery_mode": 2,
    }
    assert got["routing_key"] == "app.error" and got["exchange"] == "logs"
    assert got["redelivered"] is False
    # Requeued: it is there again, now redelivered; ack_requeue_false takes it.
    get["ackmode"] = "ack_requeue_false"
    [again] = http.request("POST", f"/api/queues/{v}/errors/get", get)[1]
    assert again["redelivered"] is True
    assert http.request("POST", f"/api/queues/{v}/errors/get", get)[1] == []


def test_get_truncates_and_counts(http: Http, vhost: str) -> None:
    v = q(vhost)
    http.request("PUT", f"/api/queues/{v}/t", {})
    for text in ("hello world", "second"):
        http.request("POST", f"/api/exchanges/{v}/amq.default/publish",
                     {"properties": {}, "routing_key": "t", "payload": text,
                      "payload_encoding": "string"})  # fmt: skip
    body = {"count": 1, "ackmode": "reject_requeue_true", "encoding": "auto", "truncate": 5}
    [got] = http.request("POST", f"/api/queues/{v}/t/get", body)[1]
    assert got["payload"] == "hello" and got["payload_bytes"] == 11
    assert got["message_count"] == 1


def test_bindings_listed_and_deleted_by_properties_key(
    mgmt: amqpbroker.Broker, http: Http, vhost: str
) -> None:
    v = q(vhost)
    connection = connect(mgmt, vhost)
    channel = connection.channel()
    channel.exchange_declare("hdr", "headers")
    channel.queue_declare("hq")
    channel.queue_bind("hq", "hdr", "", arguments={"x-match": "any", "k": 1})
    channel.queue_bind("hq", "hdr", "rk")
    between = http.get(f"/api/bindings/{v}/e/hdr/q/hq")
    assert sorted(b["routing_key"] for b in between) == ["", "rk"]
    with_args = next(b for b in between if b["arguments"])
    assert with_args["properties_key"].startswith("~")
    path = f"/api/bindings/{v}/e/hdr/q/hq/{with_args['properties_key']}"
    assert http.request("GET", path)[0] == 200
    assert http.request("DELETE", path)[0] == 204
    assert [b["routing_key"] for b in http.get(f"/api/bindings/{v}/e/hdr/q/hq")] == ["rk"]
    # The default exchange's implicit binding is listed too, as RabbitMQ does.
    assert any(b["source"] == "" for b in http.get(f"/api/bindings/{v}"))
    connection.close()


def test_exchange_to_exchange_binding(http: Http, vhost: str) -> None:
    v = q(vhost)
    http.request("PUT", f"/api/exchanges/{v}/a", {"type": "fanout"})
    http.request("PUT", f"/api/exchanges/{v}/b", {"type": "fanout"})
    http.request("PUT", f"/api/queues/{v}/qb", {})
    http.request("POST", f"/api/bindings/{v}/e/b/q/qb", {})
    assert http.request("POST", f"/api/bindings/{v}/e/a/e/b", {"routing_key": ""})[0] == 201
    routed = http.request("POST", f"/api/exchanges/{v}/a/publish",
                          {"properties": {}, "routing_key": "", "payload": "x",
                           "payload_encoding": "string"})[1]  # fmt: skip
    assert routed == {"routed": True}
    assert http.get(f"/api/exchanges/{v}/b/bindings/destination")[0]["source"] == "a"


def test_closing_a_connection_from_the_api(mgmt: amqpbroker.Broker, http: Http, vhost: str) -> None:
    params = pika.URLParameters(mgmt.url_for(vhost))
    params.client_properties = {"connection_name": "victim"}
    connection = pika.BlockingConnection(params)
    [info] = [c for c in http.get("/api/connections") if c.get("user_provided_name") == "victim"]
    assert info["vhost"] == vhost and info["user"] == "guest"
    assert info["name"].endswith(f" -> 127.0.0.1:{mgmt.port}")
    status, _, _ = http.request(
        "DELETE", f"/api/connections/{q(info['name'])}", headers={"X-Reason": "bye now"}
    )
    assert status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(20):
            connection.process_data_events(0.1)
    assert closed.value.reply_code == 320
    assert closed.value.reply_text == "CONNECTION_FORCED - bye now"


def test_channels_and_consumers(mgmt: amqpbroker.Broker, http: Http, vhost: str) -> None:
    connection = connect(mgmt, vhost)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=7)
    channel.queue_declare("cq")
    channel.basic_consume("cq", lambda *a: None, consumer_tag="tag-1")
    consumers = http.get(f"/api/consumers/{q(vhost)}")
    assert [(c["consumer_tag"], c["prefetch_count"], c["ack_required"]) for c in consumers] == [
        ("tag-1", 7, True)
    ]
    channels = http.get(f"/api/vhosts/{q(vhost)}/channels")
    assert channels[0]["consumer_count"] == 1 and channels[0]["prefetch_count"] == 7
    connection.close()


def test_definitions_roundtrip(http: Http, vhost: str) -> None:
    v = q(vhost)
    http.request("PUT", f"/api/exchanges/{v}/dx", {"type": "direct", "durable": True})
    http.request("PUT", f"/api/queues/{v}/dq", {"durable": True, "arguments": {"x-max-length": 5}})
    http.request("POST", f"/api/bindings/{v}/e/dx/q/dq", {"routing_key": "k"})
    exported = http.get(f"/api/definitions/{v}")
    assert {"name": "dq", "durable": True, "auto_delete": False,
            "arguments": {"x-max-length": 5}} in exported["queues"]  # fmt: skip
    assert exported["bindings"] == [{"source": "dx", "destination": "dq",
                                     "destination_type": "queue", "routing_key": "k",
                                     "arguments": {}}]  # fmt: skip
    http.request("DELETE", f"/api/queues/{v}/dq")
    http.request("DELETE", f"/api/exchanges/{v}/dx")
    assert http.request("POST", f"/api/definitions/{v}", exported)[0] == 204
    assert http.get(f"/api/definitions/{v}")["bindings"] == exported["bindings"]
    everything = http.get("/api/definitions")
    assert {"name": vhost} in everything["vhosts"]
    assert any(x["name"] == "dq" and x["vhost"] == vhost for x in everything["queues"])


def test_definitions_import_errors(http: Http) -> None:
    status, body, _ = http.request("POST", "/api/definitions", {
        "queues": [{"name": "x", "vhost": "no-such-vhost", "durable": True,
                    "auto_delete": False, "arguments": {}}]})  # fmt: skip
    assert status == 400 and body["reason"] == ["no_such_vhost", "no-such-vhost"]


def test_authentication(mgmt: amqpbroker.Broker) -> None:
    status, body, headers = Http(mgmt.management_url, "guest", "wrong").request(
        "GET", "/api/whoami"
    )
    assert (status, body) == (401, {"error": "not_authorized", "reason": "Login failed"})
    assert headers["www-authenticate"] == 'Basic realm="RabbitMQ Management"'
    assert Http(mgmt.management_url).get("/api/whoami") == {
        "name": "guest",
        "tags": ["administrator"],
    }


def test_list_queries(http: Http, vhost: str) -> None:
    v = q(vhost)
    for name in ("b", "a", "c"):
        http.request("PUT", f"/api/queues/{v}/{name}", {})
    names = [x["name"] for x in http.get(f"/api/queues/{v}?sort=name&sort_reverse=true")]
    assert names == ["c", "b", "a"]
    assert http.get(f"/api/queues/{v}?columns=name,messages&sort=name")[0] == {
        "name": "a",
        "messages": 0,
    }
    page = http.get(f"/api/queues/{v}?page=2&page_size=2&sort=name")
    assert page["items"][0]["name"] == "c"
    assert (page["page_count"], page["total_count"], page["item_count"]) == (2, 3, 1)


def test_vhost_lifecycle_and_health(http: Http) -> None:
    assert http.request("PUT", "/api/vhosts/short-lived", {"description": "d"})[0] == 201
    assert http.get("/api/vhosts/short-lived")["description"] == "d"
    assert http.get("/api/aliveness-test/short-lived") == {"status": "ok"}
    assert http.request("DELETE", "/api/vhosts/short-lived")[0] == 204
    assert http.request("GET", "/api/vhosts/short-lived")[0] == 404
    assert http.get("/api/health/checks/alarms") == {"status": "ok"}


@pytest.mark.parametrize(
    ("version", "full"), [("3.10", "3.10.8"), ("4.0", "4.0.5"), ("4.3", "4.3.5")]
)
def test_overview_and_definitions_report_the_rabbitmq_version(version: str, full: str) -> None:
    with amqpbroker.Broker(management=True, rabbitmq_version=version) as broker:
        api = Http(broker.management_url)
        overview = api.get("/api/overview")
        assert (overview["rabbitmq_version"], overview["product_version"]) == (full, full)
        assert overview["management_version"] == full
        assert api.get("/api/definitions")["rabbitmq_version"] == full


def test_overview_counts_messages(mgmt: amqpbroker.Broker, http: Http, vhost: str) -> None:
    before = http.get("/api/overview")["message_stats"]
    connection = connect(mgmt, vhost)
    channel = connection.channel()
    channel.queue_declare("counted")
    for _ in range(5):
        channel.basic_publish("", "counted", b"x")
    for _ in range(5):
        method, _props, _body = channel.basic_get("counted")
        assert method is not None
        channel.basic_ack(method.delivery_tag)
    connection.close()
    after = http.get("/api/overview")["message_stats"]
    assert after["publish"] - before["publish"] == 5
    assert after["deliver_get"] - before["deliver_get"] == 5
    assert after["ack"] - before["ack"] == 5


def test_metrics(mgmt: amqpbroker.Broker, http: Http, vhost: str) -> None:
    connection = connect(mgmt, vhost)
    channel = connection.channel()
    channel.queue_declare("metered")
    channel.basic_publish("", "metered", b"x")
    status, text, headers = http.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["rabbitmq_connections"] >= 1 and values["rabbitmq_channels"] >= 1
    assert values["rabbitmq_queue_messages_ready"] >= 1
    assert values['rabbitmq_global_messages_received_total{protocol="amqp091"}'] >= 1
    assert "# TYPE rabbitmq_queue_messages_ready gauge" in text
    connection.close()


def test_unknown_paths_and_methods(http: Http) -> None:
    assert http.request("GET", "/api/nope")[0:2] == (
        404,
        {"error": "Object Not Found", "reason": "Not Found"},
    )
    assert http.request("PATCH", "/api/queues")[0] == 405


def test_embedded_broker_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, amqpbroker\n"
        "with amqpbroker.Broker() as b: pass\n"
        "print(sorted(m for m in ('starlette', 'hypercorn', 'anyio') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_cli_serves_management_on_a_free_port(tmp_path: object) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "--port", "0", "--transient",
         "--management-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        url = None
        assert proc.stderr is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "management API on " in line:
                url = line.split("management API on ", 1)[1].strip().rstrip("/")
        assert url is not None
        overview = Http(url).get("/api/overview")
        assert overview["product_name"] == "RabbitMQ"
        assert overview["amqpbroker_version"] == amqpbroker.__version__
    finally:
        proc.terminate()
        proc.wait(10)


def test_refused_requests_are_logged(http: Http, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="amqpbroker.management"):
        http.request("PUT", "/api/exchanges/%2F/bad-type", {"type": "bogus"})
    assert (
        "management PUT /api/exchanges/%2F/bad-type by 'guest': 400 unknown exchange type 'bogus'"
        in caplog.messages
    )


def test_channel_errors_are_logged(
    mgmt: amqpbroker.Broker, vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    connection = connect(mgmt, vhost)
    channel = connection.channel()
    with caplog.at_level("INFO", logger="amqpbroker.protocol"):
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            channel.queue_declare("not-there", passive=True)
        connection.close()
    assert any(
        m.endswith(f"channel 1: NOT_FOUND - no queue 'not-there' in vhost '{vhost}'")
        for m in caplog.messages
    ), caplog.messages


def test_cli_management_port_in_use() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "amqpbroker", "--port", "0", "--transient",
             "--management-port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: port {port} on 127.0.0.1 is already in use" in (
        result.stderr
    )
