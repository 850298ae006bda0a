"""A tiny AMQP 0-9-1 client over a plain socket, for what pika cannot be made to send.

Frames are built and parsed with pamqp; every read has a deadline, so a test that
expects a frame the broker never sends fails in seconds instead of hanging.
Used by the client tests (and the differential tests against a real RabbitMQ).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any
from urllib.parse import unquote, urlparse

from pamqp import commands, frame, heartbeat

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
# Long enough for a loaded CI machine, short enough that a failure is quick.
DEFAULT_TIMEOUT = 5.0

CLIENT_CAPABILITIES = {
    "authentication_failure_close": True,
    "consumer_cancel_notify": True,
    "publisher_confirms": True,
    "basic.nack": True,
    "connection.blocked": True,
}


class Closed(Exception):
    """The broker closed the socket while we waited for a frame."""


def parse_url(url: str) -> tuple[str, int, str]:
    """(host, port, vhost) of an amqp:// URL (vhost '/' when the path is empty)."""
    parts = urlparse(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return parts.hostname or "127.0.0.1", parts.port or 5672, unquote(path) if path else "/"


def plain_response(user: str, password: str) -> bytes:
    return b"\x00" + user.encode() + b"\x00" + password.encode()


def amqplain_response(user: str, password: str) -> bytes:
    """AMQPLAIN: a field table without its 4-byte length prefix."""

    def longstr(key: str, value: str) -> bytes:
        raw = value.encode()
        return bytes((len(key),)) + key.encode() + b"S" + struct.pack(">I", len(raw)) + raw

    return longstr("LOGIN", user) + longstr("PASSWORD", password)


def method_frame(channel: int, method: Any) -> bytes:
    return frame.marshal(method, channel)


def raw_frame(frame_type: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes((end,))


class RawClient:
    """One socket to a broker; ``recv`` returns ``(channel, pamqp frame)``."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""

    @classmethod
    def for_url(cls, url: str, timeout: float = DEFAULT_TIMEOUT) -> RawClient:
        host, port, _ = parse_url(url)
        return cls(host, port, timeout)

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # ------------------------------------------------------------- sending

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, method: Any, channel: int = 0) -> None:
        self.sock.sendall(method_frame(channel, method))

    # ------------------------------------------------------------- receiving

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame from the broker in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("no frame from the broker in time") from None
        except ConnectionResetError:
            data = b""
        if not data:
            raise Closed("socket closed by the broker")
        self.buf += data

    def recv_bytes(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv(self, timeout: float | None = None) -> tuple[int, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.buf) >= 7:
                size = struct.unpack_from(">I", self.buf, 3)[0]
                if len(self.buf) >= size + 8:
                    consumed, channel, value = frame.unmarshal(self.buf[: size + 8])
                    self.buf = self.buf[consumed:]
                    return channel, value
            self._fill(deadline)

    def recv_method(self, timeout: float | None = None, skip_heartbeats: bool = True) -> Any:
        """The next method frame's pamqp object (its channel in ``last_channel``)."""
        while True:
            channel, value = self.recv(timeout)
            if skip_heartbeats and isinstance(value, heartbeat.Heartbeat):
                continue
            self.last_channel = channel
            return value

    def expect(self, cls: type, timeout: float | None = None) -> Any:
        value = self.recv_method(timeout)
        if not isinstance(value, cls):
            raise AssertionError(f"expected {cls.__name__}, got {value!r}")
        return value

    def frames_until_closed(self, timeout: float | None = None) -> list[Any]:
        """Every frame the broker sends until it closes the socket (TimeoutError if it
        does not within ``timeout``); answers a connection.close with close-ok."""
        deadline = time.monotonic() + (timeout or self.timeout)
        got: list[Any] = []
        while True:
            try:
                _channel, value = self.recv(max(deadline - time.monotonic(), 0.001))
            except Closed:
                return got
            got.append(value)
            if isinstance(value, commands.Connection.Close):
                try:
                    self.send(commands.Connection.CloseOk())
                except OSError:
                    return got

    # ------------------------------------------------------------ handshake

    def start(self, protocol_header: bytes = PROTOCOL_HEADER) -> commands.Connection.Start:
        self.send_bytes(protocol_header)
        return self.expect(commands.Connection.Start)

    def login(
        self,
        user: str = "guest",
        password: str = "guest",
        mechanism: str = "PLAIN",
        capabilities: dict[str, Any] | None = None,
    ) -> Any:
        """start-ok; returns what the broker answers (tune, close, ...)."""
        response = (
            amqplain_response(user, password)
            if mechanism == "AMQPLAIN"
            else plain_response(user, password)
        )
        props = {
            "product": "rawamqp",
            "capabilities": CLIENT_CAPABILITIES if capabilities is None else capabilities,
        }
        # pamqp marshals the response as text; ours are ASCII, so that is lossless.
        self.send(
            commands.Connection.StartOk(
                client_properties=props, mechanism=mechanism, response=response.decode("ascii")
            )
        )
        return self.recv_method()

    def tune_ok(self, channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 0) -> None:
        self.send(
            commands.Connection.TuneOk(
                channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat
            )
        )

    def open(self, vhost: str = "/") -> Any:
        self.send(commands.Connection.Open(virtual_host=vhost))
        return self.recv_method()

    def handshake(
        self,
        vhost: str = "/",
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: int = 0,
        mechanism: str = "PLAIN",
    ) -> commands.Connection.Tune:
        self.start()
        tune = self.login(mechanism=mechanism)
        assert isinstance(tune, commands.Connection.Tune), tune
        self.tune_ok(channel_max, frame_max, heartbeat)
        reply = self.open(vhost)
        assert isinstance(reply, commands.Connection.OpenOk), reply
        return tune

    def open_channel(self, channel: int) -> None:
        self.send(commands.Channel.Open(), channel)
        self.expect(commands.Channel.OpenOk)


def connect(url: str, timeout: float = DEFAULT_TIMEOUT, **tune: int) -> RawClient:
    """A raw client that completed the handshake into the URL's vhost."""
    client = RawClient.for_url(url, timeout)
    try:
        client.handshake(vhost=parse_url(url)[2], **tune)
    except BaseException:
        client.close()
        raise
    return client
