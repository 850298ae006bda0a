"""A virtual host: its exchanges, queues and bindings, and routing between them.

All operations here are synchronous domain operations with RabbitMQ's error
codes and texts; nothing here knows about frames or sockets.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Collection
from typing import Any

from .. import errors
from ..store.base import BindingRecord, ExchangeRecord, Store
from ..versions import DEFAULT_BEHAVIOUR, Behaviour
from .args_equivalence import assert_args_equivalent, assert_flag_equivalent
from .exchanges import EXCHANGE_TYPES, make_exchange
from .exchanges.base import Exchange, freeze
from .exchanges.default import DefaultExchange
from .message import Message
from .queue import Queue
from .queue_arguments import check_new_queue, check_server_named
from .queue_kinds import keep_in_store, make_queue
from .timers import Timers

# Exchanges every vhost has, as RabbitMQ predeclares them: (name, type, internal).
PREDECLARED = (
    ("amq.direct", "direct", False),
    ("amq.fanout", "fanout", False),
    ("amq.topic", "topic", False),
    ("amq.headers", "headers", False),
    ("amq.match", "headers", False),
    ("amq.rabbitmq.trace", "topic", True),
)
# Arguments RabbitMQ compares when an exchange / queue is declared again.
EXCHANGE_EQUIVALENCE_ARGS = ("alternate-exchange",)
QUEUE_EQUIVALENCE_ARGS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
    # Checked by RabbitMQ 3.10 too (seen on a real broker).
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-dead-letter-strategy",
    "x-queue-version",
    "x-quorum-initial-group-size",
    "x-queue-master-locator",
    "x-queue-leader-locator",
)

_EMPTY: tuple[Queue, ...] = ()


def exchange_record(vhost: str, exchange: Exchange) -> ExchangeRecord:
    return ExchangeRecord(
        vhost,
        exchange.name,
        exchange.type_name,
        exchange.durable,
        exchange.auto_delete,
        exchange.internal,
        dict(exchange.arguments),
    )


# RabbitMQ (3.10 and 4.0 alike) says "invalid exchange type" when the name is an atom its Erlang VM
# already knows, else "unknown exchange type" (rabbit_exchange:check_type).  Names
# seen as "invalid" on RabbitMQ 3.10.8; everything else (typos, plugin types such as
# x-delayed-message) reads "unknown".
_KNOWN_ATOMS = frozenset(
    {
        "", "foo", "bar", "test", "match", "none", "true", "error", "ok", "undefined",
        "queue", "exchange", "default", "system", "classic", "quorum", "stream",
    }
)  # fmt: skip


def _type_error(type_name: str) -> str:
    return "invalid" if type_name in _KNOWN_ATOMS else "unknown"


def server_generated_name(prefix: str = "amq.gen-") -> str:
    """``amq.gen-`` plus 22 URL-safe base64 characters, like RabbitMQ's."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode("ascii").rstrip("=")


