"""/api/exchanges: list, declare, delete, publish, the exchange's bindings."""

from __future__ import annotations

from typing import Any

from pamqp import commands

from .. import errors
from ..broker.exchanges.base import Exchange
from ..protocol.method_codec import make_method
from . import messages
from .api import CREATED, Api, ApiError, RouteTable, bad_request, flag, from_amqp, not_found
from .format import exchange_info, iter_bindings

routes = RouteTable()

# The default exchange has no name; URLs call it amq.default.
DEFAULT_ALIAS = "amq.default"


def _name(api: Api) -> str:
    name = api.param("name")
    return "" if name == DEFAULT_ALIAS else name


def _exchange(api: Api) -> Exchange:
    exchange = api.vhost().exchanges.get(_name(api))
    if exchange is None:
        raise not_found()
    return exchange


@routes.get("/api/exchanges")
async def list_all(api: Api) -> Any:
    return [
        exchange_info(host, e)
        for name, host in sorted(api.broker.vhosts.items())
        if api.may_read(name)
        for e in sorted(host.exchanges.values(), key=lambda e: e.name)
    ]


@routes.get("/api/exchanges/{vhost}")
async def list_vhost(api: Api) -> Any:
    host = api.vhost()
    return [exchange_info(host, e) for e in sorted(host.exchanges.values(), key=lambda e: e.name)]


@routes.get("/api/exchanges/{vhost}/{name}")
async def show(api: Api) -> Any:
    return exchange_info(api.vhost(), _exchange(api), detail=True)


@routes.add("/api/exchanges/{vhost}/{name}", ["PUT"])
async def declare(api: Api) -> Any:
    host = api.vhost()
    body = await api.body()
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise bad_request("arguments must be an object")
    name = _name(api)
    existed = name in host.exchanges
    kind = str(body.get("type", ""))
    declare_method = make_method(
        commands.Exchange.Declare, exchange=name, exchange_type=kind, arguments=arguments
    )
    api.authorize(host, declare_method)
    host.declare_exchange(
        name,
        kind,
        durable=flag(body, "durable", True),
        auto_delete=flag(body, "auto_delete", False),
        internal=flag(body, "internal", False),
        arguments=arguments,
    )
    api.commit()
    return None if existed else CREATED


@routes.add("/api/exchanges/{vhost}/{name}", ["DELETE"])
async def delete(api: Api) -> Any:
    host = api.vhost()
    exchange = _exchange(api)
    api.authorize(host, make_method(commands.Exchange.Delete, exchange=exchange.name))
    host.delete_exchange(exchange.name, if_unused=api.query("if-unused") == "true")
    api.commit()
    return None


@routes.add("/api/exchanges/{vhost}/{name}/publish", ["POST"])
async def publish(api: Api) -> Any:
    host = api.vhost()
    name = _name(api)
    body = await api.body()
    for key in ("routing_key", "payload", "payload_encoding"):
        if key not in body:
            raise bad_request(f"{key} missing")
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise bad_request("properties must be an object")
    try:
        payload = messages.decode_payload(str(body["payload"]), str(body["payload_encoding"]))
        routed = messages.publish(
            api.ctx, host, api.user, name, str(body["routing_key"]), payload, properties
        )
    except messages.BadMessage as exc:
        raise bad_request(str(exc)) from None
    except errors.AMQPError as exc:
        if exc.reply_code == errors.ACCESS_REFUSED:
            raise from_amqp(exc) from None
        # RabbitMQ reports the channel error its internal publish got, code included.
        raise ApiError(400, "bad_request", f"{exc.reply_code} {exc.reply_text}") from None
    return {"routed": routed}


@routes.get("/api/exchanges/{vhost}/{name}/bindings/source")
async def bindings_source(api: Api) -> Any:
    host = api.vhost()
    exchange = _exchange(api)
    return [b for b in iter_bindings(host) if b["source"] == exchange.name]


@routes.get("/api/exchanges/{vhost}/{name}/bindings/destination")
async def bindings_destination(api: Api) -> Any:
    host = api.vhost()
    exchange = _exchange(api)
    return [
        b
        for b in iter_bindings(host, implicit=False)
        if b["destination_type"] == "exchange" and b["destination"] == exchange.name
    ]
