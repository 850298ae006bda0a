"""The same management API calls against RabbitMQ and amqpbroker, reduced to shapes.

A shape keeps a response's keys and value types and drops every value, so a
recording of a real RabbitMQ 3.10 (fixtures/rabbitmq_3.10_shapes.json, made by
``python -m tests.management.record_shapes``) can be compared with our answers.

Shapes: ``"string" | "number" | "bool" | "null"``, a dict of shapes for an
object, and ``[shape]`` for a list (the merge of its items' shapes) or ``[]``.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pika

Shape = Any

# (key, method, path, body); the world they see is made by make_world().
CALLS: list[tuple[str, str, str, Any]] = [
    ("overview", "GET", "/api/overview", None),
    ("queues", "GET", "/api/queues", None),
    ("queues_vhost", "GET", "/api/queues/%2F", None),
    ("queue", "GET", "/api/queues/%2F/q1", None),
    ("queue_bindings", "GET", "/api/queues/%2F/q1/bindings", None),
    ("exchanges", "GET", "/api/exchanges/%2F", None),
    ("exchange", "GET", "/api/exchanges/%2F/ex1", None),
    ("exchange_source", "GET", "/api/exchanges/%2F/ex1/bindings/source", None),
    ("bindings", "GET", "/api/bindings", None),
    ("bindings_vhost", "GET", "/api/bindings/%2F", None),
    ("bindings_between", "GET", "/api/bindings/%2F/e/ex1/q/q1", None),
    ("connections", "GET", "/api/connections", None),
    ("channels", "GET", "/api/channels", None),
    ("consumers", "GET", "/api/consumers", None),
    ("vhosts", "GET", "/api/vhosts", None),
    ("vhost", "GET", "/api/vhosts/%2F", None),
    ("users", "GET", "/api/users", None),
    ("user", "GET", "/api/users/guest", None),
    ("permissions", "GET", "/api/permissions", None),
    ("whoami", "GET", "/api/whoami", None),
    ("cluster_name", "GET", "/api/cluster-name", None),
    ("aliveness", "GET", "/api/aliveness-test/%2F", None),
    ("health_alarms", "GET", "/api/health/checks/alarms", None),
    ("health_local_alarms", "GET", "/api/health/checks/local-alarms", None),
    ("health_vhosts", "GET", "/api/health/checks/virtual-hosts", None),
    ("health_quorum", "GET", "/api/health/checks/node-is-quorum-critical", None),
    ("definitions", "GET", "/api/definitions", None),
    ("definitions_vhost", "GET", "/api/definitions/%2F", None),
    ("paged_queues", "GET", "/api/queues?page=1&page_size=10", None),
    ("columns", "GET", "/api/queues?columns=name,messages,message_stats.publish", None),
    (
        "get",
        "POST",
        "/api/queues/%2F/q1/get",
        {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000},
    ),
    (
        "publish_routed",
        "POST",
        "/api/exchanges/%2F/ex1/publish",
        {
            "properties": {"delivery_mode": 2, "headers": {"a": "b"}},
            "routing_key": "a.c",
            "payload": "aGk=",
            "payload_encoding": "base64",
        },
    ),
    (
        "publish_unroutable",
        "POST",
        "/api/exchanges/%2F/ex1/publish",
        {"properties": {}, "routing_key": "zzz", "payload": "x", "payload_encoding": "string"},
    ),
    (
        "publish_no_exchange",
        "POST",
        "/api/exchanges/%2F/nope/publish",
        {"properties": {}, "routing_key": "zzz", "payload": "x", "payload_encoding": "string"},
    ),
    ("queue_missing", "GET", "/api/queues/%2F/nope", None),
    ("vhost_missing", "GET", "/api/queues/nope", None),
    ("queue_inequivalent", "PUT", "/api/queues/%2F/q1", {"durable": False}),
    ("queue_create", "PUT", "/api/queues/%2F/q4", {"durable": False, "auto_delete": True}),
    ("queue_redeclare", "PUT", "/api/queues/%2F/q4", {"durable": False, "auto_delete": True}),
    ("queue_bad_json", "PUT", "/api/queues/%2F/q5", "not json"),
    ("queue_delete", "DELETE", "/api/queues/%2F/q4", None),
    ("queue_delete_missing", "DELETE", "/api/queues/%2F/q4", None),
    ("exchange_bad_type", "PUT", "/api/exchanges/%2F/ex2", {"type": "bogus"}),
    ("exchange_create", "PUT", "/api/exchanges/%2F/ex2", {"type": "direct"}),
    ("exchange_reserved", "PUT", "/api/exchanges/%2F/amq.foo", {"type": "direct"}),
    ("exchange_delete", "DELETE", "/api/exchanges/%2F/ex2", None),
    ("binding_create", "POST", "/api/bindings/%2F/e/ex1/q/q1", {"routing_key": "k1"}),
    ("binding_no_exchange", "POST", "/api/bindings/%2F/e/nope/q/q1", {"routing_key": "x"}),
    ("binding_delete", "DELETE", "/api/bindings/%2F/e/ex1/q/q1/k1", None),
    ("purge", "DELETE", "/api/queues/%2F/q1/contents", None),
    ("vhost_create", "PUT", "/api/vhosts/shape-vhost", None),
    ("vhost_delete", "DELETE", "/api/vhosts/shape-vhost", None),
    ("unknown_path", "GET", "/api/nothing", None),
    ("no_credentials", "GET", "/api/overview", "NO-AUTH"),
    ("bad_credentials", "GET", "/api/overview", "BAD-AUTH"),
]


# Objects keyed by something volatile (the node name): their keys become "*".
VOLATILE_KEYS = ("cluster_state",)


def shape_of(value: Any) -> Shape:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return {
            k: _any_key(v) if k in VOLATILE_KEYS else shape_of(v) for k, v in sorted(value.items())
        }
    if isinstance(value, list):
        merged: Shape = None
        for item in value:
            merged = merge(merged, shape_of(item))
        return [] if merged is None else [merged]
    raise TypeError(type(value))


def _any_key(value: Any) -> Shape:
    if not isinstance(value, dict):
        return shape_of(value)
    merged: Shape = None
    for item in value.values():
        merged = merge(merged, shape_of(item))
    return {"*": merged} if merged is not None else {}


def merge(a: Shape, b: Shape) -> Shape:
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = merge(out.get(key), value)
        return out
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0] if a else None, b[0] if b else None)] if (a or b) else []
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    return "any"


def make_world(amqp_url: str) -> pika.BlockingConnection:
    """The state every recorded call sees: a named connection with a consumer on q2,
    a topic exchange ex1 bound to a durable q1 holding one persistent message."""
    params = pika.URLParameters(amqp_url)
    params.client_properties = {"connection_name": "shapes"}
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.exchange_declare("ex1", "topic", durable=True)
    channel.queue_declare("q1", durable=True, arguments={"x-max-length": 100})
    channel.queue_bind("q1", "ex1", "a.#")
    channel.basic_publish(
        "ex1",
        "a.b",
        b"hello",
        pika.BasicProperties(content_type="text/plain", headers={"h": 1}, delivery_mode=2),
    )
    channel.queue_declare("q2")
    channel.basic_consume("q2", lambda *args: None)
    return connection


def clean_world(amqp_url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for queue in ("q1", "q2", "q4", "aliveness-test"):
        channel.queue_delete(queue)
    for exchange in ("ex1", "ex2"):
        channel.exchange_delete(exchange)
    connection.close()


def call(base: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    """(status, parsed JSON body or None)."""
    headers = {}
    if body != "NO-AUTH":
        creds = b"guest:bad" if body == "BAD-AUTH" else b"guest:guest"
        headers["Authorization"] = "Basic " + base64.b64encode(creds).decode()
    data = None
    if isinstance(body, dict):
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif isinstance(body, str) and body not in ("NO-AUTH", "BAD-AUTH"):
        data = body.encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw.strip() else None


def record(base: str) -> dict[str, Any]:
    shapes: dict[str, Any] = {}
    for key, method, path, body in CALLS:
        status, parsed = call(base, method, path, body)
        shapes[key] = {"status": status, "shape": None if parsed is None else shape_of(parsed)}
    return shapes


def differences(expected: Shape, actual: Shape, where: str = "") -> list[str]:
    """What RabbitMQ's shape has that ours lacks or types differently.  Keys we add
    are fine; null on either side matches anything (nullable fields)."""
    if expected in ("null", "any") or actual in ("null", "any"):
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or '.'}: expected an object, got {actual!r}"]
        found = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{where}.{key}: missing")
            else:
                found.extend(differences(value, actual[key], f"{where}.{key}"))
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where or '.'}: expected a list, got {actual!r}"]
        if expected and actual:
            return differences(expected[0], actual[0], f"{where}[]")
        return []
    if expected != actual:
        return [f"{where or '.'}: expected {expected}, got {actual}"]
    return []
