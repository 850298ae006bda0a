"""Per-test cleanup on an external broker that has no management API.

Without the management API there is no way to create a vhost per test, nor to
list what a test left behind.  So the fixtures route the test's connections
through :class:`DeclarationTracker`: a small TCP relay on loopback that forwards
every byte unchanged in both directions and, on the side, reads the frame
headers to note each queue and exchange the test declares (and each
server-named queue the broker hands out).  When the test ends, the tracker cuts
the test's connections (as deleting a vhost would) and deletes those queues and
exchanges over a connection of its own.

The relay is cheap (two threads per connection, no parsing of message bodies)
and invisible to clients: handshake, heartbeats and errors all come from the
real broker.

Error handling: failures to delete (a queue already gone, locked by a dying
exclusive owner, a name the broker refused in the first place) are ignored;
failing to reach the broker for the cleanup raises ConnectionError at teardown.
Resource handling: :meth:`DeclarationTracker.close` joins every thread and closes
every socket it opened; nothing outlives the test.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

from pamqp import commands, frame, header
from pamqp.exceptions import UnmarshalingException

# Socket reads, and how long the cleanup connection may wait for any reply.
RECV_SIZE = 65536
CLEANUP_TIMEOUT = 10.0
# Bounded join of relay threads at close (they end as soon as their sockets do).
JOIN_TIMEOUT = 5.0

_METHOD_FRAME = 1
_FRAME_HEADER = struct.Struct(">BHI")
_METHOD_KEY = struct.Struct(">HH")
# The client starts with the 8-byte protocol header "AMQP\x00\x00\x09\x01".
_PROTOCOL_HEADER_SIZE = 8
_QUEUE_DECLARE = (50, 10)
_QUEUE_DECLARE_OK = (50, 11)
_EXCHANGE_DECLARE = (40, 10)
_SERVER_NAMED_PREFIX = "amq.gen-"


class FrameScanner:
    """Splits one direction of an AMQP stream into frames and hands every method
    frame's payload to ``on_method``; other frames (bodies) are skipped unread."""

    __slots__ = ("_buf", "_on_method", "_skip")

    def __init__(self, on_method: Callable[[bytes], None], *, skip: int = 0) -> None:
        self._buf = bytearray()
        self._on_method = on_method
        self._skip = skip

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while True:
            if self._skip:
                step = min(self._skip, len(buf) - pos)
                pos += step
                self._skip -= step
                if self._skip:
                    break
            if len(buf) - pos < _FRAME_HEADER.size:
                break
            kind, _channel, size = _FRAME_HEADER.unpack_from(buf, pos)
            if kind != _METHOD_FRAME:
                pos += _FRAME_HEADER.size
                self._skip = size + 1  # payload and frame-end octet
                continue
            end = pos + _FRAME_HEADER.size + size + 1
            if len(buf) < end:
                break
            self._on_method(bytes(buf[pos + _FRAME_HEADER.size : end - 1]))
            pos = end
        del buf[:pos]


def _shortstr(payload: bytes, pos: int) -> tuple[str, int]:
    length = payload[pos]
    end = pos + 1 + length
    return payload[pos + 1 : end].decode("utf-8", "replace"), end


class Declarations:
    """Names seen in one test's traffic, in first-seen order."""

    def __init__(self) -> None:
        self.queues: dict[str, None] = {}
        self.exchanges: dict[str, None] = {}
        self._lock = threading.Lock()

    def client_method(self, payload: bytes) -> None:
        try:
            key = _METHOD_KEY.unpack_from(payload)
            if key == _QUEUE_DECLARE:
                name, pos = _shortstr(payload, 6)  # after the reserved short
                if name and not payload[pos] & 1:  # bit 0: passive
                    with self._lock:
                        self.queues[name] = None
            elif key == _EXCHANGE_DECLARE:
                name, pos = _shortstr(payload, 6)
                _type, pos = _shortstr(payload, pos)
                if name and not payload[pos] & 1:
                    with self._lock:
                        self.exchanges[name] = None
        except (IndexError, struct.error):
            pass  # malformed: the broker will say so to the client

    def server_method(self, payload: bytes) -> None:
        try:
            if _METHOD_KEY.unpack_from(payload) == _QUEUE_DECLARE_OK:
                name, _pos = _shortstr(payload, 4)
                if name.startswith(_SERVER_NAMED_PREFIX):
                    with self._lock:
                        self.queues[name] = None
        except (IndexError, struct.error):
            pass

    def snapshot(self) -> tuple[list[str], list[str]]:
        with self._lock:
            return list(self.queues), list(self.exchanges)


