"""/api/overview, nodes, cluster name, health checks and the aliveness test."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from starlette.responses import JSONResponse

from .. import __version__, errors
from ..broker import alarms
from . import messages, users
from .api import Api, ApiError, RouteTable, bad_request, monitor, not_found
from .context import ERLANG_VERSION, ManagementContext
from .format import details
from .totals import Snapshot, snapshot

routes = RouteTable()

EXCHANGE_TYPES = [
    {"name": name, "description": f"AMQP {name} exchange, as per the AMQP specification",
     "enabled": True}
    for name in ("direct", "fanout", "headers", "topic")
]  # fmt: skip
ALIVENESS_QUEUE = "aliveness-test"


def message_stats(ctx: ManagementContext, snap: Snapshot) -> dict[str, Any]:
    rates = ctx.rates
    stats: dict[str, Any] = {}
    # Deliveries and gets are counted together (a channel's delivery tags), so
    # "deliver" and "deliver_get" carry the same number and the split ones are 0.
    for name, value, rate in (
        ("ack", snap.acked, rates.rate("acked")),
        ("confirm", 0, 0.0),
        ("deliver", snap.delivered, rates.rate("delivered")),
        ("deliver_get", snap.delivered, rates.rate("delivered")),
        ("deliver_no_ack", 0, 0.0),
        ("disk_reads", 0, 0.0),
        ("disk_writes", 0, 0.0),
        ("drop_unroutable", 0, 0.0),
        ("get", 0, 0.0),
        ("get_empty", 0, 0.0),
        ("get_no_ack", 0, 0.0),
        ("publish", snap.published, rates.rate("published")),
        ("redeliver", 0, 0.0),
        ("return_unroutable", 0, 0.0),
    ):
        stats[name] = value
        stats[f"{name}_details"] = details(rate)
    return stats


def _churn(snap: Snapshot) -> dict[str, Any]:
    churn: dict[str, Any] = {}
    for name, value in (
        ("channel_closed", snap.channels_closed),
        ("channel_created", snap.channels_opened),
        ("connection_closed", snap.connections_closed),
        ("connection_created", snap.connections_opened),
        ("queue_created", 0),
        ("queue_declared", 0),
        ("queue_deleted", 0),
    ):
        churn[name] = value
        churn[f"{name}_details"] = details()
    return churn


def _listeners(ctx: ManagementContext) -> list[dict[str, Any]]:
    return [
        {
            "node": ctx.node,
            "protocol": "amqp",
            "ip_address": ctx.amqp_host,
            "port": ctx.amqp_port,
            "socket_opts": {"backlog": 128, "nodelay": True, "exit_on_close": False},
        },
        {
            "node": ctx.node,
            "protocol": "http",
            "ip_address": ctx.http_host,
            "port": ctx.http_port,
            "socket_opts": {"ip": ctx.http_host, "port": ctx.http_port},
        },
    ]


def overview(ctx: ManagementContext) -> dict[str, Any]:
    snap = snapshot(ctx.broker)
    rates = ctx.rates
    version = ctx.broker.behaviour.full_version
    return {
        "management_version": version,
        "rates_mode": "basic",
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400],
            "basic": [600, 3600],
            "detailed": [600],
        },
        "exchange_types": EXCHANGE_TYPES,
        "product_version": version,
        "product_name": "RabbitMQ",
        # Ours beside RabbitMQ's fields (which clients and tools read as RabbitMQ's).
        "amqpbroker_version": __version__,
        "rabbitmq_version": version,
        "cluster_name": ctx.node,
        "erlang_version": ERLANG_VERSION,
        "erlang_full_version": f"amqpbroker {__version__} on Python {platform.python_version()}",
        "release_series_support_status": "supported",
        "disable_stats": False,
        "enable_queue_totals": False,
        "message_stats": message_stats(ctx, snap),
        "churn_rates": _churn(snap),
        "queue_totals": {
            "messages": snap.ready + snap.unacked,
            "messages_details": details(rates.rate("ready") + rates.rate("unacked")),
            "messages_ready": snap.ready,
            "messages_ready_details": details(rates.rate("ready")),
            "messages_unacknowledged": snap.unacked,
            "messages_unacknowledged_details": details(rates.rate("unacked")),
        },
        "object_totals": {
            "channels": snap.channels,
            "connections": snap.connections,
            "consumers": snap.consumers,
            "exchanges": snap.exchanges,
            "queues": snap.queues,
        },
        "statistics_db_event_queue": 0,
        "node": ctx.node,
        "listeners": _listeners(ctx),
        # /metrics is served on the management port, so both contexts share it.
        "contexts": [
            {
                "ssl_opts": [],
                "node": ctx.node,
                "description": description,
                "path": "/",
                "cowboy_opts": "[{sendfile,false}]",
                "ip": ctx.http_host,
                "port": str(ctx.http_port),
                **extra,
            }
            for description, extra in (
                ("RabbitMQ Management", {}),
                ("RabbitMQ Prometheus", {"protocol": "http/prometheus"}),
            )
        ],
    }


@routes.get("/api/overview")
async def get_overview(api: Api) -> Any:
    return overview(api.ctx)


@routes.get("/api/cluster-name")
async def cluster_name(api: Api) -> Any:
    return {"name": api.ctx.node}


@routes.get("/api/extensions")
async def extensions(api: Api) -> Any:
    return []


def _node(ctx: ManagementContext) -> dict[str, Any]:
    raised = ctx.broker.alarms.raised
    return {
        "name": ctx.node,
        "type": "disc",
        "running": True,
        "being_drained": False,
        "mem_alarm": alarms.MEMORY in raised,
        "disk_free_alarm": alarms.DISK in raised,
        "uptime": int((time.time() - ctx.started_at) * 1000),
        "os_pid": str(os.getpid()),
        "processors": os.cpu_count() or 1,
        "rates_mode": "basic",
        "net_ticktime": 60,
        "enabled_plugins": ["rabbitmq_management", "rabbitmq_prometheus"],
        "applications": [],
        "exchange_types": EXCHANGE_TYPES,
        "mem_used": _rss(),
        "mem_limit": 0,
        "mem_alarm_limit": 0,
        "disk_free": 0,
        "disk_free_limit": ctx.broker.settings.disk_free_limit,
        "fd_used": 0,
        "sockets_used": len(ctx.broker.sessions),
        "proc_used": 0,
    }


def _rss() -> int:
    """Resident memory of this process in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@routes.get("/api/nodes", rule=monitor)
