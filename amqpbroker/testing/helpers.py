"""Look inside a running embedded broker from a test, without disturbing it.

:class:`BrokerInspector` reads one virtual host of an :class:`amqpbroker.Broker`:
its queues, exchanges and bindings, the messages waiting in a queue (without
consuming them: nothing is delivered, acked or marked redelivered) and every
message published to an exchange since the inspector was created.  The ``wait_for_*``
methods poll until a condition holds and fail with the vhost's whole state when it
does not::

    with amqpbroker.Broker() as broker, BrokerInspector(broker) as inspect:
        ...  # publish with any client
        inspect.wait_for_messages("tasks", 3)
        assert inspect.messages("tasks")[0].body == b"first"

Thread safety: all broker state lives on the broker's trio thread.  Every read
here runs there through :meth:`amqpbroker.Broker.call` and copies what it needs
into frozen snapshot objects, so a snapshot is consistent (taken between two
frames) and may be kept and compared freely by the test thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ..broker.queue import Queue
from ..protocol.properties import PROPERTY_NAMES, decode_properties

if TYPE_CHECKING:
    from ..broker.broker import Broker as BrokerCore
    from ..broker.message import Message
    from ..broker.vhost import VirtualHost
    from ..embed import Broker

T = TypeVar("T")

# How long a wait_for_* call polls before failing; generous for a loaded CI
# machine, yet short enough that a wrong expectation fails quickly.
DEFAULT_TIMEOUT = 5.0
# Polling starts fast (a local round trip takes well under a millisecond) and
# backs off so a long wait does not keep the broker thread busy.
FIRST_POLL_INTERVAL = 0.001
MAX_POLL_INTERVAL = 0.025


class WaitTimeout(AssertionError):
    """A ``wait_for_*`` condition did not hold in time.

    An AssertionError, so pytest reports it as a test failure (not an error); the
    message names the condition and shows the vhost's state when time ran out.
    """


# ------------------------------------------------------------------ snapshots


def _properties(header: bytes) -> dict[str, Any]:
    decoded = decode_properties(header)
    found: dict[str, Any] = {}
    # Present properties, in content-header order, under pamqp's names
    # (``message_type`` is AMQP's ``type``).
    for name in PROPERTY_NAMES:
        value = getattr(decoded, name, None)
        if value is not None and not (name == "cluster_id" and value == ""):
            found[name] = value
    return found


@attrs.frozen
class MessageInfo:
    """A message as it waits in a queue (``redelivered``) or as it was published
    (``queues``: the queues it was routed to, empty when it was unroutable)."""

    exchange: str
    routing_key: str
    body: bytes
    properties: dict[str, Any] = attrs.field(eq=False, repr=False)
    redelivered: bool = False
    queues: tuple[str, ...] = ()

    @property
    def headers(self) -> dict[str, Any]:
        """The ``headers`` property, or an empty dict when the message has none."""
        return self.properties.get("headers") or {}

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@attrs.frozen
class QueueInfo:
    """A queue's counts and declaration at one moment.

    ``messages`` are ready (waiting for a consumer), ``unacked`` delivered but not
    yet settled, ``enqueued`` every message that ever entered the queue (requeues
    not counted again).
    """

    name: str
    messages: int
    unacked: int
    consumers: int
    enqueued: int
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, Any] = attrs.field(eq=False)
    consumer_tags: tuple[str, ...] = ()

    def __str__(self) -> str:
        flags = "".join(
            f" {flag}"
            for flag, on in (
                ("durable", self.durable),
                ("exclusive", self.exclusive),
                ("auto_delete", self.auto_delete),
            )
            if on
        )
        return (
            f"queue {self.name!r}: {self.messages} ready, {self.unacked} unacked, "
            f"{self.consumers} consumers, {self.enqueued} enqueued so far{flags}"
        )


@attrs.frozen
class ExchangeInfo:
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any] = attrs.field(eq=False)


@attrs.frozen
class BindingInfo:
    """One explicit binding (the default exchange's implicit ones are not listed)."""

    source: str
    destination: str
    destination_type: str  # "queue" or "exchange", as in RabbitMQ's list_bindings
    routing_key: str
    arguments: dict[str, Any] = attrs.field(factory=dict)

    def __str__(self) -> str:
        args = f" {self.arguments}" if self.arguments else ""
        return (
            f"{self.source!r} -> {self.destination_type} {self.destination!r} "
            f"key {self.routing_key!r}{args}"
        )


def _queue_info(queue: Queue) -> QueueInfo:
    return QueueInfo(
        name=queue.name,
        messages=queue.message_count,
        unacked=queue.unacked,
        consumers=len(queue.consumers),
        enqueued=queue.next_seq - 1,
        durable=queue.durable,
        exclusive=queue.exclusive,
        auto_delete=queue.auto_delete,
        arguments=dict(queue.arguments),
        consumer_tags=tuple(consumer.tag for consumer in queue.consumers),
    )


# Raw published message, captured on the broker thread (cheap: no decoding there).
_Published = tuple[str, str, bytes, bytes, tuple[str, ...]]


# ------------------------------------------------------------------ inspector


class BrokerInspector:
    """Read-only views of one vhost of an embedded broker, and waits on them.

    Recording of published messages starts when the inspector is created and ends
    at :meth:`close` (or when its ``with`` block exits).

    Error handling: asking about a queue that does not exist raises KeyError naming
    the queues that do; ``wait_for_*`` raise :class:`WaitTimeout` (an
    AssertionError) with the vhost's state; a stopped broker raises RuntimeError.
    A vhost that does not exist when the inspector is created raises KeyError.

    Resource handling: the recorder costs one list append per publish in this
    vhost until :meth:`close`; nothing else is kept or started.
    """

    def __init__(self, broker: Broker, vhost: str = "/") -> None:
        self.broker = broker
        self.vhost = vhost
        self._records: list[_Published] = []
        self._observer: Callable[[VirtualHost, Message, Collection[Queue]], None] | None = None
        # The broker's list the observer is on (the broker may be gone at close()).
        self._observers: list[Callable[[VirtualHost, Message, Collection[Queue]], None]] = []
        self._start_recording()

    # -------------------------------------------------------- lifecycle

    def _core(self) -> BrokerCore:
        core = self.broker.core
        if core is None:
            raise RuntimeError("the broker is not running")
        return core

    def _start_recording(self) -> None:
        core = self._core()
        records = self._records
        name = self.vhost

        def register() -> None:
            watched = core.vhosts.get(name)
            if watched is None:
                raise KeyError(f"no vhost {name!r}; vhosts are {sorted(core.vhosts)}")

            def observe(vhost: VirtualHost, message: Message, queues: Collection[Queue]) -> None:
                if vhost is watched:
                    records.append(
                        (
                            message.exchange,
                            message.routing_key,
                            message.header,
                            message.body,
                            tuple(queue.name for queue in queues),
                        )
                    )

            core.publish_observers.append(observe)
            self._observer = observe
            self._observers = core.publish_observers

        self.broker.call(register)

    def close(self) -> None:
        """Stop recording published messages (idempotent; safe after the broker stopped)."""
        observer, self._observer = self._observer, None
        if observer is None:
            return

        observers = self._observers

        def unregister() -> None:
            if observer in observers:
                observers.remove(observer)

        try:
            self.broker.call(unregister)
        except Exception:
            unregister()  # the broker thread is gone: nothing can race us any more

    def __enter__(self) -> BrokerInspector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BrokerInspector vhost={self.vhost!r} of {self.broker.url_for(self.vhost)}>"

    # -------------------------------------------------------- snapshots

    def _on_broker(self, func: Callable[[VirtualHost], T]) -> T:
        core = self._core()
        name = self.vhost

        def run() -> T:
            vhost = core.vhosts.get(name)
            if vhost is None:
                raise KeyError(f"vhost {name!r} no longer exists")
            return func(vhost)

        return self.broker.call(run)

    def queues(self) -> dict[str, QueueInfo]:
        """Every queue of the vhost, by name, in declaration order."""
        return self._on_broker(
            lambda vhost: {name: _queue_info(queue) for name, queue in vhost.queues.items()}
        )

    def queue(self, name: str) -> QueueInfo:
        """One queue; KeyError (listing the queues there are) when it does not exist."""

        def read(vhost: VirtualHost) -> QueueInfo:
            queue = vhost.queues.get(name)
            if queue is None:
                raise KeyError(
                    f"no queue {name!r} in vhost {self.vhost!r}; queues are {sorted(vhost.queues)}"
                )
            return _queue_info(queue)

        return self._on_broker(read)

    def exchanges(self, *, predeclared: bool = False) -> dict[str, ExchangeInfo]:
        """Declared exchanges by name; ``predeclared=True`` adds ``amq.*`` and ``""``."""

        def read(vhost: VirtualHost) -> dict[str, ExchangeInfo]:
            return {
                name: ExchangeInfo(
                    name=name,
                    type=exchange.type_name,
                    durable=exchange.durable,
                    auto_delete=exchange.auto_delete,
                    internal=exchange.internal,
                    arguments=dict(exchange.arguments),
                )
                for name, exchange in vhost.exchanges.items()
                if predeclared or (name and not name.startswith("amq."))
            }

        return self._on_broker(read)

    def bindings(
        self, *, exchange: str | None = None, queue: str | None = None
    ) -> list[BindingInfo]:
        """Explicit bindings, optionally only those from ``exchange`` / to ``queue``."""

        def read(vhost: VirtualHost) -> list[BindingInfo]:
            found = []
            for source in list(vhost.exchanges.values()):
                if exchange is not None and source.name != exchange:
                    continue
                for destination, routing_key, arguments in source.bindings():
                    is_queue = isinstance(destination, Queue)
                    dest_name: str = destination.name  # type: ignore[attr-defined]
                    if queue is not None and not (is_queue and dest_name == queue):
                        continue
                    found.append(
                        BindingInfo(
                            source=source.name,
                            destination=dest_name,
                            destination_type="queue" if is_queue else "exchange",
                            routing_key=routing_key,
                            arguments=dict(arguments),
                        )
                    )
            return found

        return self._on_broker(read)

    def messages(self, queue: str) -> list[MessageInfo]:
        """The messages ready in ``queue``, head first, left exactly where they are.

        Messages delivered and not yet acked are not listed (see ``unacked`` in
        :meth:`queue`).  KeyError when the queue does not exist.
        """

        def read(vhost: VirtualHost) -> list[tuple[str, str, bytes, bytes, bool]]:
            found = vhost.queues.get(queue)
            if found is None:
                raise KeyError(
                    f"no queue {queue!r} in vhost {self.vhost!r}; queues are {sorted(vhost.queues)}"
                )
            return [
                (
                    qm.message.exchange,
                    qm.message.routing_key,
                    qm.message.header,
                    qm.message.body,
                    qm.redelivered,
                )
                for qm in found.ready
            ]

        return [
            MessageInfo(exchange, key, body, _properties(header), redelivered=redelivered)
            for exchange, key, header, body, redelivered in self._on_broker(read)
        ]

    def published(self, exchange: str | None = None) -> list[MessageInfo]:
        """Messages published in this vhost since the inspector was created, oldest
        first; only those published to ``exchange`` when given (``""`` is the default
        exchange).  Unroutable messages are included, with ``queues == ()``.  A message
        published in a transaction appears at tx.commit."""
        records: list[_Published] = self.broker.call(list, self._records)
        return [
            MessageInfo(name, key, body, _properties(header), queues=queues)
            for name, key, header, body, queues in records
            if exchange is None or name == exchange
        ]

    def describe(self) -> str:
        """The vhost's queues (with the head of each), exchanges and bindings, as text."""

        def read(vhost: VirtualHost) -> tuple[list[QueueInfo], list[str], list[bytes]]:
            heads = [
                queue.ready[0].message.body if queue.ready else b""
                for queue in vhost.queues.values()
            ]
            names = [name for name in vhost.exchanges if name and not name.startswith("amq.")]
            return [_queue_info(queue) for queue in vhost.queues.values()], names, heads

        infos, exchange_names, heads = self._on_broker(read)
        lines = [f"vhost {self.vhost!r}:"]
        if not infos:
            lines.append("  no queues")
        for info, head in zip(infos, heads, strict=True):
            suffix = f"; head {head[:60]!r}" if info.messages else ""
            lines.append(f"  {info}{suffix}")
        lines.append(f"  exchanges: {', '.join(map(repr, exchange_names)) or 'none declared'}")
        for binding in self.bindings():
            lines.append(f"  binding {binding}")
        with_records = self.broker.call(len, self._records)
        lines.append(f"  published since the inspector started: {with_records}")
        return "\n".join(lines)

    # ------------------------------------------------------------ waits

    def wait_until(
        self,
        condition: Callable[[], T | None],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        what: str = "the condition",
    ) -> T:
        """Call ``condition()`` until it returns something truthy, and return that.

        ``condition`` runs in the caller's thread; it should read the broker through
        this inspector.  A KeyError from it (a queue not declared yet) counts as
        "not yet".

        Error handling: after ``timeout`` seconds, raises :class:`WaitTimeout` naming
        ``what`` and showing :meth:`describe`.  Other exceptions propagate at once.
        Resource handling: polls from the calling thread; nothing is left running.
        """
        __tracebackhide__ = True  # pytest shows the caller's line, not ours
        deadline = time.monotonic() + timeout
        interval = FIRST_POLL_INTERVAL
        last_error = ""
        while True:
            result: T | None = None
            try:
                result = condition()
            except KeyError as exc:
                last_error = str(exc)
            else:
                last_error = ""
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                detail = f"\nlast lookup failed: {last_error}" if last_error else ""
                raise WaitTimeout(
                    f"timed out after {timeout:g} s waiting for {what}{detail}\n{self.describe()}"
                )
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, MAX_POLL_INTERVAL)

    def wait_for_queue(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> QueueInfo:
        """Wait until queue ``name`` exists; returns its snapshot.  Errors: as
        :meth:`wait_until`."""
        __tracebackhide__ = True  # pytest shows the caller's line, not ours
        return self.wait_until(
            lambda: self.queue(name), timeout=timeout, what=f"queue {name!r} to be declared"
        )

    def wait_for_messages(
        self, queue: str, count: int, *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[MessageInfo]:
        """Wait until exactly ``count`` messages are ready in ``queue``; returns them
        (still in the queue).  Errors: as :meth:`wait_until`."""
        __tracebackhide__ = True  # pytest shows the caller's line, not ours

        def check() -> list[MessageInfo] | None:
            if self.queue(queue).messages != count:
                return None
            found = self.messages(queue)
            return found if len(found) == count else None

        if count == 0:
            self.wait_until(
                lambda: self.queue(queue).messages == 0,
                timeout=timeout,
                what=f"queue {queue!r} to be empty",
            )
            return []
        return self.wait_until(
            check, timeout=timeout, what=f"queue {queue!r} to hold exactly {count} ready messages"
        )

    def wait_for_consumers(
        self, queue: str, count: int = 1, *, timeout: float = DEFAULT_TIMEOUT
    ) -> QueueInfo:
        """Wait until ``queue`` has at least ``count`` consumers (``count=0``: none at
        all).  Errors: as :meth:`wait_until`."""
        __tracebackhide__ = True  # pytest shows the caller's line, not ours

        def check() -> QueueInfo | None:
            info = self.queue(queue)
            done = info.consumers == 0 if count == 0 else info.consumers >= count
            return info if done else None

        what = "no consumers" if count == 0 else f"at least {count} consumer(s)"
        return self.wait_until(check, timeout=timeout, what=f"queue {queue!r} to have {what}")

    def wait_for_acked(
        self, queue: str, count: int = 1, *, timeout: float = DEFAULT_TIMEOUT
    ) -> QueueInfo:
        """Wait until at least ``count`` messages have entered ``queue`` and every one
        of them is settled: none ready, none delivered and unacked.

        "Settled" is what the queue can see: acked, delivered to a no-ack consumer,
        or rejected without requeue (dead-lettered or dropped) all count.  Errors: as
        :meth:`wait_until`.
        """
        __tracebackhide__ = True  # pytest shows the caller's line, not ours

        def check() -> QueueInfo | None:
            info = self.queue(queue)
            done = info.enqueued >= count and not info.messages and not info.unacked
            return info if done else None

        return self.wait_until(
            check,
            timeout=timeout,
            what=f"{count} message(s) in queue {queue!r} to be acked",
        )

    def wait_for_published(
        self, exchange: str, count: int = 1, *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[MessageInfo]:
        """Wait until at least ``count`` messages were published to ``exchange`` since
        the inspector started; returns them all.  Errors: as :meth:`wait_until`."""
        __tracebackhide__ = True  # pytest shows the caller's line, not ours

        def check() -> list[MessageInfo] | None:
            found = self.published(exchange)
            return found if len(found) >= count else None

        return self.wait_until(
            check,
            timeout=timeout,
            what=f"{count} message(s) published to exchange {exchange!r}",
        )


__all__ = [
    "DEFAULT_TIMEOUT",
    "BindingInfo",
    "BrokerInspector",
    "ExchangeInfo",
    "MessageInfo",
    "QueueInfo",
    "WaitTimeout",
]
