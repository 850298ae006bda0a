"""The only trio code: the listener and, per connection, a reader, a writer and a ticker.

Per connection (hypercorn style, the I/O layer stays thin):
- the reader does ``receive_some`` and feeds the bytes to the session, which
  handles every complete frame synchronously and queues output;
- the writer sleeps until woken, then sends everything queued in ONE ``send_all``
  (PERFORMANCE-NOTES: joining 100 messages costs ~0.3 us each, sending them one by
  one ~30 us each), or one ``sendmsg`` when big bodies are queued, which are not joined;
- the ticker wakes every so often for heartbeats and the handshake timeout.
There is no task per message and no lock: all broker state lives on this thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import socket
import struct
from collections.abc import Sequence

import trio

from ..broker.broker import Broker
from ..broker.session import Session
from .clock import run_timers
from .committer import run_committer
from .monitor import run_monitor
from .pager import run_pager
from .tls import accept as tls_accept
from .tls import server_context

log = logging.getLogger("amqpbroker.server")

# Read in large chunks: every frame in one chunk is handled before the next read,
# so publisher confirms and deliveries batch naturally.
RECV_SIZE = 256 * 1024
# The longest a connection handles its input before other connections get a turn (a
# pipelined burst of durable declares would otherwise hold the loop for seconds).
TIME_SLICE_S = 0.01
# At most this many buffers per sendmsg (Linux's IOV_MAX).
IOV_MAX = 1024
# How long a stopping server waits for its clients' close-ok to the 320 it sent them
# (and for clients already closing to close their side) before it cuts them (README).
SHUTDOWN_GRACE = 2.0
# What ``--host localhost`` listens on.
LOCALHOST_ADDRESSES = ("127.0.0.1", "::1")
_NO_ADDRESS = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
# A writer stuck on a peer that stopped reading gives up after this long once the
# connection is over.
FINAL_FLUSH_TIMEOUT = 5.0


class _Wakeup:
    """A re-armable event: ``set`` is cheap and idempotent until the next wait."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


def _socket_of(stream: trio.abc.Stream) -> socket.socket | None:
    # A TLS stream's socket is its transport's.
    inner = getattr(stream, "transport_stream", stream)
    return getattr(inner, "socket", None)


async def _send_buffers(sock: trio.socket.SocketType, bufs: list[bytes]) -> None:
    """``send_all`` for a list of buffers, gathered by the kernel (``sendmsg``) instead of
    joined first: joining copies each big body once more."""
    views: list[bytes | memoryview] = list(bufs)
    while views:
        sent = await sock.sendmsg(views[:IOV_MAX])
        done = 0
        while done < len(views) and sent >= len(views[done]):
            sent -= len(views[done])
            done += 1
        if sent:
            views[done] = memoryview(views[done])[sent:]
        del views[:done]


def _peer_name(stream: trio.abc.Stream) -> str:
    sock = _socket_of(stream)
    if sock is None:
        return ""
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_addresses(hosts: Sequence[str]) -> list[str]:
    """The addresses to bind for ``--host`` values: ``localhost`` is both loopbacks, so
    that clients resolving it to ::1 first (Node does) connect as those resolving it
    to 127.0.0.1 do, whatever /etc/hosts says."""
    addresses: list[str] = []
    for host in hosts:
        for address in LOCALHOST_ADDRESSES if host == "localhost" else (host,):
            if address not in addresses:
                addresses.append(address)
    return addresses


async def _open_listeners(hosts: Sequence[str], port: int) -> list[trio.SocketListener]:
    """Listeners on every address of ``hosts``, all on one port (with port 0, the
    port the first one picked)."""
    listeners: list[trio.SocketListener] = []
    optional = set(LOCALHOST_ADDRESSES) - set(hosts)  # asked for only through "localhost"
    try:
        for address in listen_addresses(hosts):
            try:
                listeners += await trio.open_tcp_listeners(port, host=address)
            except OSError as exc:
                # No IPv6 on this machine: "localhost" is then 127.0.0.1 alone.
                if address in optional and exc.errno in _NO_ADDRESS:
                    continue
                raise
            port = int(listeners[0].socket.getsockname()[1])
    except BaseException:
        for listener in listeners:
            await listener.aclose()
        raise
    return listeners


