"""Many idle consumers: N connections, each with a channel and a consumer, held with
heartbeats; the broker's RSS per connection, for amqpbroker and RabbitMQ side by side.

    python -m benchmarks.connections [-n 1000] [--hold 60] [--heartbeat 10]
                                     [--rabbitmq-url amqp://guest:guest@127.0.0.1:5673/]

For each broker: RSS before, every connection opens (handshake with the given heartbeat,
channel 1, an exclusive server-named queue, basic.consume), the RSS with all of them
open, then they are held for ``--hold`` seconds during which each client sends a
heartbeat every half interval and counts the broker's. At the end one message is
published to every queue through one more connection: every consumer must get its
own, which shows no connection was dropped on the way (missed heartbeats would have).

The clients are one asyncio process of raw sockets (pamqp frames), so that client-side
cost does not depend on a client library. ``ulimit -n`` is raised to the hard limit
first; a broker whose own limit is lower (RabbitMQ's file handle limit follows its
``ulimit -n``) shows up as refused or failed connections in the report.

Our broker runs as ``amqpbroker --transient`` (benchmarks.brokers.OurBroker); RabbitMQ
is the one at ``--rabbitmq-url``, its RSS read from the process listening on its port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pamqp import commands, frame, heartbeat

from .brokers import OurBroker
from .durability import rss_mib
from .sysstat import listener_pid

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
HEARTBEAT_FRAME = bytes(frame.marshal(heartbeat.Heartbeat(), 0))
FRAME_HEAD = struct.Struct(">BHI")
# Handshakes in flight at once: enough to open 1,000 connections in a few seconds
# without a SYN flood against the listen backlog.
CONNECT_CONCURRENCY = 64
STEP_TIMEOUT_S = 30.0
RESULTS = Path(__file__).parent / "results"


@dataclass
class Side:
    broker: str
    target: int
    opened: int = 0
    failed: int = 0
    first_error: str = ""
    connect_s: float = 0.0
    rss_idle_mib: float = 0.0
    rss_loaded_mib: float = 0.0
    rss_end_mib: float = 0.0
    lost_during_hold: int = 0
    heartbeats_received: int = 0
    delivered: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def kib_per_connection(self) -> float:
        if not self.opened:
            return 0.0
        return (self.rss_loaded_mib - self.rss_idle_mib) * 1024 / self.opened


class Client:
    """One connection: channel 1, an exclusive queue, a no-ack consumer on it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = b""
        self.queue = ""
        self.deliveries = 0
        self.heartbeats = 0
        self.closed: str | None = None

    async def next_frame(self) -> tuple[int, Any]:
        while True:
            if len(self.buf) >= 7:
                size = FRAME_HEAD.unpack_from(self.buf)[2]
                if len(self.buf) >= size + 8:
                    consumed, channel, value = frame.unmarshal(self.buf[: size + 8])
                    self.buf = self.buf[consumed:]
                    return channel, value
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed by the broker")
            self.buf += data

    async def expect(self, cls: type) -> Any:
        while True:
            _channel, value = await self.next_frame()
            if isinstance(value, heartbeat.Heartbeat):
                self.heartbeats += 1
                continue
            if isinstance(value, commands.Connection.Close | commands.Channel.Close):
                raise ConnectionError(f"{value.reply_code} {value.reply_text}")
            if not isinstance(value, cls):
                raise ConnectionError(f"expected {cls.__name__}, got {type(value).__name__}")
            return value

    def send(self, channel: int, value: Any) -> None:
        self.writer.write(bytes(frame.marshal(value, channel)))

    async def handshake(self, user: str, password: str, vhost: str, heartbeat_s: int) -> None:
        self.writer.write(PROTOCOL_HEADER)
        await self.expect(commands.Connection.Start)
        self.send(
            0,
            commands.Connection.StartOk(
                client_properties={"product": "benchmarks.connections", "capabilities": {}},
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
            ),
        )
        tune = await self.expect(commands.Connection.Tune)
        self.send(
            0,
            commands.Connection.TuneOk(
                channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=heartbeat_s
            ),
        )
        self.send(0, commands.Connection.Open(virtual_host=vhost))
        await self.expect(commands.Connection.OpenOk)
        self.send(1, commands.Channel.Open())
        await self.expect(commands.Channel.OpenOk)
        self.send(1, commands.Queue.Declare(queue="", exclusive=True))
        self.queue = (await self.expect(commands.Queue.DeclareOk)).queue
        self.send(1, commands.Basic.Consume(queue=self.queue, no_ack=True))
        await self.expect(commands.Basic.ConsumeOk)

    async def listen(self) -> None:
        """Count heartbeats and deliveries until the connection ends."""
        try:
            while True:
                _channel, value = await self.next_frame()
                if isinstance(value, heartbeat.Heartbeat):
                    self.heartbeats += 1
                elif isinstance(value, commands.Basic.Deliver):
                    self.deliveries += 1
                elif isinstance(value, commands.Connection.Close | commands.Channel.Close):
                    self.closed = f"{value.reply_code} {value.reply_text}"
                    return
        except (ConnectionError, OSError) as exc:
            self.closed = self.closed or str(exc) or type(exc).__name__

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def parse_url(url: str) -> tuple[str, int, str, str, str]:
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return (
        parts.hostname or "127.0.0.1",
        parts.port or 5672,
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
        vhost,
    )


