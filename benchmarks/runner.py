"""One measurement: one scenario against one broker, with its own queues.

Declares the queues (and the fanout exchange), starts the consumer process, waits until it
consumes, starts the publisher process, takes the CPU counters, says go, collects both
results, and always stops both processes and deletes what it declared.

Error handling: nothing raises out of ``measure``; a failure of either side (stall, time
limit, broker closing the connection) becomes ``Measurement.error``. Resource handling:
both client processes are joined, then terminated, then killed, each step bounded in time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

from pamqp import commands

from .amqpraw import BrokerAddress, RawConnection
from .loadgen import ConsumerSpec, PublisherSpec, run_consumer, run_publisher
from .scenarios import Scenario
from .sysstat import CpuSnapshot

OURS = "amqpbroker"
RABBITMQ = "rabbitmq"
# Socket reads that wait longer than this mean the flow stopped.
STALL_S = 10.0
# Spawning a client process and logging in must take less than this.
STARTUP_S = 30.0
JOIN_S = 5.0
POLL_S = 0.05
# The harness waits this much longer than the clients' own time limit.
MARGIN_S = 30.0
# Tolerance when comparing machine-wide and per-process CPU time (a few clock ticks).
TICK_SLACK_S = 0.05


@dataclass
class Measurement:
    broker: str  # OURS or RABBITMQ
    scenario: str
    rep: int
    messages: int  # publishes asked for
    published: int = 0
    delivered: int = 0
    seconds: float = 0.0  # publisher's first send to the consumer's last delivery
    msgs_per_s: float = 0.0  # deliveries per second over ``seconds``
    publish_msgs_per_s: float = 0.0  # publishes per second, publisher side only
    latency_ms: dict[str, float] | None = None
    cpu_cores: dict[str, float | None] = field(default_factory=dict)
    profiled: bool = False
    background_cores: float = 0.0  # machine busy just before the run (other processes)
    broker_source: str | None = None  # ours: fingerprint of the sources it started from
    attempts: int = 1  # > 1: earlier attempts were discarded as disturbed (see ``discarded``)
    discarded: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    @property
    def other_cores(self) -> float | None:
        """CPU used during the run by processes other than broker and clients, if known."""
        return self.cpu_cores.get("other")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """A broker to measure: its name, address, and its pid when it is our subprocess."""

    name: str
    address: BrokerAddress
    pid: int | None = None


def measure(
    scenario: Scenario, target: Target, rep: int, time_limit_s: float, profiled: bool = False
) -> Measurement:
    result = Measurement(target.name, scenario.name, rep, scenario.messages, profiled=profiled)
    names = _Names(scenario, rep)
    try:
        _declare(target.address, scenario, names)
        _run_clients(scenario, target, names, time_limit_s, result)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        _delete(target.address, names)
    return result


class _Names:
    """Queue and exchange names unique to one measurement (RabbitMQ is long-lived)."""

    def __init__(self, scenario: Scenario, rep: int) -> None:
        prefix = f"bench.{scenario.name}.{os.getpid()}.{rep}.{time.monotonic_ns() % 10**9}"
        self.exchange = f"{prefix}.fanout" if scenario.queues > 1 else ""
        if scenario.queues > 1:
            self.queues = tuple(f"{prefix}.q{i}" for i in range(scenario.queues))
        else:
            self.queues = (prefix,)
        self.durable = scenario.persistent

    @property
    def routing_key(self) -> str:
        return "" if self.exchange else self.queues[0]


def _declare(address: BrokerAddress, scenario: Scenario, names: _Names) -> None:
    with RawConnection.open(address, timeout=STALL_S) as conn:
        if names.exchange:
            conn.call(
                1,
                commands.Exchange.Declare(exchange=names.exchange, exchange_type="fanout"),
                commands.Exchange.DeclareOk,
            )
        for name in names.queues:
            conn.call(
                1,
                commands.Queue.Declare(queue=name, durable=names.durable),
                commands.Queue.DeclareOk,
            )
            conn.call(1, commands.Queue.Purge(queue=name), commands.Queue.PurgeOk)
            if names.exchange:
                bind = commands.Queue.Bind(queue=name, exchange=names.exchange, routing_key="")
                conn.call(1, bind, commands.Queue.BindOk)


def _delete(address: BrokerAddress, names: _Names) -> None:
    """Best effort: our broker is stopped anyway; RabbitMQ must not keep our queues."""
    with contextlib.suppress(Exception), RawConnection.open(address, timeout=STALL_S) as conn:
        for name in names.queues:
            conn.call(1, commands.Queue.Delete(queue=name), commands.Queue.DeleteOk)
        if names.exchange:
            delete = commands.Exchange.Delete(exchange=names.exchange)
            conn.call(1, delete, commands.Exchange.DeleteOk)


def _run_clients(
    scenario: Scenario, target: Target, names: _Names, time_limit_s: float, result: Measurement
) -> None:
    ctx = multiprocessing.get_context("spawn")
    results: Queue[object] = ctx.Queue()
    consumer_ready, publisher_ready, go = ctx.Event(), ctx.Event(), ctx.Event()
    consumer_spec = ConsumerSpec(
        address=target.address,
        queues=names.queues,
        acks=scenario.acks,
        prefetch=scenario.prefetch,
        expected=scenario.deliveries,
        # Paced runs: leave out the first half second as warm-up.
        latency_skip=round(scenario.rate / 2) if scenario.rate else 0,
        time_limit_s=time_limit_s,
        stall_s=STALL_S,
        broker_pid=target.pid,
    )
    publisher_spec = PublisherSpec(
        address=target.address,
        exchange=names.exchange,
        routing_key=names.routing_key,
        count=scenario.messages,
        body_size=scenario.body_size,
        persistent=scenario.persistent,
        confirms=scenario.confirms,
        rate=scenario.rate,
        time_limit_s=time_limit_s,
        stall_s=STALL_S,
        distinct=scenario.distinct,
    )
    processes: list[BaseProcess] = []
    try:
        consumer = ctx.Process(
            target=run_consumer, args=(consumer_spec, consumer_ready, results), daemon=True
        )
        consumer.start()
        processes.append(consumer)
        _wait_ready(consumer_ready, results, processes)
        publisher = ctx.Process(
            target=run_publisher,
            args=(publisher_spec, publisher_ready, go, results),
            daemon=True,
        )
        publisher.start()
        processes.append(publisher)
        _wait_ready(publisher_ready, results, processes)
        start = CpuSnapshot.take(target.pid)
        go.set()
        reports = _collect(results, time_limit_s + MARGIN_S)
        _fill(result, reports["publisher"], reports["consumer"], start)
    finally:
        for process in processes:
            _stop(process)
        results.close()
        results.join_thread()


def _wait_ready(event: Event, results: Queue[object], processes: list[BaseProcess]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while not event.wait(POLL_S):
        with contextlib.suppress(queue.Empty):
            report = results.get_nowait()
            raise RuntimeError(_describe(report))
        dead = [p for p in processes if not p.is_alive()]
        if dead:
            raise RuntimeError(f"a client process exited with {dead[0].exitcode} at startup")
        if time.monotonic() > deadline:
            raise TimeoutError(f"a client process was not ready in {STARTUP_S:.0f} s")


def _collect(results: Queue[object], timeout_s: float) -> dict[str, dict[str, object]]:
    deadline = time.monotonic() + timeout_s
    reports: dict[str, dict[str, object]] = {}
    while len(reports) < 2:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no result from the clients in {timeout_s:.0f} s")
        try:
            report = results.get(timeout=remaining)
        except queue.Empty:
            continue
        if not isinstance(report, tuple) or report[0] == "error":
            raise RuntimeError(_describe(report))
        reports[report[0]] = report[1]
    return reports


def _describe(report: object) -> str:
    if isinstance(report, tuple) and len(report) == 3 and report[0] == "error":
        return f"{report[1]}: {report[2]}"
    return f"unexpected report {report!r}"


def _fill(
    result: Measurement, pub: dict[str, object], cons: dict[str, object], start: CpuSnapshot
) -> None:
    def num(data: dict[str, object], key: str) -> float:
        return float(str(data[key]))

    t0 = num(pub, "t_start_ns")
    result.published = int(num(pub, "published"))
    result.delivered = int(num(cons, "delivered"))
    result.seconds = (num(cons, "t_last_ns") - t0) / 1e9
    result.msgs_per_s = result.delivered / result.seconds if result.seconds > 0 else 0.0
    sending = (num(pub, "t_sent_ns") - t0) / 1e9
    result.publish_msgs_per_s = result.published / sending if sending > 0 else 0.0
    latency = cons.get("latency_ms")
    result.latency_ms = latency if isinstance(latency, dict) else None
    end_data = cons["machine_end"]
    assert isinstance(end_data, dict)
    end = CpuSnapshot.from_dict(end_data)
    window = (end.at_ns - start.at_ns) / 1e9
    if window <= 0:
        return
    clients = num(pub, "cpu_s") + num(cons, "cpu_s")
    busy = end.machine_busy_s - start.machine_busy_s
    cores: dict[str, float | None] = {
        "machine": busy / window,
        "publisher": num(pub, "cpu_s") / window,
        "consumer": num(cons, "cpu_s") / window,
    }
    if end.broker_s is not None and start.broker_s is not None:
        broker = end.broker_s - start.broker_s  # from /proc/PID/stat
        cores["broker"] = broker / window
        cores["other"] = max(0.0, busy - broker - clients) / window
    else:  # broker process not visible: machine minus clients, an upper bound
        broker = 0.0
        cores["broker"] = (busy - clients) / window
        cores["other"] = None
    if busy < broker + clients - TICK_SLACK_S:
        # /proc/stat samples user/system time at the tick but measures idle time exactly,
        # so a mostly idle machine with short bursts (the paced run) looks less busy than
        # its processes: the machine-wide figures mean nothing then.
        cores["machine"] = cores["other"] = None
    result.cpu_cores = cores


def _stop(process: BaseProcess) -> None:
    process.join(JOIN_S)
    if process.is_alive():
        process.terminate()
        process.join(JOIN_S)
    if process.is_alive():
        process.kill()
        process.join(JOIN_S)
