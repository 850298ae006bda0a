"""/api/vhosts, users, permissions, whoami, definitions, and the empty policy lists."""

from __future__ import annotations

from typing import Any

from ..broker.session import client_sessions
from ..broker.vhost import VirtualHost
from . import definitions, users
from .api import (
    CREATED,
    Api,
    ApiError,
    RouteTable,
    administrator,
    bad_request,
    not_found,
    parse_json,
    policymaker,
)
from .api_overview import message_stats
from .context import ManagementContext
from .format import details
from .totals import Snapshot

routes = RouteTable()


# ------------------------------------------------------------------ vhosts


def _vhost_counts(ctx: ManagementContext, host: VirtualHost) -> dict[str, Any]:
    ready = sum(q.message_count for q in host.queues.values())
    unacked = sum(q.unacked for q in host.queues.values())
    published = sum(max(q.next_seq - 1, 0) for q in host.queues.values())
    recv = send = 0
    for session in client_sessions(ctx.broker):
        if session.vhost is host:
            recv += session.recv_oct
            send += session.send_oct
    return {
        "message_stats": message_stats(ctx, Snapshot(published=published)),
        "messages": ready + unacked,
        "messages_details": details(),
        "messages_ready": ready,
        "messages_ready_details": details(),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": details(),
        "recv_oct": recv,
        "recv_oct_details": details(),
        "send_oct": send,
        "send_oct_details": details(),
    }


def vhost_info(ctx: ManagementContext, host: VirtualHost) -> dict[str, Any]:
    meta = ctx.vhost_meta.get(host.name, {})
    description = str(meta.get("description", "Default virtual host" if host.name == "/" else ""))
    tags = meta.get("tags", [])
    info: dict[str, Any] = {
        "cluster_state": {ctx.node: "running"},
        "default_queue_type": "undefined",
        "description": description,
        "metadata": {"description": description, "tags": tags},
        "name": host.name,
        "tags": tags,
        "tracing": False,
    }
    info.update(_vhost_counts(ctx, host))
    return info


@routes.get("/api/vhosts")
async def list_vhosts(api: Api) -> Any:
    return [
        vhost_info(api.ctx, h)
        for name, h in sorted(api.broker.vhosts.items())
        if api.may_read(name)
    ]


@routes.get("/api/vhosts/{vhost}", rule=administrator)
async def show_vhost(api: Api) -> Any:
    return vhost_info(api.ctx, api.vhost())


@routes.add("/api/vhosts/{vhost}", ["PUT"], rule=administrator)
async def put_vhost(api: Api) -> Any:
    name = api.param("vhost")
    body = await api.body()
    existed = name in api.broker.vhosts
    api.broker.add_vhost(name)
    if not existed:
        # As RabbitMQ's API: whoever creates a vhost gets full permissions on it.
        full = {"configure": users.FULL_ACCESS, "write": users.FULL_ACCESS,
                "read": users.FULL_ACCESS}  # fmt: skip
        users.set_permission(api.broker, api.user, name, full)
    meta: dict[str, Any] = {}
    if isinstance(body.get("description"), str):
        meta["description"] = body["description"]
    tags = body.get("tags")
    if isinstance(tags, str):
        meta["tags"] = [t for t in tags.split(",") if t]
    elif isinstance(tags, list):
        meta["tags"] = [str(t) for t in tags]
    if meta:
        api.ctx.vhost_meta[name] = meta
    api.commit()
    return None if existed else CREATED


@routes.add("/api/vhosts/{vhost}", ["DELETE"], rule=administrator)
async def delete_vhost(api: Api) -> Any:
    host = api.vhost(check_access=False)
    api.broker.delete_vhost(host.name)
    api.ctx.vhost_meta.pop(host.name, None)
    api.commit()
    return None


@routes.get("/api/vhosts/{vhost}/permissions", rule=administrator)
async def vhost_permissions(api: Api) -> Any:
    host = api.vhost()
    return [p for p in users.permissions(api.broker) if p["vhost"] == host.name]


# ------------------------------------------------------------------- users


@routes.get("/api/whoami")
async def whoami(api: Api) -> Any:
    return {"name": api.user, "tags": users.tags(api.broker, api.user)}


@routes.get("/api/users", rule=administrator)
async def list_users(api: Api) -> Any:
    return [users.user_info(api.broker, n) for n in users.names(api.broker)]


@routes.get("/api/users/{user}", rule=administrator)
async def show_user(api: Api) -> Any:
    name = api.param("user")
    if not users.exists(api.broker, name):
        raise not_found()
    return users.user_info(api.broker, name)


