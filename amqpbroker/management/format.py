"""Broker objects as RabbitMQ 3.10's management API shows them.

Field names and value types follow a real RabbitMQ 3.10 (recorded in
tests/management/fixtures/rabbitmq_3.10_shapes.json).  Fields that describe the
Erlang runtime (garbage_collection, reductions, memory) get plausible constant
values: tools read them, nothing acts on them.  Rates are 0.0 except where the
:class:`~.rates.Rates` sampler has measured them.

Everything here runs on the broker's thread and only reads.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from ..broker.channel import Channel, Consumer
from ..broker.exchanges.base import Exchange
from ..broker.queue import Queue
from ..broker.session import session_of
from .context import ManagementContext

if TYPE_CHECKING:
    from ..broker.session import Session
    from ..broker.vhost import VirtualHost

# Counting a queue's bytes walks its ready list on the broker's thread; past this
# many messages we extrapolate from the head instead, so one API call never stalls
# every client for long.
EXACT_COUNT_LIMIT = 100_000
SAMPLE_SIZE = 1000

GARBAGE_COLLECTION = {
    "fullsweep_after": 65535,
    "max_heap_size": 0,
    "min_bin_vheap_size": 46422,
    "min_heap_size": 233,
    "minor_gcs": 0,
}


def details(rate: float = 0.0) -> dict[str, float]:
    return {"rate": float(rate)}


def counters(**values: int) -> dict[str, Any]:
    """A message_stats object: each count with its ``_details`` rate."""
    stats: dict[str, Any] = {}
    for name, value in values.items():
        stats[name] = value
        stats[f"{name}_details"] = details()
    return stats


def jsonable(value: Any) -> Any:
    """An AMQP field value (typed ints, timestamps, decimals, bytes) as JSON."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime.datetime):
        raw = getattr(value, "raw", None)
        return int(raw) if raw is not None else int(value.timestamp())
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


# ------------------------------------------------------------------ queues


def queue_type(queue: Queue) -> str:
    kind = queue.arguments.get("x-queue-type", "classic")
    if isinstance(kind, bytes):
        kind = kind.decode("utf-8", "replace")
    return kind if isinstance(kind, str) else "classic"


def _ready_stats(queue: Queue) -> tuple[int, int, int]:
    """(bytes, persistent messages, persistent bytes) of the ready messages."""
    ready = queue.ready
    count = len(ready)
    if count > EXACT_COUNT_LIMIT:
        sample = [ready[i] for i in range(SAMPLE_SIZE)]
        scale = count / SAMPLE_SIZE
    else:
        sample, scale = list(ready), 1.0
    size = persistent = persistent_size = 0
    for qm in sample:
        body = len(qm.message.body)
        size += body
        if qm.persisted:
            persistent += 1
            persistent_size += body
    return int(size * scale), int(persistent * scale), int(persistent_size * scale)


def unacked_by_queue(sessions: Iterable[Session]) -> dict[int, tuple[int, int]]:
    """id(queue) -> (unacked messages' bytes, persistent unacked) in one pass."""
    found: dict[int, tuple[int, int]] = {}
    for session in sessions:
        for channel in session.channels.values():
            for queue, qm, _consumer in channel.unacked.values():
                size, persistent = found.get(id(queue), (0, 0))
                found[id(queue)] = (
                    size + len(qm.message.body),
                    persistent + (1 if qm.persisted else 0),
                )
    return found


