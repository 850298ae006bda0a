"""Prometheus text exposition with rabbitmq_prometheus's metric names.

Aggregated, as RabbitMQ 3.10 returns by default on /metrics (no per-queue
labels): dashboards and alerts written for RabbitMQ's plugin read the same
names here.  Counters of messages come from per-connection and per-channel
integers the hot path bumps anyway (see broker/stats.py).
"""

from __future__ import annotations

from .. import __version__
from ..broker import alarms
from .context import ManagementContext
from .totals import snapshot

PROTOCOL = 'protocol="amqp091"'
CLASSIC = 'protocol="amqp091",queue_type="rabbit_classic_queue"'


def render(ctx: ManagementContext) -> str:
    snap = snapshot(ctx.broker)
    raised = ctx.broker.alarms.raised
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, value: float, labels: str = "") -> None:
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")

    gauges = (
        ("rabbitmq_connections", "Connections currently open", snap.connections),
        ("rabbitmq_channels", "Channels currently open", snap.channels),
        ("rabbitmq_consumers", "Consumers currently connected", snap.consumers),
        ("rabbitmq_queues", "Queues available", snap.queues),
        ("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers",
         snap.ready),
        ("rabbitmq_queue_messages_unacked",
         "Messages delivered to consumers but not yet acknowledged", snap.unacked),
        ("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth",
         snap.ready + snap.unacked),
        ("rabbitmq_queue_consumers", "Consumers on a queue", snap.consumers),
    )  # fmt: skip
    for name, help_text, value in gauges:
        metric(name, "gauge", help_text, value)
    counters = (
        ("rabbitmq_connections_opened_total", "Total number of connections opened",
         snap.connections_opened),
        ("rabbitmq_connections_closed_total",
         "Total number of connections closed or terminated", snap.connections_closed),
        ("rabbitmq_channels_opened_total", "Total number of channels opened",
         snap.channels_opened),
        ("rabbitmq_channels_closed_total", "Total number of channels closed",
         snap.channels_closed),
        ("rabbitmq_channel_messages_published_total",
         "Total number of messages published into an exchange on a channel", snap.published),
        ("rabbitmq_channel_messages_delivered_total",
         "Total number of messages delivered to consumers in automatic acknowledgement mode",
         snap.delivered),
        ("rabbitmq_channel_messages_acked_total",
         "Total number of messages acknowledged by consumers", snap.acked),
    )  # fmt: skip
    for name, help_text, value in counters:
        metric(name, "counter", help_text, value)
    metric(
        "rabbitmq_global_messages_received_total",
        "counter",
        "Total number of messages received from publishers",
        snap.published,
        PROTOCOL,
    )
    metric(
        "rabbitmq_global_messages_delivered_total",
        "counter",
        "Total number of messages delivered to consumers",
        snap.delivered,
        CLASSIC,
    )
    metric(
        "rabbitmq_global_messages_acknowledged_total",
        "counter",
        "Total number of messages acknowledged by consumers",
        snap.acked,
        CLASSIC,
    )
    metric(
        "rabbitmq_global_consumers",
        "gauge",
        "Current number of consumers",
        snap.consumers,
        PROTOCOL,
    )
    metric(
        "rabbitmq_alarms_memory_used_watermark",
        "gauge",
        "is 1 if VM memory watermark alarm is in effect",
        1 if alarms.MEMORY in raised else 0,
    )
    metric(
        "rabbitmq_alarms_free_disk_space_watermark",
        "gauge",
        "is 1 if free disk space watermark alarm is in effect",
        1 if alarms.DISK in raised else 0,
    )
    metric(
        "rabbitmq_process_start_time_seconds",
        "gauge",
        "Process start time seconds",
        int(ctx.started_at),
    )
    metric("rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info", 1,
           f'rabbitmq_node="{ctx.node}",rabbitmq_cluster="{ctx.node}"')  # fmt: skip
    version = ctx.broker.behaviour.full_version
    metric("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info", 1,
           f'rabbitmq_version="{version}",amqpbroker_version="{__version__}"')  # fmt: skip
    return "\n".join(lines) + "\n"
