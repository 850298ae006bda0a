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
from array import array
from dataclasses import asdict, dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

from pamqp import commands

from . import appshape
from .amqpraw import BrokerAddress, RawConnection
from .loadgen import (
    ConsumerSpec,
    PublisherSpec,
    latency_summary,
    run_consumer,
    run_publisher,
)
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
    broker_cpu_s: float | None = None  # the broker process's CPU time during the run
    cpu_cores: dict[str, float | None] = field(default_factory=dict)
    profiled: bool = False
    background_cores: float = 0.0  # machine busy just before the run (other processes)
    broker_source: str | None = None  # ours: fingerprint of the sources it started from
    attempts: int = 1  # > 1: earlier attempts were discarded as disturbed (see ``discarded``)
    discarded: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    @property
    def broker_us_per_message(self) -> float | None:
        """Broker CPU time per publish (per declare in ``fairness``), in microseconds."""
        if self.broker_cpu_s is None or not self.published:
            return None
        return self.broker_cpu_s / self.published * 1e6

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
    if scenario.fairness:
        from .fairness import measure_fairness  # imports this module: not at the top

        try:
            measure_fairness(scenario, target, time_limit_s, result)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        return result
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
        self.exchange_type = "topic" if scenario.app else "fanout"
        self.exchange = f"{prefix}.{self.exchange_type}" if scenario.queues > 1 else ""
        if scenario.queues > 1:
            self.queues = tuple(f"{prefix}.q{i}" for i in range(scenario.queues))
        else:
            self.queues = (prefix,)
        self.durable = scenario.persistent
        # Topic (app scenarios): queue i is bound by the pattern of task family i.
        self.binding_keys = tuple(
            appshape.binding_key(i) if scenario.app else "" for i in range(len(self.queues))
        )

    @property
    def routing_key(self) -> str:
        return "" if self.exchange else self.queues[0]


def _declare(address: BrokerAddress, scenario: Scenario, names: _Names) -> None:
    with RawConnection.open(address, timeout=STALL_S) as conn:
        if names.exchange:
            conn.call(
                1,
                commands.Exchange.Declare(
                    exchange=names.exchange,
                    exchange_type=names.exchange_type,
                    durable=names.durable,
                ),
                commands.Exchange.DeclareOk,
            )
        for name, key in zip(names.queues, names.binding_keys, strict=True):
            conn.call(
                1,
                commands.Queue.Declare(queue=name, durable=names.durable),
                commands.Queue.DeclareOk,
            )
            conn.call(1, commands.Queue.Purge(queue=name), commands.Queue.PurgeOk)
            if names.exchange:
                bind = commands.Queue.Bind(queue=name, exchange=names.exchange, routing_key=key)
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
    go = ctx.Event()
    consumer_specs = _consumer_specs(scenario, target, names, time_limit_s)
    publisher_specs = [
        PublisherSpec(
            address=target.address,
            exchange=names.exchange,
            routing_key=names.routing_key,
            count=count,
            body_size=scenario.body_size,
            persistent=scenario.persistent,
            confirms=scenario.confirms,
            rate=scenario.rate,
            time_limit_s=time_limit_s,
            stall_s=STALL_S,
            distinct=scenario.distinct,
            app=scenario.app,
            publisher=index,
        )
        for index, count in enumerate(_shares(scenario.messages, scenario.publishers))
    ]
    processes: list[BaseProcess] = []
    try:
        for spec in consumer_specs:
            ready = ctx.Event()
            consumer = ctx.Process(target=run_consumer, args=(spec, ready, results), daemon=True)
            consumer.start()
            processes.append(consumer)
            _wait_ready(ready, results, processes)
        for pub_spec in publisher_specs:
            ready = ctx.Event()
            publisher = ctx.Process(
                target=run_publisher, args=(pub_spec, ready, go, results), daemon=True
            )
            publisher.start()
            processes.append(publisher)
            _wait_ready(ready, results, processes)
        start = CpuSnapshot.take(target.pid)
        go.set()
        reports = _collect(results, len(processes), time_limit_s + MARGIN_S)
        _fill(result, reports["publisher"], reports["consumer"], start)
    finally:
        for process in processes:
            _stop(process)
        results.close()
        results.join_thread()


