"""Every management route, called by a user of each RabbitMQ tag, in a vhost the user
may use and in one it may not: the same walk against RabbitMQ and against us.

``python -m tests.management.record_rules PORT`` records a real RabbitMQ 3.10's
answers into fixtures/rabbitmq_3.10_route_rules.json; test_route_rules.py walks
our broker and compares.  Each answer is reduced to its status code plus, for a
refusal (401/403), the reason RabbitMQ gives, since clients show it to people.

The world (made by the guest administrator before the walk): vhosts ``granted``
(every test user has full permissions there) and ``other`` (nobody has, not even
the administrator); in each, per tag T, a queue ``q-T``, an exchange ``x-T`` and
bindings of ``q-T`` and ``x-T`` to ``amq.direct`` with key ``k-T``; users ``u-T``;
vhost ``del-T``; one guest AMQP connection per tag (closed by that tag's DELETE)
and a shared one with a channel.  Calls that create use ``new-T`` names and calls
that delete remove the T objects, so no call's outcome depends on another tag's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika

TAGS = ("none", "monitoring", "management", "policymaker", "administrator")
VHOSTS = ("granted", "other")
PASSWORD = "pw"

# (method, route template, concrete path, body).  ``{v}`` is one of VHOSTS, ``{t}``
# the caller's tag; ``{conn}``, ``{shared}``, ``{channel}``, ``{node}`` and ``{port}`` are filled
# in from the running broker.  Reads first, then creations, then deletions.
CALLS: list[tuple[str, str, str, Any]] = [
    ("GET", "/api/overview", "/api/overview", None),
    ("GET", "/api/cluster-name", "/api/cluster-name", None),
    ("GET", "/api/extensions", "/api/extensions", None),
    ("GET", "/api/nodes", "/api/nodes", None),
    ("GET", "/api/nodes/{node}", "/api/nodes/{node}", None),
    ("GET", "/api/health/checks/alarms", "/api/health/checks/alarms", None),
    ("GET", "/api/health/checks/local-alarms", "/api/health/checks/local-alarms", None),
    ("GET", "/api/health/checks/virtual-hosts", "/api/health/checks/virtual-hosts", None),
    ("GET", "/api/health/checks/port-listener/{port}",
     "/api/health/checks/port-listener/{port}", None),
    ("GET", "/api/health/checks/protocol-listener/{protocol}",
     "/api/health/checks/protocol-listener/amqp", None),
    ("GET", "/api/health/checks/node-is-quorum-critical",
     "/api/health/checks/node-is-quorum-critical", None),
    ("GET", "/api/health/checks/node-is-mirror-sync-critical",
     "/api/health/checks/node-is-mirror-sync-critical", None),
    ("GET", "/api/health/checks/certificate-expiration/{within}/{unit}",
     "/api/health/checks/certificate-expiration/1/weeks", None),
    ("GET", "/api/aliveness-test/{vhost}", "/api/aliveness-test/{v}", None),
    ("GET", "/api/vhosts", "/api/vhosts", None),
    ("GET", "/api/vhosts/{vhost}", "/api/vhosts/{v}", None),
    ("GET", "/api/vhosts/{vhost}/permissions", "/api/vhosts/{v}/permissions", None),
    ("GET", "/api/whoami", "/api/whoami", None),
    ("GET", "/api/users", "/api/users", None),
    ("GET", "/api/users/{user}", "/api/users/u-{t}", None),
    ("GET", "/api/users/{user}/permissions", "/api/users/u-{t}/permissions", None),
    ("GET", "/api/permissions", "/api/permissions", None),
    ("GET", "/api/permissions/{vhost}/{user}", "/api/permissions/granted/u-{t}", None),
    ("GET", "/api/policies", "/api/policies", None),
    ("GET", "/api/policies/{vhost}", "/api/policies/{v}", None),
    ("GET", "/api/parameters", "/api/parameters", None),
    ("GET", "/api/global-parameters", "/api/global-parameters", None),
    ("GET", "/api/definitions", "/api/definitions", None),
    ("GET", "/api/definitions/{vhost}", "/api/definitions/{v}", None),
    ("GET", "/api/queues", "/api/queues", None),
    ("GET", "/api/queues/{vhost}", "/api/queues/{v}", None),
    ("GET", "/api/queues/{vhost}/{name}", "/api/queues/{v}/q-{t}", None),
    ("GET", "/api/queues/{vhost}/{name}/bindings", "/api/queues/{v}/q-{t}/bindings", None),
    ("GET", "/api/exchanges", "/api/exchanges", None),
    ("GET", "/api/exchanges/{vhost}", "/api/exchanges/{v}", None),
    ("GET", "/api/exchanges/{vhost}/{name}", "/api/exchanges/{v}/x-{t}", None),
    ("GET", "/api/exchanges/{vhost}/{name}/bindings/source",
     "/api/exchanges/{v}/amq.direct/bindings/source", None),
    ("GET", "/api/exchanges/{vhost}/{name}/bindings/destination",
     "/api/exchanges/{v}/x-{t}/bindings/destination", None),
    ("GET", "/api/bindings", "/api/bindings", None),
    ("GET", "/api/bindings/{vhost}", "/api/bindings/{v}", None),
    ("GET", "/api/bindings/{vhost}/e/{source}/q/{destination}",
     "/api/bindings/{v}/e/amq.direct/q/q-{t}", None),
    ("GET", "/api/bindings/{vhost}/e/{source}/q/{destination}/{props}",
     "/api/bindings/{v}/e/amq.direct/q/q-{t}/k-{t}", None),
    ("GET", "/api/bindings/{vhost}/e/{source}/e/{destination}",
     "/api/bindings/{v}/e/amq.direct/e/x-{t}", None),
    ("GET", "/api/bindings/{vhost}/e/{source}/e/{destination}/{props}",
     "/api/bindings/{v}/e/amq.direct/e/x-{t}/k-{t}", None),
    ("GET", "/api/connections", "/api/connections", None),
    ("GET", "/api/vhosts/{vhost}/connections", "/api/vhosts/{v}/connections", None),
    ("GET", "/api/connections/{name}", "/api/connections/{shared}", None),
    ("GET", "/api/connections/{name}/channels", "/api/connections/{shared}/channels", None),
    ("GET", "/api/channels", "/api/channels", None),
    ("GET", "/api/vhosts/{vhost}/channels", "/api/vhosts/{v}/channels", None),
    ("GET", "/api/channels/{name}", "/api/channels/{channel}", None),
    ("GET", "/api/consumers", "/api/consumers", None),
    ("GET", "/api/consumers/{vhost}", "/api/consumers/{v}", None),
    ("POST", "/api/queues/{vhost}/{name}/get", "/api/queues/{v}/q-{t}/get",
     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    ("POST", "/api/exchanges/{vhost}/{name}/publish", "/api/exchanges/{v}/x-{t}/publish",
     {"properties": {}, "routing_key": "k", "payload": "x", "payload_encoding": "string"}),
    ("PUT", "/api/vhosts/{vhost}", "/api/vhosts/new-{t}", None),
    ("PUT", "/api/users/{user}", "/api/users/new-{t}", {"password": PASSWORD, "tags": ""}),
    ("PUT", "/api/permissions/{vhost}/{user}", "/api/permissions/{v}/u-{t}",
     {"configure": ".*", "write": ".*", "read": ".*"}),
    ("PUT", "/api/queues/{vhost}/{name}", "/api/queues/{v}/new-{t}", {"durable": False}),
    ("PUT", "/api/exchanges/{vhost}/{name}", "/api/exchanges/{v}/new-{t}", {"type": "direct"}),
    ("POST", "/api/bindings/{vhost}/e/{source}/q/{destination}",
     "/api/bindings/{v}/e/amq.direct/q/q-{t}", {"routing_key": "new-{t}"}),
    ("POST", "/api/bindings/{vhost}/e/{source}/e/{destination}",
     "/api/bindings/{v}/e/amq.direct/e/x-{t}", {"routing_key": "new-{t}"}),
    ("POST", "/api/definitions", "/api/definitions", {}),
    ("POST", "/api/definitions/{vhost}", "/api/definitions/{v}", {}),
    ("DELETE", "/api/queues/{vhost}/{name}/contents", "/api/queues/{v}/q-{t}/contents", None),
    ("DELETE", "/api/bindings/{vhost}/e/{source}/q/{destination}/{props}",
     "/api/bindings/{v}/e/amq.direct/q/q-{t}/k-{t}", None),
    ("DELETE", "/api/bindings/{vhost}/e/{source}/e/{destination}/{props}",
     "/api/bindings/{v}/e/amq.direct/e/x-{t}/k-{t}", None),
    ("DELETE", "/api/queues/{vhost}/{name}", "/api/queues/{v}/q-{t}", None),
    ("DELETE", "/api/exchanges/{vhost}/{name}", "/api/exchanges/{v}/x-{t}", None),
    ("DELETE", "/api/permissions/{vhost}/{user}", "/api/permissions/granted/u-{t}", None),
    ("DELETE", "/api/users/{user}", "/api/users/u-{t}", None),
    ("DELETE", "/api/vhosts/{vhost}", "/api/vhosts/del-{t}", None),
    ("DELETE", "/api/connections/{name}", "/api/connections/{conn}", None),
]  # fmt: skip

# Test users are named after their tag; "none" has no tag at all.
USERS = {tag: f"tag-{tag}" for tag in TAGS}


class Client:
    def __init__(self, base: str, user: str, password: str) -> None:
        self.base = base
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": self.auth}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw.strip() else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, got = self.call(method, path, body)
        assert status < 300, (method, path, status, got)
        return got


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _setup(admin: Client) -> None:
    for vhost in (*VHOSTS, *(f"del-{t}" for t in TAGS)):
        admin.ok("PUT", f"/api/vhosts/{vhost}")
    for vhost in VHOSTS:
        admin.ok("PUT", f"/api/permissions/{vhost}/guest",
                 {"configure": ".*", "write": ".*", "read": ".*"})  # fmt: skip
    for tag, user in USERS.items():
        admin.ok("PUT", f"/api/users/{user}",
                 {"password": PASSWORD, "tags": "" if tag == "none" else tag})  # fmt: skip
        admin.ok("PUT", f"/api/permissions/granted/{user}",
                 {"configure": ".*", "write": ".*", "read": ".*"})  # fmt: skip
        admin.ok("PUT", f"/api/users/u-{tag}", {"password": PASSWORD, "tags": ""})
        admin.ok("PUT", f"/api/permissions/granted/u-{tag}",
                 {"configure": ".*", "write": ".*", "read": ".*"})  # fmt: skip
        for vhost in VHOSTS:
            admin.ok("PUT", f"/api/queues/{vhost}/q-{tag}", {"durable": False})
            admin.ok("PUT", f"/api/exchanges/{vhost}/x-{tag}", {"type": "direct"})
            for kind, dest in (("q", f"q-{tag}"), ("e", f"x-{tag}")):
                admin.ok("POST", f"/api/bindings/{vhost}/e/amq.direct/{kind}/{dest}",
                         {"routing_key": f"k-{tag}"})  # fmt: skip


def teardown(admin: Client) -> None:
    """Remove everything the walk made (safe to call on a clean broker)."""
    names = [*VHOSTS, *(f"{p}-{t}" for p in ("del", "new") for t in TAGS)]
    for vhost in names:
        admin.call("DELETE", f"/api/vhosts/{vhost}")
    for user in [*USERS.values(), *(f"{p}-{t}" for p in ("u", "new") for t in TAGS)]:
        admin.call("DELETE", f"/api/users/{user}")


def _connection_names(admin: Client, peers: list[str]) -> dict[str, str]:
    """The management names of our AMQP connections, by local address ``host:port``.
    RabbitMQ's statistics lag by a few seconds, hence the polling."""
    deadline = time.monotonic() + 30
    while True:
        found = {f"{c['peer_host']}:{c['peer_port']}": c["name"]
                 for c in admin.ok("GET", "/api/connections")}  # fmt: skip
        channels = {c["name"] for c in admin.ok("GET", "/api/channels")}
        if all(p in found for p in peers) and f"{found[peers[0]]} (1)" in channels:
            return found
        assert time.monotonic() < deadline, (peers, found, channels)
        time.sleep(0.2)