class VirtualHost:
    def __init__(self, name: str) -> None:
        self.name = name
        self.queues: dict[str, Queue] = {}
        self.exchanges: dict[str, Exchange] = {"": DefaultExchange(self.queues.get)}
        for ex_name, ex_type, internal in PREDECLARED:
            self.exchanges[ex_name] = make_exchange(
                ex_type, ex_name, durable=True, internal=internal
            )
        # Exchange-to-exchange bindings: destination exchange -> source exchanges.
        self.e2e_sources: dict[Exchange, set[Exchange]] = {}
        self.e2e_count = 0
        # Called with each queue / exchange deleted (consumer cancel notifications,
        # store cleanup); set by the broker.
        self.on_queue_deleted: Callable[[Queue], None] | None = None
        # Called as (owner, name, arguments) when a server-named queue has its name,
        # before it is created: RabbitMQ checks configure permission on that name.
        self.on_server_named: Callable[[Any, str, dict[str, Any]], None] | None = None
        # Where durable entities are recorded (None: a transient broker).
        self.store: Store | None = None
        # Asks for a paged queue's next messages to be read from the store (broker.py).
        self.pager: Callable[[Queue], None] | None = None
        # The broker's clock and deadlines (TTLs, x-expires); set by the broker.
        self.timers = Timers()
        # What differs by RabbitMQ release (versions.py); set by the broker.
        self.behaviour: Behaviour = DEFAULT_BEHAVIOUR

    # ------------------------------------------------------------- exchanges

    def _where(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.name}'"

    def get_exchange(self, name: str) -> Exchange:
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise errors.NotFound(f"no {self._where('exchange', name)}")
        return exchange

    def declare_exchange(
        self,
        name: str,
        type_name: str,
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Exchange:
        arguments = arguments or {}
        if name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        existing = self.exchanges.get(name)
        if passive:
            if existing is None:
                raise errors.NotFound(f"no {self._where('exchange', name)}")
            return existing
        if type_name not in EXCHANGE_TYPES:
            # Checked before anything else, even when the exchange exists; 3.10 closes
            # the connection (503), 4.x the channel (406), with the same text.
            raise self.behaviour.unknown_exchange_type_error(
                f"{_type_error(type_name)} exchange type '{type_name}'"
            )
        if existing is None:
            if name.startswith("amq."):
                raise errors.AccessRefused(
                    f"exchange name '{name}' contains reserved prefix 'amq.*'"
                )
            exchange = make_exchange(
                type_name,
                name,
                durable=durable,
                auto_delete=auto_delete,
                internal=internal,
                arguments=arguments,
            )
            self.exchanges[name] = exchange
            if durable and self.store is not None:
                self.store.put_exchange(exchange_record(self.name, exchange))
            return exchange
        where = ("exchange", name, self.name)
        if existing.type_name != type_name:
            raise errors.PreconditionFailed(
                f"inequivalent arg 'type' for {self._where('exchange', name)}: "
                f"received '{type_name}' but current is '{existing.type_name}'"
            )
        assert_flag_equivalent(*where, "durable", durable, existing.durable)
        assert_flag_equivalent(*where, "auto_delete", auto_delete, existing.auto_delete)
        assert_flag_equivalent(*where, "internal", internal, existing.internal)
        assert_args_equivalent(*where, arguments, existing.arguments, EXCHANGE_EQUIVALENCE_ARGS)
        return existing

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        if name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if name.startswith("amq."):
            # Refused whether or not such an exchange exists.
            raise errors.AccessRefused(
                f"deletion of system exchange '{name}' in vhost '{self.name}' not allowed"
            )
        exchange = self.exchanges.get(name)
        if exchange is None:
            # RabbitMQ 3.x: deleting a missing exchange succeeds (idempotent delete).
            return
        if if_unused and exchange.has_bindings():
            raise errors.PreconditionFailed(f"{self._where('exchange', name)} in use")
        self._remove_exchange(exchange)

    def _remove_exchange(self, exchange: Exchange) -> None:
        if self.exchanges.get(exchange.name) is not exchange:
            return
        del self.exchanges[exchange.name]
        if exchange.durable and self.store is not None:
            self.store.delete_exchange(self.name, exchange.name)
        for destination, _key, _args in list(exchange.bindings()):
            if isinstance(destination, Queue):
                destination.bound_from.discard(exchange)
            elif isinstance(destination, Exchange):
                self._forget_e2e(exchange, destination)
        for source in self.e2e_sources.pop(exchange, set()):
            self.e2e_count -= source.unbind_destination(exchange)
            self._maybe_auto_delete(source)

    def _forget_e2e(self, source: Exchange, destination: Exchange) -> None:
        sources = self.e2e_sources.get(destination)
        if sources is not None:
            sources.discard(source)
            if not sources:
                del self.e2e_sources[destination]
        self.e2e_count -= 1

    def _maybe_auto_delete(self, exchange: Exchange) -> None:
        if exchange.auto_delete and not exchange.has_bindings():
            self._remove_exchange(exchange)

    # ---------------------------------------------------------------- queues

    def declare_queue(
        self,
        name: str,
        *,
        owner: Any,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> tuple[Queue, bool]:
        """Returns the queue and whether it was created by this call."""
        arguments = arguments or {}
        # RabbitMQ drops durable for exclusive declares before creating *or comparing*,
        # so an exclusive durable=true redeclare of an exclusive queue is no mismatch.
        durable = durable and not exclusive
        existing = self.queues.get(name) if name else None
        if passive:
            if existing is None:
                raise errors.NotFound(f"no {self._where('queue', name)}")
            self.check_exclusive(existing, owner)
            existing.touch()
            return existing, False
        if existing is None:
            if not name:
                check_server_named(arguments)
                name = server_generated_name()
                if self.on_server_named is not None:
                    self.on_server_named(owner, name, arguments)
            elif name.startswith("amq."):
                raise errors.AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'")
            # Only a new queue's arguments are validated; a redeclare compares them.
            options = check_new_queue(
                name,
                self.name,
                arguments,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                behaviour=self.behaviour,
            )
            queue = make_queue(
                self,
                name,
                options,
                durable=durable,
                exclusive_owner=owner if exclusive else None,
                auto_delete=auto_delete,
                arguments=arguments,
            )
            self.queues[name] = queue
            if queue.durable and self.store is not None:
                store_id = self.store.put_queue(self.name, name, True, auto_delete, arguments)
                keep_in_store(queue, self.store, store_id, self.pager)
            return queue, True
        # Redeclare: exclusivity must match exactly (RabbitMQ's strict check).
        if existing.exclusive_owner is not (owner if exclusive else None):
            raise self._locked(existing)
        where = ("queue", name, self.name)
        assert_flag_equivalent(*where, "durable", durable, existing.durable)
        assert_flag_equivalent(*where, "auto_delete", auto_delete, existing.auto_delete)
        assert_args_equivalent(*where, arguments, existing.arguments, QUEUE_EQUIVALENCE_ARGS)
        existing.touch()
        return existing, False

    def _locked(self, queue: Queue) -> errors.AMQPError:
        return errors.ResourceLocked(
            f"cannot obtain exclusive access to locked {self._where('queue', queue.name)}. "
            "It could be originally declared on another connection or the exclusive "
            "property value does not match that of the original declaration."
        )

    def check_exclusive(self, queue: Queue, owner: Any) -> None:
        if queue.exclusive_owner is not None and queue.exclusive_owner is not owner:
            raise self._locked(queue)

    def get_queue(self, name: str, owner: Any) -> Queue:
        queue = self.queues.get(name)
        if queue is None:
            raise errors.NotFound(f"no {self._where('queue', name)}")
        self.check_exclusive(queue, owner)
        return queue

    def delete_queue(self, queue: Queue, *, if_unused: bool = False, if_empty: bool = False) -> int:
        if if_unused and queue.consumers:
            raise errors.PreconditionFailed(f"{self._where('queue', queue.name)} in use")
        if if_empty and queue.message_count:
            raise errors.PreconditionFailed(f"{self._where('queue', queue.name)} not empty")
        count = queue.message_count
        self.remove_queue(queue)
        return count

    def remove_queue(self, queue: Queue) -> None:
        """Drop a queue and its bindings; consumers are told through the hook."""
        if queue.deleted or self.queues.get(queue.name) is not queue:
            return
        queue.deleted = True
        del self.queues[queue.name]
        if queue.store is not None:
            queue.store.delete_queue(queue.store_id)
        for exchange in list(queue.bound_from):
            exchange.unbind_destination(queue)
            self._maybe_auto_delete(exchange)
        queue.bound_from.clear()
        queue.ready.clear()
        if self.on_queue_deleted is not None:
            self.on_queue_deleted(queue)

    # -------------------------------------------------------------- bindings

    def bind_queue(
        self, queue: Queue, exchange_name: str, routing_key: str, arguments: dict[str, Any]
    ) -> None:
        if exchange_name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        exchange = self.get_exchange(exchange_name)
        exchange.validate_binding(routing_key, arguments)
        created = exchange.bind(queue, routing_key, arguments)
        if created and queue.store is not None and exchange.durable:
            queue.store.put_binding(
                BindingRecord(self.name, exchange.name, "queue", queue.name, routing_key, arguments)
            )
        queue.bound_from.add(exchange)

    def unbind_queue(
        self,
        queue: Queue | None,
        exchange_name: str,
        routing_key: str,
        arguments: dict[str, Any],
        owner: Any = None,
    ) -> None:
        """Remove a binding; ``queue`` None means the named queue does not exist.

        As RabbitMQ 3.10: unbinding what is not bound succeeds silently, even when the
        queue or the exchange does not exist; only an existing binding to another
        connection's exclusive queue is refused (405).
        """
        if exchange_name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        exchange = self.exchanges.get(exchange_name)
        if queue is None or exchange is None:
            return
        if queue.exclusive_owner is not None and queue.exclusive_owner is not owner:
            frozen = freeze(arguments)
            if any(
                dest is queue and key == routing_key and freeze(args) == frozen
                for dest, key, args in exchange.bindings()
            ):
                raise self._locked(queue)
            return
        if exchange.unbind(queue, routing_key, arguments):
            if queue.store is not None and exchange.durable:
                queue.store.delete_binding(
                    BindingRecord(
                        self.name, exchange.name, "queue", queue.name, routing_key, arguments
                    )
                )
            if not any(dest is queue for dest, _k, _a in exchange.bindings()):
                queue.bound_from.discard(exchange)
            self._maybe_auto_delete(exchange)

    def bind_exchange(
        self, destination: str, source: str, routing_key: str, arguments: dict[str, Any]
    ) -> None:
        if "" in (destination, source):
            raise errors.AccessRefused("operation not permitted on the default exchange")
        dest = self.get_exchange(destination)
        src = self.get_exchange(source)
        src.validate_binding(routing_key, arguments)
        if src.bind(dest, routing_key, arguments):
            if self.store is not None and src.durable and dest.durable:
                self.store.put_binding(
                    BindingRecord(
                        self.name, src.name, "exchange", dest.name, routing_key, arguments
                    )
                )
            self.e2e_sources.setdefault(dest, set()).add(src)
            self.e2e_count += 1

    def unbind_exchange(
        self, destination: str, source: str, routing_key: str, arguments: dict[str, Any]
    ) -> None:
        if "" in (destination, source):
            raise errors.AccessRefused("operation not permitted on the default exchange")
        dest = self.exchanges.get(destination)
        src = self.exchanges.get(source)
        if dest is None or src is None:
            return  # RabbitMQ 3.10: unbinding a missing exchange succeeds
        if src.unbind(dest, routing_key, arguments):
            if self.store is not None and src.durable and dest.durable:
                self.store.delete_binding(
                    BindingRecord(
                        self.name, src.name, "exchange", dest.name, routing_key, arguments
                    )
                )
            self.e2e_count -= 1
            if not any(d is dest for d, _k, _a in src.bindings()):
                sources = self.e2e_sources.get(dest)
                if sources is not None:
                    sources.discard(src)
                    if not sources:
                        del self.e2e_sources[dest]
            self._maybe_auto_delete(src)

    # --------------------------------------------------------------- routing

    def route(self, exchange: Exchange, routing_key: str, message: Message) -> Collection[Queue]:
        """The queues a message published to ``exchange`` goes to (no duplicates)."""
        headers = message.headers if exchange.needs_headers or self.e2e_count else None
        if not self.e2e_count:
            # Hot path: no exchange-to-exchange bindings, so destinations are queues.
            found = exchange.route(routing_key, headers)
            if found or "alternate-exchange" not in exchange.arguments:
                return found  # type: ignore[return-value]
        return self._route_graph(exchange, routing_key, headers)

    def _route_graph(
        self, start: Exchange, routing_key: str, headers: dict[str, Any] | None
    ) -> Collection[Queue]:
        queues: set[Queue] = set()
        seen = {start}
        pending = [start]
        # Bounded by the number of exchanges: each is visited at most once, so
        # binding loops (a -> b -> a) terminate.
        while pending:
            exchange = pending.pop()
            found = False
            for dest in exchange.route(routing_key, headers):
                found = True
                if isinstance(dest, Queue):
                    queues.add(dest)
                elif isinstance(dest, Exchange) and dest not in seen:
                    seen.add(dest)
                    pending.append(dest)
            if not found:
                alternate = exchange.arguments.get("alternate-exchange")
                if isinstance(alternate, bytes):
                    alternate = alternate.decode("utf-8", "replace")
                ae = self.exchanges.get(alternate) if isinstance(alternate, str) else None
                if ae is not None and ae not in seen:
                    seen.add(ae)
                    pending.append(ae)
        return queues if queues else _EMPTY
