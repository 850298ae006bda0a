"""/api/queues: list, declare, delete, purge, get messages, the queue's bindings."""

from __future__ import annotations

from typing import Any

from pamqp import commands

from ..broker.queue import Queue
from ..broker.session import client_sessions
from ..protocol.method_codec import make_method
from . import messages
from .api import CREATED, Api, RouteTable, bad_request, flag, not_found
from .format import iter_bindings, queue_info, unacked_by_queue

routes = RouteTable()


def _queue(api: Api) -> Queue:
    queue = api.vhost().queues.get(api.param("name"))
    if queue is None:
        raise not_found()
    return queue


def _list(api: Api, queues: list[Queue]) -> list[dict[str, Any]]:
    unacked = unacked_by_queue(client_sessions(api.broker))
    return [queue_info(api.ctx, q, unacked) for q in sorted(queues, key=_order)]


def _order(queue: Queue) -> tuple[str, str]:
    return (queue.vhost, queue.name)


@routes.get("/api/queues")
async def list_all(api: Api) -> Any:
    hosts = [v for v in api.broker.vhosts.values() if api.may_read(v.name)]
    return _list(api, [q for v in hosts for q in v.queues.values()])


@routes.get("/api/queues/{vhost}")
async def list_vhost(api: Api) -> Any:
    return _list(api, list(api.vhost().queues.values()))


@routes.get("/api/queues/{vhost}/{name}")
async def show(api: Api) -> Any:
    queue = _queue(api)
    return queue_info(api.ctx, queue, unacked_by_queue(client_sessions(api.broker)), detail=True)


@routes.add("/api/queues/{vhost}/{name}", ["PUT"])
async def declare(api: Api) -> Any:
    host = api.vhost()
    body = await api.body()
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise bad_request("arguments must be an object")
    name = api.param("name")
    existed = name in host.queues
    api.authorize(host, make_method(commands.Queue.Declare, queue=name, arguments=arguments))
    host.declare_queue(
        name,
        owner=None,
        durable=flag(body, "durable", True),
        auto_delete=flag(body, "auto_delete", False),
        arguments=arguments,
    )
    api.commit()
    return None if existed else CREATED


@routes.add("/api/queues/{vhost}/{name}", ["DELETE"])
async def delete(api: Api) -> Any:
    host = api.vhost()
    queue = _queue(api)
    api.authorize(host, make_method(commands.Queue.Delete, queue=queue.name))
    host.delete_queue(
        queue,
        if_unused=api.query("if-unused") == "true",
        if_empty=api.query("if-empty") == "true",
    )
    api.commit()
    return None


@routes.add("/api/queues/{vhost}/{name}/contents", ["DELETE"])
async def purge(api: Api) -> Any:
    queue = _queue(api)
    api.authorize(api.vhost(), make_method(commands.Queue.Purge, queue=queue.name))
    queue.purge()
    api.commit()
    return None


@routes.add("/api/queues/{vhost}/{name}/get", ["POST"])
async def get(api: Api) -> Any:
    host = api.vhost()
    queue = _queue(api)
    body = await api.body()
    count = _count(body, "count", 1)
    truncate = _count(body, "truncate", None)
    if count is None:
        raise bad_request("count must be a non-negative integer")
    if "ackmode" not in body:
        raise bad_request("ackmode is required")
    try:
        return messages.get(
            api.ctx,
            host,
            api.user,
            queue.name,
            count=count,
            ackmode=str(body["ackmode"]),
            encoding=str(body.get("encoding", "auto")),
            truncate=truncate,
        )
    except messages.BadMessage as exc:
        raise bad_request(str(exc)) from None


def _count(body: dict[str, Any], key: str, default: int | None) -> int | None:
    """A non-negative integer field; rabbitmqadmin sends them as strings."""
    value = body.get(key, default)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{key} must be a non-negative integer") from None
    if number < 0 or isinstance(value, bool | float):
        raise bad_request(f"{key} must be a non-negative integer")
    return number


@routes.get("/api/queues/{vhost}/{name}/bindings")
async def bindings(api: Api) -> Any:
    host = api.vhost()
    queue = _queue(api)
    return [
        b
        for b in iter_bindings(host)
        if b["destination_type"] == "queue" and b["destination"] == queue.name
    ]