class ReadGate:
    """Open unless a resource alarm is raised; blocked publishers wait on it."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    def set_blocked(self, blocked: bool) -> None:
        if blocked:
            if self._open.is_set():
                self._open = trio.Event()
        else:
            self._open.set()

    async def wait_open(self) -> None:
        await self._open.wait()


async def handle_connection(
    broker: Broker, stream: trio.abc.Stream, gate: ReadGate, cert_user: str | None = None
) -> None:
    """Serve one client until it goes away; never raises (a failure costs only
    this connection, never the listener or other clients).  ``cert_user``: the
    user a verified TLS client certificate names (EXTERNAL)."""
    try:
        await _serve_connection(broker, stream, gate, cert_user)
    except Exception:
        log.exception("connection handler failed")


async def _serve_connection(
    broker: Broker, stream: trio.abc.Stream, gate: ReadGate, cert_user: str | None
) -> None:
    sock = _socket_of(stream)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session = Session(broker, _peer_name(stream), now=trio.current_time(), cert_user=cert_user)
    broker.sessions.add(session)
    proto = session.proto
    proto.time_slice = TIME_SLICE_S
    wakeup = _Wakeup()
    session.wake = wakeup.set
    # kill_connections (broker/faults.py, for tests): stop serving at once and let
    # the socket go with a TCP reset, no close frame (SO_LINGER 0).
    aborting = trio.CancelScope()

    def abort() -> None:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        aborting.cancel()

    session.abort = abort
    finished = trio.Event()
    # Set when the writer has returned: everything it took from proto.out is sent.
    writer_done = trio.Event()
    # The reader's scope; its deadline is set once closing starts.
    closing = trio.CancelScope()
    started = trio.current_time()

    # Plain TCP: big bodies go out without a join (take_buffers); TLS joins everything.
    raw_socket = stream.socket if isinstance(stream, trio.SocketStream) else None

    def start_closing_timer() -> None:
        if proto.closing and closing.deadline == math.inf:
            # connection.close or close-ok is out (or stuck behind a peer that does not
            # read): the peer has the closing timeout to answer or to close its side.
            closing.deadline = trio.current_time() + proto.closing_timeout

    async def writer() -> None:
        try:
            while True:
                await wakeup.wait()
                if proto.out:
                    if raw_socket is None:
                        data = proto.take_output()
                        await stream.send_all(data)
                        sent = len(data)
                    else:
                        bufs = proto.take_buffers()
                        if len(bufs) == 1:
                            await stream.send_all(bufs[0])
                        else:
                            await _send_buffers(raw_socket, bufs)
                        sent = sum(map(len, bufs))
                    session.send_oct += sent
                    proto.mark_sent(trio.current_time())
                    session.drained()
                start_closing_timer()
                if proto.closed:
                    finished.set()
                if finished.is_set() and not proto.out:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            proto.connection_lost()
            finished.set()
        finally:
            writer_done.set()

    async def ticker() -> None:
        settings = broker.settings
        while not finished.is_set():
            # Half the heartbeat interval (so we never stay silent a whole one), or
            # once a second for the handshake timeout when heartbeats are off.
            await trio.sleep(proto.heartbeat / 2 if proto.heartbeat else 1.0)
            now = trio.current_time()
            if session.read_paused:
                # We are not reading it, so its silence is ours (RabbitMQ pauses the
                # heartbeat monitor of blocked connections too).
                proto.last_received = now
            if proto.vhost is None and now - started > settings.handshake_timeout:
                proto.close_reason = "handshake timeout"
                proto.connection_lost()
                finished.set()
                wakeup.set()
                return
            if not proto.tick(now):
                log.warning("connection %s: %s", session.peer, proto.close_reason)
                proto.connection_lost()
                finished.set()
                wakeup.set()
                return
            if proto.out:
                wakeup.set()
            start_closing_timer()

    async def reader() -> None:
        # While closing, the socket is read to the end (or until the closing timeout)
        # and what arrives is dropped by the protocol: closing it with unread bytes
        # would make the kernel send a reset, and a client still writing the
        # publishes it queued before connection.close would never read our close-ok.
        with closing:
            try:
                while not proto.closed and not finished.is_set():
                    if session.read_paused and not proto.closing:
                        # Blocked publisher: its frames wait in the socket (TCP pushes
                        # back) until the alarm clears.
                        await gate.wait_open()
                    data = await stream.receive_some(RECV_SIZE)
                    if not data:
                        break  # the peer closed its side
                    session.recv_oct += len(data)
                    session.receive_data(data, trio.current_time())
                    while proto.input_pending and not proto.closed:
                        # Let the others run (and our writer send what is ready).
                        await trio.lowlevel.checkpoint()
                        session.receive_data(b"", trio.current_time())
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        if closing.cancelled_caught:
            log.info("connection %s: closing timeout, closing the socket", session.peer)
        proto.connection_lost()
        finished.set()
        wakeup.set()

    try:
        with aborting:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                nursery.start_soon(ticker)
                nursery.start_soon(reader)
                await finished.wait()
                # Let the writer flush what is left (close frames), bounded in time.
                # Wait for the writer itself, not for proto.out to empty: it empties
                # when the writer *takes* the data, and cancelling a send_all half-way
                # loses the close-ok (and breaks a TLS stream: no close_notify).
                wakeup.set()
                with trio.move_on_after(FINAL_FLUSH_TIMEOUT):
                    await writer_done.wait()
                nursery.cancel_scope.cancel()
    finally:
        proto.connection_lost()
        broker.sessions.discard(session)
        with trio.move_on_after(1) as cleanup:
            cleanup.shield = True
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                if aborting.cancel_called:
                    await trio.aclose_forcefully(stream)
                else:
                    await stream.aclose()


class Server:
    """Listens for AMQP clients; ``serve`` runs until cancelled or ``shutdown``."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.listeners: list[trio.SocketListener] = []
        # amqps (tls.py): bound when settings.tls_port is not None.
        self.tls_listeners: list[trio.SSLListener[trio.SocketStream]] = []
        self._accepting: trio.CancelScope | None = None
        self.gate = ReadGate()
        broker.alarms.on_change = self.gate.set_blocked
        self._connections: trio.CancelScope | None = None
        self._connection_tasks = 0

    @property
    def port(self) -> int:
        return int(self.listeners[0].socket.getsockname()[1])

    @property
    def tls_port(self) -> int | None:
        if not self.tls_listeners:
            return None
        transport = self.tls_listeners[0].transport_listener
        assert isinstance(transport, trio.SocketListener)
        return int(transport.socket.getsockname()[1])

    async def listen(self, host: str, port: int, more_hosts: Sequence[str] = ()) -> None:
        """Bind the listening socket(s) on ``host`` and ``more_hosts`` (one port for
        all), and the amqps ones when the settings name a TLS port; raises OSError
        (e.g. port in use, unreadable certificate) plainly."""
        hosts = [host, *more_hosts]
        self.listeners = await _open_listeners(hosts, port)
        settings = self.broker.settings
        if settings.tls_port is not None:
            if not (settings.tls_cert and settings.tls_key):
                raise ValueError("a TLS port needs a certificate and a key (--tls-cert, --tls-key)")
            context = server_context(
                settings.tls_cert,
                settings.tls_key,
                settings.tls_ca,
                require_client_cert=settings.tls_require_client_cert,
            )
            self.tls_listeners = [
                trio.SSLListener(listener, context, https_compatible=False)
                for listener in await _open_listeners(hosts, settings.tls_port)
            ]
            log.info("amqps listener on %s:%s", host, self.tls_port)

    async def serve(
        self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept connections on the bound listeners until ``shutdown``.

        The group committer runs beside the connections and outlives them, so
        what they buffered is committed; the caller closes the store afterwards.
        """
        async with trio.open_nursery() as background:
            if self.broker.store is not None:
                await background.start(run_committer, self.broker)
                await background.start(run_pager, self.broker)
            # One task for every broker deadline (TTLs, x-expires, ack timeouts).
            await background.start(run_timers, self.broker)
            background.start_soon(run_monitor, self.broker)
            async with trio.open_nursery() as connections:
                self._connections = connections.cancel_scope
                with trio.CancelScope() as accepting:
                    self._accepting = accepting
                    task_status.started(self)
                    await trio.serve_listeners(
                        self._handle,
                        [*self.listeners, *self.tls_listeners],
                        handler_nursery=connections,
                    )
                for listener in [*self.listeners, *self.tls_listeners]:
                    await listener.aclose()
            background.cancel_scope.cancel()

    async def _handle(self, stream: trio.abc.Stream) -> None:
        self._connection_tasks += 1
        try:
            await self._serve(stream)
        finally:
            self._connection_tasks -= 1

    async def _serve(self, stream: trio.abc.Stream) -> None:
        cert_user = None
        if isinstance(stream, trio.SSLStream):
            ok, cert_user = await tls_accept(stream, self.broker.settings.tls_login_from)
            if not ok:
                await trio.aclose_forcefully(stream)
                return
        await handle_connection(self.broker, stream, self.gate, cert_user)

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, close every connection with 320 CONNECTION_FORCED, and give
        clients ``grace`` seconds to answer close-ok and close their side (a client
        still publishing is not reset), then cut those left."""
        if self._accepting is not None:
            self._accepting.cancel()
        for session in list(self.broker.sessions):
            session.force_close()
        with trio.move_on_after(grace):
            # Connection tasks, not sessions: a session ends at close-ok, its socket
            # once the client has closed it.
            while self._connection_tasks:
                await trio.sleep(0.01)
        if self._connections is not None:
            self._connections.cancel()
