"""RabbitMQ definitions: export the broker's topology as RabbitMQ's JSON, import one.

Used by ``GET/POST /api/definitions[/{vhost}]`` and by ``--load-definitions`` at
start.  The JSON is RabbitMQ's (rabbit_version, users, vhosts, permissions,
topic_permissions, parameters, global_parameters, policies, queues, exchanges,
bindings), so a file exported from RabbitMQ loads here and the other way round.

What the broker has no model for is skipped with a warning (policies, runtime
parameters, topic permissions, users known only by a hash where the broker
keeps plain passwords).

Error handling: :class:`DefinitionsError` for a definition that cannot be applied
(unknown vhost, a queue redeclared with other properties...).  Import is not
transactional (neither is RabbitMQ's): what came before the failing item stays.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import trio

from .. import errors
from ..broker.vhost import VirtualHost
from ..server.server import TIME_SLICE_S
from . import users
from .context import ManagementContext
from .format import exchange_definition, iter_bindings, queue_definition

log = logging.getLogger("amqpbroker.management")

# Sections we read; anything else in a file is ignored, as RabbitMQ does.
SKIPPED_WITH_WARNING = {
    "policies": "policy",
    "parameters": "runtime parameter",
    "topic_permissions": "topic permission",
}


class DefinitionsError(Exception):
    """A definition cannot be applied; ``reason`` is what the API reports."""

    def __init__(self, reason: Any) -> None:
        super().__init__(str(reason))
        self.reason = reason


# ----------------------------------------------------------------- export


def _vhost_items(vhost: VirtualHost, with_vhost: bool) -> dict[str, list[dict[str, Any]]]:
    queues = [
        queue_definition(q, with_vhost=with_vhost) for q in vhost.queues.values() if not q.exclusive
    ]
    exchanges = [
        exchange_definition(vhost.name, e, with_vhost=with_vhost)
        for e in vhost.exchanges.values()
        if e.name and not e.name.startswith("amq.")
    ]
    bindings = []
    for binding in iter_bindings(vhost, implicit=False):
        binding.pop("properties_key")
        if not with_vhost:
            binding.pop("vhost")
        bindings.append(binding)
    return {"queues": queues, "exchanges": exchanges, "bindings": bindings}


def export_all(ctx: ManagementContext) -> dict[str, Any]:
    broker = ctx.broker
    version = broker.behaviour.full_version
    result: dict[str, Any] = {
        "rabbit_version": version,
        "rabbitmq_version": version,
        "product_name": "RabbitMQ",
        "product_version": version,
        "users": [users.user_info(broker, n) for n in users.names(broker)],
        "vhosts": [{"name": name} for name in sorted(broker.vhosts)],
        "permissions": users.permissions(broker),
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    for name in sorted(broker.vhosts):
        for key, items in _vhost_items(broker.vhosts[name], True).items():
            result[key].extend(items)
    return result


def export_vhost(vhost: VirtualHost, version: str) -> dict[str, Any]:
    """``version``: the RabbitMQ release reported (versions.py's full_version)."""
    result: dict[str, Any] = {"rabbit_version": version, "parameters": [], "policies": []}
    result.update(_vhost_items(vhost, False))
    return result


# ----------------------------------------------------------------- import


def _list(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DefinitionsError(f"'{key}' must be a list of objects")
    return items


def _target(ctx: ManagementContext, item: dict[str, Any], vhost: str | None) -> VirtualHost:
    name = vhost if vhost is not None else item.get("vhost")
    if not isinstance(name, str):
        raise DefinitionsError(f"no vhost given for {item.get('name')!r}")
    found = ctx.broker.vhosts.get(name)
    if found is None:
        raise DefinitionsError(["no_such_vhost", name])
    return found


def _flag(item: dict[str, Any], key: str, default: bool = False) -> bool:
    value = item.get(key, default)
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _args(item: dict[str, Any]) -> dict[str, Any]:
    args = item.get("arguments") or {}
    if not isinstance(args, dict):
        raise DefinitionsError(f"arguments of {item.get('name')!r} must be an object")
    return args


def import_definitions(ctx: ManagementContext, data: Any, vhost: str | None = None) -> list[str]:
    """Apply a definitions document; returns the warnings (also logged).

    ``vhost``: a single-vhost document (items carry no vhost field)."""
    warnings: list[str] = []
    for _ in import_steps(ctx, data, vhost, warnings):
        pass
    return warnings


async def import_definitions_fairly(
    ctx: ManagementContext, data: Any, vhost: str | None = None
) -> list[str]:
    """import_definitions on the event loop without holding it: a document of thousands of
    durable queues (an fsync each) lets other connections run every TIME_SLICE_S."""
    warnings: list[str] = []
    slice_end = time.perf_counter() + TIME_SLICE_S
    for _ in import_steps(ctx, data, vhost, warnings):
        if time.perf_counter() > slice_end:
            await trio.lowlevel.checkpoint()
            slice_end = time.perf_counter() + TIME_SLICE_S
    return warnings


def import_steps(
    ctx: ManagementContext, data: Any, vhost: str | None, warnings: list[str]
) -> Iterator[None]:
    """Apply a definitions document, one entity per step; warnings go to ``warnings``."""
    if not isinstance(data, dict):
        raise DefinitionsError("definitions must be a JSON object")

    def warn(text: str) -> None:
        warnings.append(text)
        log.warning("definitions: %s", text)

    broker = ctx.broker
    if vhost is None:
        for item in _list(data, "users"):
            _import_user(ctx, item, warn)
            yield
        for item in _list(data, "vhosts"):
            name = item.get("name")
            if isinstance(name, str):
                broker.add_vhost(name)
                meta: dict[str, Any] = {k: item[k] for k in ("description", "tags") if k in item}
                if meta:
                    ctx.vhost_meta[name] = meta
            yield
        for item in _list(data, "permissions"):
            _import_permission(ctx, item)
            yield
    for key, what in SKIPPED_WITH_WARNING.items():
        for item in _list(data, key):
            warn(f"{what} {item.get('name', item.get('user', ''))!r} skipped: not supported")
    try:
        for item in _list(data, "queues"):
            _target(ctx, item, vhost).declare_queue(
                str(item.get("name", "")),
                owner=None,
                durable=_flag(item, "durable", True),
                auto_delete=_flag(item, "auto_delete"),
                arguments=_args(item),
            )
            yield
        for item in _list(data, "exchanges"):
            _target(ctx, item, vhost).declare_exchange(
                str(item.get("name", "")),
                str(item.get("type", "direct")),
                durable=_flag(item, "durable", True),
                auto_delete=_flag(item, "auto_delete"),
                internal=_flag(item, "internal"),
                arguments=_args(item),
            )
            yield
        for item in _list(data, "bindings"):
            _bind(_target(ctx, item, vhost), item)
            yield
    except errors.AMQPError as exc:
        raise DefinitionsError(exc.text) from None
    if broker.store is not None and broker.store.has_pending():
        broker.request_commit()


def _bind(host: VirtualHost, item: dict[str, Any]) -> None:
    source = str(item.get("source", ""))
    destination = str(item.get("destination", ""))
    key = str(item.get("routing_key", ""))
    args = _args(item)
    if item.get("destination_type", "queue") == "exchange":
        host.bind_exchange(destination, source, key, args)
    else:
        host.bind_queue(host.get_queue(destination, None), source, key, args)


def _import_user(ctx: ManagementContext, item: dict[str, Any], warn: Callable[[str], None]) -> None:
    name = item.get("name")
    if not isinstance(name, str):
        return
    tags = item.get("tags", [])
    if isinstance(tags, str):
        tags = [t for t in tags.split(",") if t]
    password = item.get("password")
    hashed = item.get("password_hash")
    try:
        users.put_user(
            ctx.broker,
            name,
            password=password if isinstance(password, str) else None,
            hashed=hashed if isinstance(hashed, str) else None,
            algorithm=str(item.get("hashing_algorithm") or users.HASHING_ALGORITHM),
            user_tags=[str(t) for t in tags] if isinstance(tags, list) else None,
        )
    except users.UserError as exc:
        warn(f"{exc}; user skipped")


def _import_permission(ctx: ManagementContext, item: dict[str, Any]) -> None:
    user, vhost = item.get("user"), item.get("vhost")
    if isinstance(user, str) and isinstance(vhost, str) and vhost in ctx.broker.vhosts:
        try:
            users.set_permission(ctx.broker, user, vhost, item)
        except users.UserError as exc:
            raise DefinitionsError(str(exc)) from None


def load_file(ctx: ManagementContext, path: str) -> list[str]:
    """``--load-definitions``: read and apply a file, commit what is durable.

    Raises OSError (unreadable), ValueError (not JSON) or DefinitionsError."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    warnings = import_definitions(ctx, data)
    store = ctx.broker.store
    if store is not None and store.has_pending():
        store.commit()  # before serving: the committer task is not running yet
    return warnings