async def run_side(
    side: Side, url: str, pid: int, hold_s: float, heartbeat_s: int, settle_s: float = 2.0
) -> None:
    host, port, user, password, vhost = parse_url(url)
    side.rss_idle_mib = rss_mib(pid)["VmRSS"]
    clients: list[Client] = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one() -> None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                side.failed += 1
                side.first_error = side.first_error or f"connect: {exc}"
                return
            client = Client(reader, writer)
            try:
                await asyncio.wait_for(
                    client.handshake(user, password, vhost, heartbeat_s), STEP_TIMEOUT_S
                )
            except (ConnectionError, OSError, TimeoutError) as exc:
                side.failed += 1
                side.first_error = side.first_error or f"handshake: {exc or type(exc).__name__}"
                client.close()
                return
            clients.append(client)

    started = time.monotonic()
    await asyncio.gather(*(open_one() for _ in range(side.target)))
    side.connect_s = round(time.monotonic() - started, 2)
    side.opened = len(clients)
    listeners = [asyncio.create_task(c.listen()) for c in clients]
    await asyncio.sleep(settle_s)  # let the broker settle (allocations, GC) before measuring
    side.rss_loaded_mib = rss_mib(pid)["VmRSS"]
    print(
        f"  {side.broker}: {side.opened} open ({side.failed} failed) in {side.connect_s} s; "
        f"RSS {side.rss_idle_mib} -> {side.rss_loaded_mib} MiB; holding {hold_s:.0f} s",
        flush=True,
    )

    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        # Our heartbeats, every half interval (as clients do): one loop for all of them.
        for client in clients:
            if client.closed is None:
                client.writer.write(HEARTBEAT_FRAME)
        await asyncio.sleep(min(heartbeat_s / 2, max(deadline - time.monotonic(), 0)))
    side.lost_during_hold = sum(1 for c in clients if c.closed is not None)
    side.rss_end_mib = rss_mib(pid)["VmRSS"]
    side.heartbeats_received = sum(c.heartbeats for c in clients)

    # Every consumer should get the message published to its own queue.
    publisher = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        publisher = Client(reader, writer)
        await publisher.handshake(user, password, vhost, 0)
        for client in clients:
            if client.closed is None:
                publisher.send(1, commands.Basic.Publish(exchange="", routing_key=client.queue))
                publisher.writer.write(_content(1, b"ping"))
        await publisher.writer.drain()
        wait_until = time.monotonic() + 10
        alive = [c for c in clients if c.closed is None]
        while time.monotonic() < wait_until and sum(c.deliveries for c in alive) < len(alive):
            await asyncio.sleep(0.05)
    except (ConnectionError, OSError) as exc:
        side.notes.append(f"publisher failed: {exc}")
    side.delivered = sum(c.deliveries for c in clients)
    for task in listeners:
        task.cancel()
    for client in clients:
        client.close()
    if publisher is not None:
        publisher.close()
    await asyncio.sleep(0.5)