def _shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _consumer_specs(
    scenario: Scenario, target: Target, names: _Names, time_limit_s: float
) -> list[ConsumerSpec]:
    """One spec per consumer process; the queues are dealt out among them in turn."""
    if scenario.app:
        # Each publisher numbers its messages from 0; message i goes to route_of(i).
        per_queue = [0] * len(names.queues)
        for count in _shares(scenario.messages, scenario.publishers):
            for route, n in enumerate(appshape.per_route(count)):
                per_queue[route] += n
    else:
        per_queue = [scenario.messages] * len(names.queues)
    specs = []
    for index in range(scenario.consumers):
        mine = range(index, len(names.queues), scenario.consumers)
        specs.append(
            ConsumerSpec(
                address=target.address,
                queues=tuple(names.queues[i] for i in mine),
                acks=scenario.acks,
                prefetch=scenario.prefetch,
                expected=sum(per_queue[i] for i in mine),
                # Paced runs: leave out the first half second as warm-up.
                latency_skip=round(scenario.rate / 2) if scenario.rate else 0,
                time_limit_s=time_limit_s,
                stall_s=STALL_S,
                broker_pid=target.pid,
                ack_each=scenario.ack_each,
                app=scenario.app,
            )
        )
    return specs


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


def _collect(
    results: Queue[object], expected: int, timeout_s: float
) -> dict[str, list[dict[str, object]]]:
    """The reports of ``expected`` client processes, by role."""
    deadline = time.monotonic() + timeout_s
    reports: dict[str, list[dict[str, object]]] = {"publisher": [], "consumer": []}
    got = 0
    while got < expected:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no result from the clients in {timeout_s:.0f} s")
        try:
            report = results.get(timeout=remaining)
        except queue.Empty:
            continue
        if not isinstance(report, tuple) or report[0] == "error":
            raise RuntimeError(_describe(report))
        reports[report[0]].append(report[1])
        got += 1
    return reports


def _describe(report: object) -> str:
    if isinstance(report, tuple) and len(report) == 3 and report[0] == "error":
        return f"{report[1]}: {report[2]}"
    return f"unexpected report {report!r}"


def _fill(
    result: Measurement,
    pubs: list[dict[str, object]],
    conses: list[dict[str, object]],
    start: CpuSnapshot,
) -> None:
    def num(data: dict[str, object], key: str) -> float:
        return float(str(data[key]))

    t0 = min(num(pub, "t_start_ns") for pub in pubs)
    result.published = sum(int(num(pub, "published")) for pub in pubs)
    result.delivered = sum(int(num(cons, "delivered")) for cons in conses)
    result.seconds = (max(num(cons, "t_last_ns") for cons in conses) - t0) / 1e9
    result.msgs_per_s = result.delivered / result.seconds if result.seconds > 0 else 0.0
    sending = (max(num(pub, "t_sent_ns") for pub in pubs) - t0) / 1e9
    result.publish_msgs_per_s = result.published / sending if sending > 0 else 0.0
    samples: array[int] = array("q")
    for cons in conses:
        raw = cons.get("latency_samples")
        if isinstance(raw, bytes):
            samples.frombytes(raw)
    result.latency_ms = latency_summary(samples)
    # The consumer that finished last took the closing CPU snapshot of the run.
    ends = []
    for cons in conses:
        end_data = cons["machine_end"]
        assert isinstance(end_data, dict)
        ends.append(CpuSnapshot.from_dict(end_data))
    end = max(ends, key=lambda snapshot: snapshot.at_ns)
    window = (end.at_ns - start.at_ns) / 1e9
    if window <= 0:
        return
    pub_cpu = sum(num(pub, "cpu_s") for pub in pubs)
    cons_cpu = sum(num(cons, "cpu_s") for cons in conses)
    busy = end.machine_busy_s - start.machine_busy_s
    fill_cpu(result, window, busy, pub_cpu, cons_cpu, start.broker_s, end.broker_s)


def fill_cpu(
    result: Measurement,
    window: float,
    busy: float,
    pub_cpu: float,
    cons_cpu: float,
    broker_start: float | None,
    broker_end: float | None,
) -> None:
    """The CPU figures of a run from its counters (seconds over a ``window`` of seconds)."""
    clients = pub_cpu + cons_cpu
    cores: dict[str, float | None] = {
        "machine": busy / window,
        "publisher": pub_cpu / window,
        "consumer": cons_cpu / window,
    }
    if broker_end is not None and broker_start is not None:
        broker = broker_end - broker_start  # from /proc/PID/stat
        result.broker_cpu_s = broker
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
