"""/api/bindings: list, and create / show / delete one binding by its properties key.

``/e/{source}/q/{destination}`` binds to a queue, ``/e/{source}/e/{destination}``
to an exchange.  A binding is named in URLs by its ``properties_key``
(format.properties_key), which the list responses carry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pamqp import commands
from starlette.responses import Response

from ..protocol.method_codec import make_method
from .api import Api, RouteTable, bad_request, not_found
from .format import iter_bindings, properties_key

routes = RouteTable()

KINDS = {"q": "queue", "e": "exchange"}


@routes.get("/api/bindings")
async def list_all(api: Api) -> Any:
    return [
        b
        for name, host in sorted(api.broker.vhosts.items())
        if api.may_read(name)
        for b in iter_bindings(host)
    ]


@routes.get("/api/bindings/{vhost}")
async def list_vhost(api: Api) -> Any:
    return list(iter_bindings(api.vhost()))


def _between(api: Api, kind: str) -> list[dict[str, Any]]:
    host = api.vhost()
    source = api.param("source")
    destination = api.param("destination")
    # RabbitMQ answers 404 when either end does not exist.
    if source not in host.exchanges:
        raise not_found()
    if (kind == "queue" and destination not in host.queues) or (
        kind == "exchange" and destination not in host.exchanges
    ):
        raise not_found()
    return [
        b
        for b in iter_bindings(host)
        if b["source"] == source
        and b["destination"] == destination
        and b["destination_type"] == kind
    ]


def _one(api: Api, kind: str) -> dict[str, Any]:
    wanted = api.param("props")
    for binding in _between(api, kind):
        if binding["properties_key"] == wanted:
            return binding
    raise not_found()


async def _create(api: Api, kind: str) -> Any:
    host = api.vhost()
    source = api.param("source")
    destination = api.param("destination")
    body = await api.body()
    key = body.get("routing_key", "")
    arguments = body.get("arguments") or {}
    if not isinstance(key, str) or not isinstance(arguments, dict):
        raise bad_request("routing_key must be a string and arguments an object")
    api.authorize(host, _binding_method(kind, True, source, destination, key, arguments))
    if kind == "queue":
        host.bind_queue(host.get_queue(destination, None), source, key, arguments)
    else:
        host.bind_exchange(destination, source, key, arguments)
    api.commit()
    # Location: relative to the collection, as RabbitMQ sends it.
    location = f"{quote(destination, safe='')}/{properties_key(key, arguments)}"
    return Response(status_code=201, headers={"location": location})


async def _delete(api: Api, kind: str) -> Any:
    host = api.vhost()
    binding = _one(api, kind)
    args = _raw_arguments(api, binding)
    api.authorize(
        host,
        _binding_method(
            kind, False, binding["source"], binding["destination"], binding["routing_key"], args
        ),
    )
    if kind == "queue":
        queue = host.queues.get(binding["destination"])
        host.unbind_queue(queue, binding["source"], binding["routing_key"], args)
    else:
        host.unbind_exchange(
            binding["destination"], binding["source"], binding["routing_key"], args
        )
    api.commit()
    return None


def _binding_method(
    kind: str, bind: bool, source: str, destination: str, key: str, args: dict[str, Any]
) -> Any:
    """The AMQP method whose permission checks a binding change takes."""
    if kind == "queue":
        cls: Any = commands.Queue.Bind if bind else commands.Queue.Unbind
        return make_method(cls, queue=destination, exchange=source, routing_key=key, arguments=args)
    cls = commands.Exchange.Bind if bind else commands.Exchange.Unbind
    return make_method(cls, destination=destination, source=source, routing_key=key, arguments=args)


def _raw_arguments(api: Api, binding: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the binding holds them (typed values), for an exact unbind."""
    exchange = api.vhost().exchanges[binding["source"]]
    for destination, key, args in exchange.bindings():
        if (
            getattr(destination, "name", None) == binding["destination"]
            and key == binding["routing_key"]
            and properties_key(key, args) == binding["properties_key"]
        ):
            return args
    raise not_found()


def _register(letter: str, kind: str) -> None:
    base = f"/api/bindings/{{vhost}}/e/{{source}}/{letter}/{{destination}}"

    async def between(api: Api) -> Any:
        return _between(api, kind)

    async def create(api: Api) -> Any:
        return await _create(api, kind)

    async def show(api: Api) -> Any:
        return _one(api, kind)

    async def delete(api: Api) -> Any:
        return await _delete(api, kind)

    routes.add(base, ["GET"])(between)
    routes.add(base, ["POST"])(create)
    routes.add(base + "/{props}", ["GET"])(show)
    routes.add(base + "/{props}", ["DELETE"])(delete)


for _letter, _kind in KINDS.items():
    _register(_letter, _kind)