def _content(channel: int, body: bytes) -> bytes:
    from pamqp import body as body_frame
    from pamqp import header

    return bytes(
        frame.marshal(header.ContentHeader(0, len(body), commands.Basic.Properties()), channel)
    ) + bytes(frame.marshal(body_frame.ContentBody(body), channel))


def raise_file_limit(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    note = f"ulimit -n {soft}"
    if soft < needed:
        note += f" (below the {needed} sockets this run needs)"
    return note


def report(sides: list[Side]) -> str:
    head = (
        f"{'broker':<16}{'open':>7}{'failed':>8}{'connect s':>11}{'RSS idle':>10}"
        f"{'RSS open':>10}{'RSS end':>9}{'KiB/conn':>10}{'lost':>6}{'delivered':>11}"
    )
    lines = [head + "   (RSS in MiB)", "-" * len(head)]
    for s in sides:
        lines.append(
            f"{s.broker:<16}{s.opened:>7}{s.failed:>8}{s.connect_s:>11}{s.rss_idle_mib:>10}"
            f"{s.rss_loaded_mib:>10}{s.rss_end_mib:>9}{s.kib_per_connection:>10.1f}"
            f"{s.lost_during_hold:>6}"
            f"{s.delivered:>11}"
        )
    for s in sides:
        if s.first_error:
            lines.append(f"{s.broker}: first failure: {s.first_error}")
        lines.extend(f"{s.broker}: {note}" for note in s.notes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.connections")
    parser.add_argument("-n", "--connections", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds to hold them (60)")
    parser.add_argument("--heartbeat", type=int, default=10, help="negotiated heartbeat, s (10)")
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5673/")
    parser.add_argument("--no-rabbitmq", action="store_true")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds between opening and measuring (2)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "connections.json",
        help="where the JSON results go (our broker's log goes beside it)",
    )
    args = parser.parse_args(argv)
    limit_note = raise_file_limit(2 * args.connections + 100)
    print(
        f"{args.connections} connections, held {args.hold:.0f} s, heartbeat {args.heartbeat} s; "
        f"{limit_note}",
        flush=True,
    )
    sides: list[Side] = []

    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    with OurBroker(out.with_name(out.stem + "-amqpbroker.log"), persistent=False) as ours:
        assert ours.address is not None
        side = Side("amqpbroker", args.connections)
        url = f"amqp://guest:guest@{ours.address.host}:{ours.address.port}/"
        asyncio.run(run_side(side, url, ours.pid, args.hold, args.heartbeat, args.settle))
        sides.append(side)

    if not args.no_rabbitmq:
        port = parse_url(args.rabbitmq_url)[1]
        pid = listener_pid(port)
        if pid is None:
            print(f"no RabbitMQ listening on port {port}; skipped", flush=True)
        else:
            side = Side("RabbitMQ", args.connections)
            with contextlib.suppress(OSError):
                limit = [
                    line
                    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                    if line.startswith("Max open files")
                ]
                side.notes.append(" ".join(limit[0].split()[:5]) if limit else "")
            asyncio.run(
                run_side(side, args.rabbitmq_url, pid, args.hold, args.heartbeat, args.settle)
            )
            sides.append(side)

    text = report(sides)
    print(text)
    out.write_text(
        json.dumps(
            {
                "connections": args.connections,
                "hold_s": args.hold,
                "heartbeat_s": args.heartbeat,
                "client_limit": limit_note,
                "sides": [asdict(s) | {"kib_per_connection": s.kib_per_connection} for s in sides],
            },
            indent=2,
        )
    )
    print(f"results in {out}")
    return 0 if all(s.opened == s.target and not s.lost_during_hold for s in sides) else 1


if __name__ == "__main__":
    sys.exit(main())