def queue_info(
    ctx: ManagementContext,
    queue: Queue,
    unacked: dict[int, tuple[int, int]] | None = None,
    *,
    detail: bool = False,
) -> dict[str, Any]:
    ready = queue.message_count
    ready_bytes, persistent, persistent_bytes = _ready_stats(queue)
    unacked_bytes, unacked_persistent = (unacked or {}).get(id(queue), (0, 0))
    consumers = queue.consumers
    exclusive_tag = next((c.tag for c in consumers if c.exclusive), None)
    single_active = bool(queue.arguments.get("x-single-active-consumer"))
    published = max(queue.next_seq - 1, 0)
    info: dict[str, Any] = {
        "arguments": jsonable(queue.arguments),
        "auto_delete": queue.auto_delete,
        "backing_queue_status": {
            "avg_ack_egress_rate": 0.0,
            "avg_ack_ingress_rate": 0.0,
            "avg_egress_rate": 0.0,
            "avg_ingress_rate": 0.0,
            "delta": ["delta", "undefined", 0, 0, "undefined"],
            "len": ready,
            "mode": "default",
            "next_deliver_seq_id": 0,
            "next_seq_id": published,
            "q1": 0,
            "q2": 0,
            "q3": 0,
            "q4": ready,
            "target_ram_count": "infinity",
            "version": 1,
        },
        "consumer_capacity": 1.0 if consumers else 0,
        "consumer_utilisation": 1.0 if consumers else 0,
        "consumers": len(consumers),
        "durable": queue.durable,
        "effective_policy_definition": {},
        "exclusive": queue.exclusive,
        "exclusive_consumer_tag": exclusive_tag,
        "garbage_collection": GARBAGE_COLLECTION,
        "head_message_timestamp": None,
        "memory": 10_000 + ready_bytes + 100 * ready,
        "message_bytes": ready_bytes + unacked_bytes,
        "message_bytes_paged_out": 0,
        "message_bytes_persistent": persistent_bytes,
        "message_bytes_ram": ready_bytes + unacked_bytes,
        "message_bytes_ready": ready_bytes,
        "message_bytes_unacknowledged": unacked_bytes,
        "message_stats": {"publish": published, "publish_details": details()},
        "messages": ready + queue.unacked,
        "messages_details": details(),
        "messages_paged_out": 0,
        "messages_persistent": persistent + unacked_persistent,
        "messages_ram": ready + queue.unacked,
        "messages_ready": ready,
        "messages_ready_details": details(),
        "messages_ready_ram": ready,
        "messages_unacknowledged": queue.unacked,
        "messages_unacknowledged_details": details(),
        "messages_unacknowledged_ram": queue.unacked,
        "name": queue.name,
        "node": ctx.node,
        "operator_policy": None,
        "policy": None,
        "recoverable_slaves": None,
        "reductions": 0,
        "reductions_details": details(),
        "single_active_consumer_tag": consumers[0].tag if single_active and consumers else None,
        "state": "running",
        "type": queue_type(queue),
        "vhost": queue.vhost,
    }
    if detail:
        info["consumer_details"] = [
            consumer_info(ctx, c) for c in consumers if isinstance(c, Consumer)
        ]
        info["deliveries"] = []
        info["incoming"] = []
    return info


def queue_definition(queue: Queue, *, with_vhost: bool = True) -> dict[str, Any]:
    info: dict[str, Any] = {"name": queue.name}
    if with_vhost:
        info["vhost"] = queue.vhost
    info.update(
        durable=queue.durable,
        auto_delete=queue.auto_delete,
        arguments=jsonable(queue.arguments),
    )
    return info


# --------------------------------------------------------------- exchanges


def exchange_info(
    vhost: VirtualHost, exchange: Exchange, *, detail: bool = False
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "arguments": jsonable(exchange.arguments),
        "auto_delete": exchange.auto_delete,
        "durable": exchange.durable,
        "internal": exchange.internal,
        "name": exchange.name,
        "type": exchange.type_name,
        "user_who_performed_action": "rmq-internal"
        if exchange.name == "" or exchange.name.startswith("amq.")
        else "guest",
        "vhost": vhost.name,
    }
    if detail:
        info["incoming"] = []
        info["outgoing"] = []
    return info


def exchange_definition(
    vhost: str, exchange: Exchange, *, with_vhost: bool = True
) -> dict[str, Any]:
    info: dict[str, Any] = {"name": exchange.name}
    if with_vhost:
        info["vhost"] = vhost
    info.update(
        type=exchange.type_name,
        durable=exchange.durable,
        auto_delete=exchange.auto_delete,
        internal=exchange.internal,
        arguments=jsonable(exchange.arguments),
    )
    return info


# ---------------------------------------------------------------- bindings


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """The binding's id in URLs: the quoted routing key, plus ``~`` and a hash of
    the arguments when there are any (RabbitMQ hashes the Erlang term; clients
    treat the value as opaque, so a stable hash of the JSON form serves)."""
    if not arguments:
        return "~" if routing_key == "" else _quote(routing_key)
    digest = hashlib.sha256(
        json.dumps(jsonable(arguments), sort_keys=True).encode("utf-8")
    ).digest()[:4]
    return f"{_quote(routing_key)}~{_quote(base64.urlsafe_b64encode(digest).decode().rstrip('='))}"


def _quote(text: str) -> str:
    return quote_plus(text, safe="").replace("~", "%7E")


def binding_info(
    vhost: str, source: str, destination: str, kind: str, key: str, args: dict[str, Any]
) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": kind,
        "routing_key": key,
        "arguments": jsonable(args),
        "properties_key": properties_key(key, args),
    }


def iter_bindings(vhost: VirtualHost, *, implicit: bool = True) -> Iterator[dict[str, Any]]:
    """Every binding of a vhost; ``implicit``: also the default exchange's one per
    queue (RabbitMQ lists them in /api/bindings, not in definitions)."""
    if implicit:
        for queue in vhost.queues.values():
            yield binding_info(vhost.name, "", queue.name, "queue", queue.name, {})
    for exchange in list(vhost.exchanges.values()):
        if exchange.name == "":
            continue
        for destination, key, args in exchange.bindings():
            if isinstance(destination, Queue):
                yield binding_info(vhost.name, exchange.name, destination.name, "queue", key, args)
            elif isinstance(destination, Exchange):
                yield binding_info(
                    vhost.name, exchange.name, destination.name, "exchange", key, args
                )


