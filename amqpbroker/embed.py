"""Run a broker inside this process: for test suites and applications that embed one.

Synchronous code (pika, kombu, Celery) and asyncio code (aio-pika, aiormq) use
:class:`Broker`, which runs its own trio loop on a background thread::

    with amqpbroker.Broker() as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))

Trio code can run the broker in its own nursery instead::

    async with amqpbroker.open_broker() as broker:
        ...

Broker time can be driven by the test: ``Broker(clock=amqpbroker.ManualClock())``
and ``broker.clock.advance(1800)`` runs the TTLs, ``x-expires`` and consumer
timeouts of half an hour at once (heartbeats stay on real time).

Resource handling: the thread (or the nursery task) lives exactly as long as the
``with`` block; leaving it closes client connections with 320 CONNECTION_FORCED
and joins the thread.

Error handling: failing to start (port in use) raises the OSError in the caller.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio

from .broker import faults
from .broker.broker import Broker as BrokerCore
from .broker.timers import ManualClock
from .config import Settings
from .server.server import Server

if TYPE_CHECKING:
    from .management.context import ManagementContext

T = TypeVar("T")

# How long start() waits for the background loop to accept connections.
START_TIMEOUT = 10.0
# How long stop() waits for clients to answer connection.close before cutting them.
STOP_GRACE = 1.0


def _url(host: str, port: int, vhost: str = "/") -> str:
    from urllib.parse import quote

    return f"amqp://guest:guest@{host}:{port}/{quote(vhost, safe='')}"


class Broker:
    """A broker on a background thread; in-memory storage unless ``data_dir`` is given.

    ``clock``: the broker's time (wall-clock time by default); a
    :class:`~amqpbroker.ManualClock` lets the caller move it with ``advance``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] | None = None,
        **settings: Any,
    ) -> None:
        settings.setdefault("data_dir", ":memory:")
        self.clock = clock
        # management=True serves the management API, on a free port unless given.
        settings.setdefault("management_port", 0)
        self.settings = Settings(host=host, port=port, **settings)
        self.core: BrokerCore | None = None
        self.port = 0
        self.management_port = 0
        # The amqps port, when the settings ask for a TLS listener (tls_port=0: a free one).
        self.tls_port: int | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Broker:
        if self._thread is not None:
            raise RuntimeError("broker already started")
        self._thread = threading.Thread(target=self._run, name="amqpbroker", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError(f"amqpbroker did not start within {START_TIMEOUT} s")
        if self._error is not None:
            self._thread.join(1)
            self._thread = None
            raise self._error
        return self

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the thread that called start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        try:
            core = BrokerCore.open(self.settings, clock=self.clock)
        except Exception as exc:  # StoreError: reported to the caller of start()
            self._error = exc
            self._ready.set()
            return
        if isinstance(self.clock, ManualClock):
            self.clock.bind(core.timers, core.run_timers, self._call_on_loop)
        try:
            await self._serve(core)
        finally:
            if isinstance(self.clock, ManualClock):
                self.clock.bind(None)
            core.close()

    def _call_on_loop(self, func: Callable[[], None]) -> None:
        # ManualClock.advance from the test's thread: the deadlines run on the
        # broker's thread, like every other broker operation.
        self.call(func)

    async def _serve(self, core: BrokerCore) -> None:
        assert self._stop is not None
        server = Server(core)
        try:
            await server.listen(self.settings.host, self.settings.port, self.settings.more_hosts)
            management = _management(core, self.settings)
        except Exception as exc:  # port in use, bad definitions file
            self._error = exc
            self._ready.set()
            return
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            if management is not None:
                from .management.server import serve_management

                ctx, sock = management
                ctx.amqp_host, ctx.amqp_port = self.settings.host, server.port
                self.management_port = await nursery.start(serve_management, ctx, sock)
            self.core, self.port = core, server.port
            self.tls_port = server.tls_port
            self._ready.set()
            await self._stop.wait()
            await server.shutdown(grace=STOP_GRACE)
            nursery.cancel_scope.cancel()

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        if self._token is not None and self._stop is not None and thread.is_alive():
            with suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        thread.join(STOP_GRACE + 5)
        self._thread = None

    def restart(self) -> None:
        """Stop and start again on the same port(s), as RabbitMQ restarting: clients
        are closed with 320 CONNECTION_FORCED (reason 'shutdown'); what the data dir
        holds (durable queues, persistent messages, vhosts, users) comes back; an
        in-memory broker comes back empty.

        Error handling: RuntimeError when not running; failing to start again
        raises as :meth:`start` does."""
        if self._thread is None:
            raise RuntimeError("broker is not running")
        ports: dict[str, Any] = {"port": self.port}
        if self.management_port:
            ports["management_port"] = self.management_port
        if self.tls_port is not None:
            ports["tls_port"] = self.tls_port
        self.stop()
        self.settings = attrs.evolve(self.settings, **ports)
        self.core = None
        self._token = self._stop = self._error = None
        self._ready = threading.Event()
        self.start()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --------------------------------------------------------------- addresses

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def url(self) -> str:
        """``amqp://guest:guest@HOST:PORT/%2F`` for the default vhost."""
        return _url(self.host, self.port)

    def url_for(self, vhost: str) -> str:
        return _url(self.host, self.port, vhost)

    @property
    def management_url(self) -> str:
        """``http://HOST:PORT`` of the management API (``management=True`` only)."""
        if not self.management_port:
            raise RuntimeError("the management API is off (Broker(management=True) turns it on)")
        host = self.settings.management_host
        return f"http://{host if ':' not in host else f'[{host}]'}:{self.management_port}"

    # ------------------------------------------------------------ administration

    def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on the broker's thread (where all its state lives)."""
        if self._token is None:
            raise RuntimeError("broker is not running")
        return trio.from_thread.run_sync(func, *args, trio_token=self._token)

    def add_vhost(self, name: str) -> None:
        """Create ``name`` (if new) and give the default user (guest) full access to it,
        so the ``url_for(name)`` credentials work there."""
        assert self.core is not None
        self.call(_add_vhost, self.core, name)

    def delete_vhost(self, name: str) -> None:
        assert self.core is not None
        self.call(self.core.delete_vhost, name)

    # ------------------------------------------------------------------ faults
    # On purpose, for tests of how clients cope (broker/faults.py; amqp_faults).

    def close_connections(
        self,
        code: int = 320,
        text: str = faults.DEFAULT_CLOSE_TEXT,
        *,
        vhost: str | None = None,
        client: str | None = None,
    ) -> int:
        """Close client connections as RabbitMQ's force-close does: connection.close
        ``code`` ``CONNECTION_FORCED - text``.  ``vhost``, and ``client`` (its
        connection_name or ``host:port``), narrow it; returns how many."""
        return self.call(faults.close_connections, self._running(), code, text, vhost, client)

    def kill_connections(self, *, vhost: str | None = None, client: str | None = None) -> int:
        """Cut client connections with a TCP reset and no close frame; how many."""
        return self.call(faults.kill_connections, self._running(), vhost, client)

    def block_publishers(self) -> None:
        """A memory alarm as clients see it: publishing connections get
        connection.blocked ("low on memory") and are not read until unblocked."""
        self.call(faults.block_publishers, self._running())

    def unblock_publishers(self) -> None:
        self.call(faults.unblock_publishers, self._running())

    def _running(self) -> BrokerCore:
        if self.core is None:
            raise RuntimeError("broker is not running")
        return self.core


def _management(core: BrokerCore, settings: Settings) -> tuple[ManagementContext, Any] | None:
    """The management context (definitions loaded) and its bound socket, when on.

    Imports the management package only then: an embedded broker without it
    never loads Starlette or Hypercorn."""
    if not (settings.management or settings.load_definitions):
        return None
    from .management.context import ManagementContext
    from .management.definitions import load_file
    from .management.server import bind

    ctx = ManagementContext(core, max_body_size=settings.management_max_body_size)
    if settings.load_definitions:
        load_file(ctx, settings.load_definitions)
    if not settings.management:
        return None
    return ctx, bind(settings.management_host, settings.management_port)


def _add_vhost(core: BrokerCore, name: str) -> None:
    core.add_vhost(name)
    core.grant_default_user(name)


@attrs.define
class TrioBroker:
    """A broker running as a task in the caller's trio nursery."""

    core: BrokerCore
    server: Server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tls_port(self) -> int | None:
        return self.server.tls_port

    @property
    def url(self) -> str:
        return _url(self.core.settings.host, self.port)


@asynccontextmanager
async def open_broker(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] | None = None,
    **settings: Any,
) -> AsyncIterator[TrioBroker]:
    """Serve from the current trio run until the block exits (``clock`` as for
    :class:`Broker`; a ManualClock's ``advance`` then runs the deadlines at once, on
    the caller's task)."""
    settings.setdefault("data_dir", ":memory:")
    core = BrokerCore.open(Settings(host=host, port=port, **settings), clock=clock)
    if isinstance(clock, ManualClock):
        clock.bind(core.timers, core.run_timers)
    try:
        server = Server(core)
        await server.listen(host, port, core.settings.more_hosts)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            try:
                yield TrioBroker(core, server)
            finally:
                with trio.CancelScope(shield=True):
                    await server.shutdown(grace=STOP_GRACE)
                nursery.cancel_scope.cancel()
    finally:
        if isinstance(clock, ManualClock):
            clock.bind(None)
        core.close()
