"""/api/connections, /api/channels, /api/consumers: who is connected, and closing them."""

from __future__ import annotations

import logging
from typing import Any

from ..broker.session import Session, client_sessions
from .api import Api, RouteTable, not_found
from .format import (
    channel_info,
    channel_name,
    connection_info,
    consumer_info,
    iter_channels,
    iter_consumers,
)

log = logging.getLogger("amqpbroker.management")
routes = RouteTable()

# What a client sees when the API closes its connection (RabbitMQ's default
# X-Reason): 320 CONNECTION_FORCED - Closed via management plugin.
DEFAULT_CLOSE_REASON = "Closed via management plugin"


def _sessions(api: Api, vhost: str | None = None) -> list[Session]:
    """Open AMQP connections (past the handshake), oldest first."""
    # Users without monitoring see only their own connections (RabbitMQ's rule).
    found = [
        s
        for s in client_sessions(api.broker)
        if s.vhost is not None
        and (vhost is None or s.vhost.name == vhost)
        and (api.sees_all or s.user == api.user)
    ]
    return sorted(found, key=lambda s: (s.connected_at, s.peer))


def _session(api: Api) -> Session:
    """The connection the path names, if this user may see (or close) it."""
    name = api.param("name")
    found = next((s for s in _everyone(api) if api.ctx.connection_name(s.peer) == name), None)
    api.owner_or(found.user if found is not None else None)
    if found is None:
        raise not_found()
    return found


def _everyone(api: Api) -> list[Session]:
    return [s for s in client_sessions(api.broker) if s.vhost is not None]


@routes.get("/api/connections")
async def list_connections(api: Api) -> Any:
    return [connection_info(api.ctx, s) for s in _sessions(api)]


@routes.get("/api/vhosts/{vhost}/connections")
async def list_vhost_connections(api: Api) -> Any:
    host = api.vhost()
    return [connection_info(api.ctx, s) for s in _sessions(api, host.name)]


@routes.get("/api/connections/{name}")
async def show_connection(api: Api) -> Any:
    return connection_info(api.ctx, _session(api))


@routes.add("/api/connections/{name}", ["DELETE"])
async def close_connection(api: Api) -> Any:
    session = _session(api)
    reason = api.request.headers.get("x-reason") or DEFAULT_CLOSE_REASON
    log.info("connection %s closed by management user '%s': %s", session.peer, api.user, reason)
    session.force_close(reason)
    return None


@routes.get("/api/connections/{name}/channels")
async def connection_channels(api: Api) -> Any:
    session = _session(api)
    return [channel_info(api.ctx, c) for c in session.channels.values()]


@routes.get("/api/channels")
async def list_channels(api: Api) -> Any:
    return [channel_info(api.ctx, c) for c in iter_channels(_sessions(api))]


@routes.get("/api/vhosts/{vhost}/channels")
async def list_vhost_channels(api: Api) -> Any:
    host = api.vhost()
    return [channel_info(api.ctx, c) for c in iter_channels(_sessions(api, host.name))]


@routes.get("/api/channels/{name}")
async def show_channel(api: Api) -> Any:
    name = api.param("name")
    for session in _everyone(api):
        for channel in iter_channels([session]):
            if channel_name(api.ctx, channel) == name:
                api.owner_or(session.user)
                return channel_info(api.ctx, channel)
    api.owner_or(None)
    raise not_found()


@routes.get("/api/consumers")
async def list_consumers(api: Api) -> Any:
    return [consumer_info(api.ctx, c) for c in iter_consumers(_sessions(api))]


@routes.get("/api/consumers/{vhost}")
async def list_vhost_consumers(api: Api) -> Any:
    # RabbitMQ checks no vhost access here: the list is filtered like /api/consumers.
    host = api.vhost(check_access=False)
    return [consumer_info(api.ctx, c) for c in iter_consumers(_sessions(api, host.name))]