@contextmanager
def world(base: str, amqp_port: int) -> Iterator[dict[str, Any]]:
    """Set the world up; yields what the walk needs to fill the paths in."""
    admin = Client(base, "guest", "guest")
    teardown(admin)
    _setup(admin)
    params = pika.ConnectionParameters("127.0.0.1", amqp_port, "granted",
                                       pika.PlainCredentials("guest", "guest"))  # fmt: skip
    connections = [pika.BlockingConnection(params) for _ in range(len(TAGS) + 1)]
    try:
        connections[0].channel()
        peers = []
        for c in connections:
            host, port = c._impl._transport._sock.getsockname()[:2]
            peers.append(f"{host}:{port}")
        names = _connection_names(admin, peers)
        node = admin.ok("GET", "/api/overview")["node"]
        yield {
            "shared": names[peers[0]],
            "conns": {t: names[p] for t, p in zip(TAGS, peers[1:], strict=True)},
            "node": node,
            "port": amqp_port,
        }
    finally:
        for c in connections:
            if c.is_open:
                with contextlib.suppress(Exception):  # closed by the walk's DELETE
                    c.close()
        teardown(admin)


def _outcome(status: int, body: Any) -> str:
    if status in (401, 403) and isinstance(body, dict):
        return f"{status} {body.get('reason')}"
    return str(status)


def walk(base: str, amqp_port: int) -> dict[str, dict[str, str]]:
    """``{"METHOD template [vhost]": {tag: "status [reason]"}}`` for every call."""
    table: dict[str, dict[str, str]] = {}
    clients = {tag: Client(base, user, PASSWORD) for tag, user in USERS.items()}
    with world(base, amqp_port) as filled:
        for method, template, path, body in CALLS:
            vhosts = VHOSTS if "{v}" in path else ("",)
            for vhost in vhosts:
                key = f"{method} {template}" + (f" [{vhost}]" if vhost else "")
                row = table.setdefault(key, {})
                for tag in TAGS:
                    concrete = path.format(
                        v=vhost, t=tag, node=_q(filled["node"]), port=filled["port"],
                        shared=_q(filled["shared"]), conn=_q(filled["conns"][tag]),
                        channel=_q(filled["shared"] + " (1)"),
                    )  # fmt: skip
                    data = json.loads(json.dumps(body).replace("{t}", tag)) if body else body
                    row[tag] = _outcome(*clients[tag].call(method, concrete, data))
    return table