@routes.add("/api/users/{user}", ["PUT"], rule=administrator)
async def put_user(api: Api) -> Any:
    name = api.param("user")
    body = await api.body()
    password, hashed, tags = body.get("password"), body.get("password_hash"), body.get("tags")
    if isinstance(tags, str):
        tags = [t for t in tags.split(",") if t]
    if password is None and hashed is None and not users.exists(api.broker, name):
        raise bad_request("password or password_hash must be set")
    try:
        created = users.put_user(
            api.broker,
            name,
            password=password if isinstance(password, str) else None,
            hashed=hashed if isinstance(hashed, str) else None,
            algorithm=str(body.get("hashing_algorithm") or users.HASHING_ALGORITHM),
            user_tags=[str(t) for t in tags] if isinstance(tags, list) else None,
        )
    except users.UserError as exc:
        raise bad_request(str(exc)) from None
    api.commit()
    return CREATED if created else None


@routes.add("/api/users/{user}", ["DELETE"], rule=administrator)
async def delete_user(api: Api) -> Any:
    name = api.param("user")
    if not users.delete_user(api.broker, name):
        raise not_found()
    api.commit()
    return None


@routes.get("/api/users/{user}/permissions", rule=administrator)
async def user_permissions(api: Api) -> Any:
    name = api.param("user")
    if not users.exists(api.broker, name):
        raise not_found()
    return [p for p in users.permissions(api.broker) if p["user"] == name]


@routes.get("/api/permissions", rule=administrator)
async def list_permissions(api: Api) -> Any:
    return users.permissions(api.broker)


@routes.get("/api/permissions/{vhost}/{user}", rule=administrator)
async def show_permission(api: Api) -> Any:
    host = api.vhost()
    name = api.param("user")
    for permission in users.permissions(api.broker):
        if permission["vhost"] == host.name and permission["user"] == name:
            return permission
    raise not_found()


@routes.add("/api/permissions/{vhost}/{user}", ["PUT"], rule=administrator)
async def put_permission(api: Api) -> Any:
    host = api.vhost()
    name = api.param("user")
    if not users.exists(api.broker, name):
        raise bad_request("no_such_user")
    body = await api.body()
    existed = any(
        p["vhost"] == host.name and p["user"] == name for p in users.permissions(api.broker)
    )
    try:
        users.set_permission(api.broker, name, host.name, body)
    except users.UserError as exc:
        raise bad_request(str(exc)) from None
    api.commit()
    return None if existed else CREATED


@routes.add("/api/permissions/{vhost}/{user}", ["DELETE"], rule=administrator)
async def delete_permission(api: Api) -> Any:
    host = api.vhost()
    name = api.param("user")
    if not users.exists(api.broker, name):
        raise not_found()
    users.clear_permission(api.broker, name, host.name)
    api.commit()
    return None


# ------------------------------------------------- policies and parameters


@routes.get("/api/policies")
async def policies(api: Api) -> Any:
    return []


@routes.get("/api/policies/{vhost}")
async def vhost_policies(api: Api) -> Any:
    api.vhost()
    return []


@routes.get("/api/parameters", rule=policymaker)
async def parameters(api: Api) -> Any:
    return []


@routes.get("/api/global-parameters", rule=policymaker)
async def global_parameters(api: Api) -> Any:
    return []


# ------------------------------------------------------------- definitions


@routes.get("/api/definitions", rule=administrator)
async def export_all(api: Api) -> Any:
    return definitions.export_all(api.ctx)


@routes.get("/api/definitions/{vhost}", rule=administrator)
async def export_vhost(api: Api) -> Any:
    return definitions.export_vhost(api.vhost(), api.ctx.broker.behaviour.full_version)


async def _import(api: Api, vhost: str | None) -> Any:
    data = parse_json(await api.raw_body(json_only=True), "failed_to_parse_json")
    try:
        await definitions.import_definitions_fairly(api.ctx, data, vhost)
    except definitions.DefinitionsError as exc:
        raise ApiError(400, "bad_request", exc.reason) from None
    finally:
        api.commit()
    return None


@routes.add("/api/definitions", ["POST"], rule=administrator)
async def import_all(api: Api) -> Any:
    return await _import(api, None)


@routes.add("/api/definitions/{vhost}", ["POST"], rule=administrator)
async def import_vhost(api: Api) -> Any:
    return await _import(api, api.vhost().name)
