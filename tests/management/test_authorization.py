"""Who may do what through the API: RabbitMQ's user tags and the users' permissions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import amqpbroker

from .conftest import Http

VHOST = "authz"


@pytest.fixture(scope="module")
def admin(mgmt: amqpbroker.Broker) -> Iterator[Http]:
    http = Http(mgmt.management_url)
    assert http.request("PUT", f"/api/vhosts/{VHOST}")[0] == 201
    for name, tags in (("plain", ""), ("manager", "management"), ("watcher", "monitoring")):
        assert http.request("PUT", f"/api/users/{name}", {"password": "pw", "tags": tags})[0] == 201
    # manager may configure only names starting with "app." in the vhost.
    http.request(
        "PUT", f"/api/permissions/{VHOST}/manager", {"configure": "^app\\.", "write": ".*",
                                                     "read": ".*"},
    )  # fmt: skip
    yield http
    for name in ("plain", "manager", "watcher"):
        http.request("DELETE", f"/api/users/{name}")
    http.request("DELETE", f"/api/vhosts/{VHOST}")


def as_user(mgmt: amqpbroker.Broker, name: str) -> Http:
    return Http(mgmt.management_url, name, "pw")


def test_user_without_management_tag(mgmt: amqpbroker.Broker, admin: Http) -> None:
    status, body, _ = as_user(mgmt, "plain").request("GET", "/api/overview")
    assert (status, body) == (401, {"error": "not_authorised", "reason": "Not management user"})


def test_management_user_sees_only_its_vhosts(mgmt: amqpbroker.Broker, admin: Http) -> None:
    manager = as_user(mgmt, "manager")
    assert [v["name"] for v in manager.get("/api/vhosts")] == [VHOST]
    status, body, _ = manager.request("GET", "/api/queues/%2F")
    assert (status, body["reason"]) == (401, "User not authorised to access virtual host")
    status, body, _ = manager.request("GET", "/api/users")
    assert (status, body["reason"]) == (401, "Not administrator user")


def test_permissions_apply_to_api_changes(mgmt: amqpbroker.Broker, admin: Http) -> None:
    manager = as_user(mgmt, "manager")
    assert manager.request("PUT", f"/api/queues/{VHOST}/app.jobs", {})[0] == 201
    status, body, _ = manager.request("PUT", f"/api/queues/{VHOST}/other", {})
    assert (status, body) == (401, {"error": "not_authorised", "reason": "Access refused."})
    assert manager.request("DELETE", f"/api/queues/{VHOST}/app.jobs")[0] == 204


def test_monitoring_user_lists_every_vhost_but_enters_none(
    mgmt: amqpbroker.Broker, admin: Http
) -> None:
    watcher = as_user(mgmt, "watcher")
    assert {"/", VHOST} <= {v["name"] for v in watcher.get("/api/vhosts")}
    assert isinstance(watcher.get("/api/queues"), list)
    for method in ("GET", "PUT"):
        status, body, _ = watcher.request(method, "/api/queues/%2F/nope", {})
        assert (status, body["reason"]) == (401, "User not authorised to access virtual host")


def test_administrator_without_permissions(mgmt: amqpbroker.Broker, admin: Http) -> None:
    admin.request("PUT", "/api/users/boss", {"password": "pw", "tags": "administrator"})
    try:
        boss = as_user(mgmt, "boss")
        assert isinstance(boss.get(f"/api/queues/{VHOST}"), list)
        status, body, _ = boss.request("PUT", f"/api/queues/{VHOST}/x", {})
        assert (status, body) == (401, {"error": "not_authorised", "reason": "Access refused."})
    finally:
        admin.request("DELETE", "/api/users/boss")