async def nodes(api: Api) -> Any:
    return [_node(api.ctx)]


@routes.get("/api/nodes/{node}", rule=monitor)
async def node(api: Api) -> Any:
    if api.param("node") != api.ctx.node:
        raise not_found()
    return _node(api.ctx)


# ------------------------------------------------------------------ health


def _ok(**extra: Any) -> dict[str, Any]:
    return {"status": "ok", **extra}


def _failed(reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "failed", "reason": reason, **extra}, status_code=503)


@routes.get("/api/health/checks/alarms")
async def alarms_check(api: Api) -> Any:
    raised = sorted(api.broker.alarms.raised)
    if raised:
        return _failed(
            "There are alarms in effect in the cluster",
            alarms=[{"node": api.ctx.node, "resource": name} for name in raised],
        )
    return _ok()


@routes.get("/api/health/checks/local-alarms")
async def local_alarms_check(api: Api) -> Any:
    raised = sorted(api.broker.alarms.raised)
    if raised:
        return _failed(
            "There are alarms in effect on the node",
            alarms=[{"node": api.ctx.node, "resource": name} for name in raised],
        )
    return _ok()


@routes.get("/api/health/checks/virtual-hosts")
async def vhosts_check(api: Api) -> Any:
    return _ok()


@routes.get("/api/health/checks/port-listener/{port}")
async def port_check(api: Api) -> Any:
    try:
        port = int(api.param("port"))
    except ValueError:
        raise bad_request("invalid port") from None
    if port in (api.ctx.amqp_port, api.ctx.http_port):
        return _ok(port=port)
    return _failed(f"No active listener on port {port}", port=port, missing=port)


@routes.get("/api/health/checks/protocol-listener/{protocol}")
async def protocol_check(api: Api) -> Any:
    protocol = api.param("protocol")
    if protocol in ("amqp", "amqp091", "amqp0-9-1", "http"):
        return _ok(protocol=protocol)
    return _failed(f"No active listener for protocol {protocol}", missing=protocol)


@routes.get("/api/health/checks/node-is-quorum-critical")
async def quorum_check(api: Api) -> Any:
    return _ok(reason="single node cluster")


@routes.get("/api/health/checks/node-is-mirror-sync-critical")
async def mirror_check(api: Api) -> Any:
    return _ok(reason="single node cluster")


@routes.get("/api/health/checks/certificate-expiration/{within}/{unit}")
async def certificate_check(api: Api) -> Any:
    return _ok()  # no TLS listener, so nothing expires


@routes.get("/api/aliveness-test/{vhost}")
async def aliveness(api: Api) -> Any:
    """As RabbitMQ: declare ``aliveness-test``, publish to it and get it back."""
    host = api.vhost()
    if not users.may_access(api.broker, api.user, host.name):
        # RabbitMQ's test opens a connection as the user, refused without permissions.
        raise ApiError(401, "not_authorised", "Access refused.")
    try:
        host.declare_queue(ALIVENESS_QUEUE, owner=None)
        messages.publish(api.ctx, host, api.user, "", ALIVENESS_QUEUE, b"test_message", {})
        got = messages.get(
            api.ctx,
            host,
            api.user,
            ALIVENESS_QUEUE,
            count=1,
            ackmode="ack_requeue_false",
            encoding="auto",
            truncate=None,
        )
    except errors.AMQPError as exc:
        return _failed(exc.reply_text)
    return _ok() if got else _failed("aliveness test message was not received")