class DeclarationTracker:
    """A loopback relay to ``host:port`` that remembers what is declared through it.

    Error handling: a relay that cannot reach the broker closes the client's
    connection (the client reports the failure); see the module doc for cleanup.
    Resource handling: a listening socket and one accept thread from construction,
    two threads per relayed connection, all ended by :meth:`close`.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.declarations = Declarations()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closing = False
        self._start(self._accept_loop, "amqp-relay-accept")

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            if self._closing:
                client.close()
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=CLEANUP_TIMEOUT)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closing:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            client_scanner = FrameScanner(
                self.declarations.client_method, skip=_PROTOCOL_HEADER_SIZE
            )
            server_scanner = FrameScanner(self.declarations.server_method)
            self._start(self._pump, "amqp-relay-up", client, upstream, client_scanner)
            self._start(self._pump, "amqp-relay-down", upstream, client, server_scanner)

    def _pump(self, source: socket.socket, sink: socket.socket, scanner: FrameScanner) -> None:
        try:
            while True:
                data = source.recv(RECV_SIZE)
                if not data:
                    break
                scanner.feed(data)
                sink.sendall(data)
        except OSError:
            pass
        # One side is gone: end the whole connection, as a broker or client would.
        for sock in (source, sink):
            _shutdown(sock)

    def close(self) -> None:
        """Cut every relayed connection and stop accepting; joins all threads."""
        with self._lock:
            self._closing = True
            sockets = list(self._sockets)
        # Wake the accept loop with a connection of our own, then close the listener.
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self._listener.close()
        for sock in sockets:
            _shutdown(sock)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        for sock in sockets:
            sock.close()

    def cleanup(self, user: str, password: str, vhost: str) -> None:
        """:meth:`close`, then delete every queue and exchange declared through us."""
        self.close()
        queues, exchanges = self.declarations.snapshot()
        if queues or exchanges:
            delete_entities(self.upstream, user, password, vhost, queues, exchanges)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# ------------------------------------------------------ the cleanup connection


class _Connection:
    """Just enough of an AMQP client to delete things: one synchronous method at a time."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=CLEANUP_TIMEOUT)
        # Small request, wait for reply, small request: without NODELAY, Nagle and
        # the peer's delayed ACK cost ~40 ms per step.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def send(self, method: object, channel: int = 0) -> None:
        self.sock.sendall(frame.marshal(method, channel))  # type: ignore[arg-type]

    def receive(self) -> object:
        while True:
            if self._buf:
                try:
                    used, _channel, value = frame.unmarshal(self._buf)
                except UnmarshalingException:
                    pass  # incomplete frame: read more
                else:
                    self._buf = self._buf[used:]
                    if isinstance(value, commands.Connection.Close):
                        raise ConnectionError(
                            f"broker closed the cleanup connection: {value.reply_code} "
                            f"{value.reply_text}"
                        )
                    return value
            data = self.sock.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("broker closed the cleanup connection")
            self._buf += data

    def expect(self, kind: type | tuple[type, ...]) -> object:
        while True:
            value = self.receive()
            if isinstance(value, kind):
                return value


def delete_entities(
    address: tuple[str, int],
    user: str,
    password: str,
    vhost: str,
    queues: list[str],
    exchanges: list[str],
) -> None:
    """Delete ``queues`` then ``exchanges`` in ``vhost``; refusals are ignored."""
    conn = _Connection(address)
    try:
        conn.sock.sendall(header.ProtocolHeader().marshal())
        conn.expect(commands.Connection.Start)
        conn.send(
            commands.Connection.StartOk(
                client_properties={"product": "amqpbroker test cleanup"},
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
            )
        )
        tune = conn.expect(commands.Connection.Tune)
        assert isinstance(tune, commands.Connection.Tune)
        conn.send(commands.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))
        conn.send(commands.Connection.Open(virtual_host=vhost))
        conn.expect(commands.Connection.OpenOk)
        channel = 1
        conn.send(commands.Channel.Open(), channel)
        conn.expect(commands.Channel.OpenOk)
        operations: list[tuple[object, type]] = [
            (commands.Queue.Delete(queue=name), commands.Queue.DeleteOk) for name in queues
        ]
        operations += [
            (commands.Exchange.Delete(exchange=name), commands.Exchange.DeleteOk)
            for name in exchanges
            if not name.startswith("amq.")
        ]
        for method, reply in operations:
            conn.send(method, channel)
            answer = conn.expect((reply, commands.Channel.Close))
            if isinstance(answer, commands.Channel.Close):
                # Refused (e.g. 405 locked by an exclusive owner that is going away):
                # acknowledge, and go on with a fresh channel.
                conn.send(commands.Channel.CloseOk(), channel)
                channel += 1
                conn.send(commands.Channel.Open(), channel)
                conn.expect(commands.Channel.OpenOk)
        conn.send(commands.Connection.Close(200, "cleanup done", 0, 0))
        conn.expect(commands.Connection.CloseOk)
    finally:
        conn.sock.close()


__all__ = ["DeclarationTracker", "Declarations", "FrameScanner", "delete_entities"]
