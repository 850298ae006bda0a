"""Routing benchmark: a topic exchange with many bindings, ours next to RabbitMQ.

    python -m benchmarks.routing [--bindings 10000] [--messages 50000] [--repeat 3]
                                 [--queues 4] [--no-rabbitmq] [--rabbitmq-url URL]
                                 [--quiet-wait 15] [--out DIR]

One topic exchange gets ``--bindings`` bindings (a mix of literal keys, ``*`` and ``#``
patterns, spread over ``--queues`` queues), declared pipelined with nowait.  Then one
publisher with confirms (at most 2,000 in flight, the load generator of ``python -m
benchmarks``) sends ``--messages`` 16-byte messages with a routing key that matches
nothing, then with one that matches exactly one binding (a ``*`` pattern) and with one
that matches through ``#`` patterns too.  Rate = messages / (first send .. last confirm):
the confirm of an unroutable or routed transient message comes once the broker has
routed it, so this is the broker's routing rate, queues growing (nobody consumes; they
are purged between runs).

Ours is a fresh ``amqpbroker --transient`` per broker round, RabbitMQ the one on
127.0.0.1:5673 when it answers (an exchange and queues of its own, deleted afterwards).
Results: a markdown table on stdout, JSON in benchmarks/results/routing-*.json.
Every run is bounded (``--time-limit``); the broker we start is stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pamqp import commands, frame

from .amqpraw import BrokerAddress, RawConnection
from .brokers import OurBroker
from .cli import _find_rabbit, _wait_quiet
from .loadgen import PublisherSpec, run_publisher
from .sysstat import machine_facts

DEFAULT_BINDINGS = 10_000
DEFAULT_MESSAGES = 50_000
DEFAULT_REPEAT = 3
DEFAULT_QUEUES = 4
DEFAULT_TIME_LIMIT_S = 120.0
BODY_SIZE = 16  # the load generator stamps an 8-byte send time into every body
STALL_S = 30.0
QUIET_WAIT_S = 15.0
PROCESS_TIMEOUT_S = 30.0
DEFAULT_OUT = Path(__file__).resolve().parent / "results"

# (case name, routing key, bindings it matches with the default binding set)
CASES = (
    ("no match", "nomatch.a.b.c", 0),
    ("1 match", "org7.dept7.item7.x", 1),  # "org7.dept7.item7.*"
    # "region3.#.evt3", "region3.#", "#.evt3" (two of them lead to the same queue)
    ("3 matches", "region3.a.b.evt3", 3),
)


def binding_keys(count: int) -> list[str]:
    """``count`` binding keys: half ``*`` patterns, a quarter ``#`` patterns (with a few
    short catch-alls per region), a quarter literal keys."""
    keys = []
    for i in range(count):
        kind = i % 4
        if kind in (0, 1):
            keys.append(f"org{i}.dept{i}.item{i}.*")
        elif kind == 2:
            keys.append(f"region{i}.#.evt{i}")
        else:
            keys.append(f"exact.{i}.key")
    # What the "3 matches" key needs besides region3.#.evt3 (i = 3 is a literal slot).
    keys[3] = "region3.#.evt3"
    keys[1] = "region3.#"
    keys[5] = "#.evt3"
    keys[7] = "org7.dept7.item7.*"
    return keys


@dataclass
class Setup:
    broker: str
    bindings: int
    bind_s: float


@dataclass
class Run:
    broker: str
    case: str
    rep: int
    messages: int
    msgs_per_s: float | None = None
    seconds: float | None = None
    routed_per_message: float | None = None
    error: str | None = None


@dataclass
class Report:
    machine: dict[str, object]
    setups: list[Setup] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Topology:
    """The exchange and queues of one broker round, named uniquely (RabbitMQ lives on)."""

    def __init__(self, queues: int) -> None:
        prefix = f"bench.routing.{os.getpid()}.{time.monotonic_ns() % 10**9}"
        self.exchange = f"{prefix}.topic"
        self.queues = [f"{prefix}.q{i}" for i in range(queues)]

    def declare(self, address: BrokerAddress, keys: list[str]) -> float:
        """Declare everything; returns the seconds the bindings took."""
        with RawConnection.open(address, timeout=STALL_S) as conn:
            conn.call(
                1,
                commands.Exchange.Declare(exchange=self.exchange, exchange_type="topic"),
                commands.Exchange.DeclareOk,
            )
            for queue in self.queues:
                conn.call(1, commands.Queue.Declare(queue=queue), commands.Queue.DeclareOk)
            started = time.perf_counter()
            binds = b"".join(
                frame.marshal(
                    commands.Queue.Bind(
                        queue=self.queues[i % len(self.queues)],
                        exchange=self.exchange,
                        routing_key=key,
                        nowait=True,
                    ),
                    1,
                )
                for i, key in enumerate(keys)
            )
            conn.send(binds)
            # A synchronous call after them: answered once every bind is done.
            conn.call(
                1,
                commands.Exchange.Declare(exchange=self.exchange, passive=True),
                commands.Exchange.DeclareOk,
            )
            return time.perf_counter() - started

    def purge(self, address: BrokerAddress) -> int:
        """Empty the queues; returns how many messages they held."""
        held = 0
        with RawConnection.open(address, timeout=STALL_S) as conn:
            for queue in self.queues:
                ok = conn.call(1, commands.Queue.Purge(queue=queue), commands.Queue.PurgeOk)
                held += ok.message_count
        return held

    def delete(self, address: BrokerAddress) -> None:
        try:
            with RawConnection.open(address, timeout=STALL_S) as conn:
                for queue in self.queues:
                    conn.call(1, commands.Queue.Delete(queue=queue), commands.Queue.DeleteOk)
                conn.call(
                    1, commands.Exchange.Delete(exchange=self.exchange), commands.Exchange.DeleteOk
                )
        except (OSError, TimeoutError, RuntimeError):
            pass  # a broker that died is reported by its runs already


def publish_rate(
    address: BrokerAddress, exchange: str, key: str, messages: int, time_limit_s: float
) -> tuple[float, float]:
    """Publish with confirms from a separate process; returns (msg/s, seconds)."""
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Event(), context.Event(), context.Queue()
    spec = PublisherSpec(
        address=address,
        exchange=exchange,
        routing_key=key,
        count=messages,
        body_size=BODY_SIZE,
        persistent=False,
        confirms=True,
        rate=None,
        time_limit_s=time_limit_s,
        stall_s=STALL_S,
    )
    process = context.Process(target=run_publisher, args=(spec, ready, go, results))
    process.start()
    try:
        if not ready.wait(PROCESS_TIMEOUT_S):
            raise TimeoutError("the publisher did not connect in time")
        go.set()
        report = results.get(timeout=time_limit_s + PROCESS_TIMEOUT_S)
    finally:
        process.join(PROCESS_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join()
    if report[0] == "error":
        raise RuntimeError(report[2])
    data = report[1]
    seconds = (data["t_confirmed_ns"] - data["t_start_ns"]) / 1e9
    return messages / seconds, seconds


def measure_broker(
    name: str, address: BrokerAddress, args: argparse.Namespace, keys: list[str], report: Report
) -> None:
    topology = Topology(args.queues)
    try:
        bind_s = topology.declare(address, keys)
        report.setups.append(Setup(name, len(keys), bind_s))
        print(f"{name:<10} {len(keys):,} bindings in {bind_s:.2f} s", file=sys.stderr)
        for case, key, _matches in CASES:
            for rep in range(args.repeat):
                run = Run(name, case, rep, args.messages)
                if args.quiet_wait > 0:
                    _wait_quiet(args.quiet_wait)
                try:
                    run.msgs_per_s, run.seconds = publish_rate(
                        address, topology.exchange, key, args.messages, args.time_limit
                    )
                    run.routed_per_message = topology.purge(address) / args.messages
                except Exception as exc:
                    run.error = f"{type(exc).__name__}: {exc}"
                report.runs.append(run)
                rate = f"{run.msgs_per_s:,.0f} msg/s" if run.msgs_per_s else run.error
                print(f"{name:<10} {case:<10} run {rep + 1}/{args.repeat}: {rate}", file=sys.stderr)
    finally:
        topology.delete(address)


def median_rate(report: Report, broker: str, case: str) -> float | None:
    rates = [
        r.msgs_per_s
        for r in report.runs
        if r.broker == broker and r.case == case and r.msgs_per_s is not None
    ]
    return statistics.median(rates) if rates else None


def render(report: Report, brokers: list[str], args: argparse.Namespace) -> str:
    lines = [
        f"Topic exchange, {args.bindings:,} bindings over {args.queues} queues; "
        f"{args.messages:,} publishes of {BODY_SIZE} B with confirms per run, median of "
        f"{args.repeat} (msg/s):",
        "",
        "| routing key | "
        + " | ".join(brokers)
        + (" | ours / RabbitMQ |" if len(brokers) > 1 else " |"),
        "|---|" + "---|" * len(brokers) + ("---|" if len(brokers) > 1 else ""),
    ]
    for case, key, _matches in CASES:
        cells = [median_rate(report, b, case) for b in brokers]
        row = f"| {case} (`{key}`) | " + " | ".join(
            f"{c:,.0f}" if c is not None else "error" for c in cells
        )
        if len(brokers) > 1:
            ratio = f"{cells[0] / cells[1]:.2f}x" if cells[0] and cells[1] else "-"
            row += f" | {ratio}"
        lines.append(row + " |")
    binds = ", ".join(f"{s.broker} {s.bind_s:.2f} s" for s in report.setups)
    lines += ["", f"Declaring the {args.bindings:,} bindings (pipelined, nowait): {binds}."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=__doc__)
    parser.add_argument("--bindings", type=int, default=DEFAULT_BINDINGS)
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--queues", type=int, default=DEFAULT_QUEUES)
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT_S,
        help="wait up to this long for an idle machine before each run (0: do not wait)",
    )
    parser.add_argument("--no-rabbitmq", action="store_true")
    parser.add_argument("--rabbitmq-url", default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.bindings < 8:
        parser.error("--bindings must be at least 8 (the matched keys need them)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keys = binding_keys(args.bindings)
    report = Report(machine=machine_facts())
    brokers = ["amqpbroker"]
    rabbit, rabbit_note = _find_rabbit(args)
    report.notes.append(f"RabbitMQ: {rabbit_note}")
    with (
        tempfile.TemporaryDirectory(prefix="amqpbench-routing-") as logs,
        OurBroker(Path(logs) / "broker.log", persistent=False) as ours,
    ):
        assert ours.address is not None
        measure_broker("amqpbroker", ours.address, args, keys, report)
    if rabbit is not None:
        brokers.append("RabbitMQ")
        measure_broker("RabbitMQ", rabbit.address, args, keys, report)
    print(render(report, brokers, args))
    for note in report.notes:
        print(f"\n{note}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"routing-{stamp}.json"
    path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    print(f"\nResults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