# ------------------------------------------------------------- connections


def _peer(session: Session) -> tuple[str, int]:
    host, _, port = session.peer.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        return "127.0.0.1", 0


def connection_info(ctx: ManagementContext, session: Session) -> dict[str, Any]:
    proto = session.proto
    peer_host, peer_port = _peer(session)
    props = jsonable(proto.client_properties)
    name = props.get("connection_name") if isinstance(props, dict) else None
    info: dict[str, Any] = {
        "auth_mechanism": getattr(proto, "mechanism", "PLAIN"),
        "channel_max": proto.channel_max,
        "channels": len(session.channels),
        "client_properties": props,
        "connected_at": int(session.connected_at * 1000),
        "frame_max": proto.frame_max,
        "garbage_collection": GARBAGE_COLLECTION,
        "host": ctx.amqp_host,
        "name": ctx.connection_name(session.peer),
        "node": ctx.node,
        "peer_cert_issuer": None,
        "peer_cert_subject": None,
        "peer_cert_validity": None,
        "peer_host": peer_host,
        "peer_port": peer_port,
        "port": ctx.amqp_port,
        "protocol": "AMQP 0-9-1",
        "recv_cnt": 0,
        "recv_oct": session.recv_oct,
        "recv_oct_details": details(),
        "reductions": 0,
        "reductions_details": details(),
        "send_cnt": 0,
        "send_oct": session.send_oct,
        "send_oct_details": details(),
        "send_pend": 0,
        "ssl": False,
        "ssl_cipher": None,
        "ssl_hash": None,
        "ssl_key_exchange": None,
        "ssl_protocol": None,
        "state": "blocked" if session.told_blocked else "running",
        "timeout": proto.heartbeat,
        "type": "network",
        "user": session.user or "",
        "user_who_performed_action": session.user or "",
        "vhost": session.vhost.name if session.vhost is not None else "",
    }
    if isinstance(name, str):
        info["user_provided_name"] = name
    return info


def channel_name(ctx: ManagementContext, channel: Channel) -> str:
    return f"{ctx.connection_name(session_of(channel).peer)} ({channel.number})"


def channel_info(ctx: ManagementContext, channel: Channel) -> dict[str, Any]:
    session = session_of(channel)
    peer_host, peer_port = _peer(session)
    unconfirmed = channel.publish_seq - channel.acked_upto if channel.confirm else 0
    return {
        "acks_uncommitted": 0,
        "confirm": channel.confirm,
        "connection_details": {
            "name": ctx.connection_name(session.peer),
            "peer_host": peer_host,
            "peer_port": peer_port,
        },
        "consumer_count": len(channel.consumers),
        "garbage_collection": GARBAGE_COLLECTION,
        "global_prefetch_count": channel.global_prefetch,
        "message_stats": counters(
            ack=channel.acked,
            confirm=channel.acked_upto if channel.confirm else 0,
            deliver_get=channel.next_tag - 1,
            drop_unroutable=0,
            publish=channel.published,
            return_unroutable=0,
        ),
        "messages_unacknowledged": len(channel.unacked),
        "messages_uncommitted": len(channel.tx) if channel.tx is not None else 0,
        "messages_unconfirmed": max(unconfirmed, 0),
        "name": channel_name(ctx, channel),
        "node": ctx.node,
        "number": channel.number,
        "pending_raft_commands": 0,
        "prefetch_count": channel.consumer_prefetch,
        "reductions": 0,
        "reductions_details": details(),
        "state": "running",
        "transactional": channel.tx is not None,
        "user": session.user or "",
        "user_who_performed_action": session.user or "",
        "vhost": session.vhost.name if session.vhost is not None else "",
    }


def consumer_info(ctx: ManagementContext, consumer: Consumer) -> dict[str, Any]:
    channel = consumer.channel
    session = session_of(channel)
    peer_host, peer_port = _peer(session)
    return {
        "arguments": jsonable(consumer.arguments),
        "ack_required": not consumer.no_ack,
        "active": True,
        "activity_status": "up",
        "channel_details": {
            "connection_name": ctx.connection_name(session.peer),
            "name": channel_name(ctx, channel),
            "node": ctx.node,
            "number": channel.number,
            "peer_host": peer_host,
            "peer_port": peer_port,
            "user": session.user or "",
        },
        "consumer_tag": consumer.tag,
        "exclusive": consumer.exclusive,
        "prefetch_count": consumer.prefetch,
        "queue": {"name": consumer.queue.name, "vhost": consumer.queue.vhost},
    }


def iter_channels(sessions: Iterable[Session]) -> Iterator[Channel]:
    for session in sessions:
        yield from session.channels.values()


def iter_consumers(sessions: Iterable[Session]) -> Iterator[Consumer]:
    for channel in iter_channels(sessions):
        yield from channel.consumers.values()
