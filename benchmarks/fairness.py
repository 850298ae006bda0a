"""The ``fairness`` scenario: does one busy connection stall everybody else?

One connection pipelines ``scenario.messages`` durable ``queue.declare``s (all written in one
go, then the declare-oks counted); meanwhile a second connection declares its own queue
passively, one round trip at a time, and times each. The report's latency is those round
trips (p50 / p99 / max); the rate is declares per second of the first connection. Both
clients are threads of the harness process (they mostly wait in ``recv``).

Every declared queue is deleted afterwards (pipelined too), so RabbitMQ keeps nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from array import array

from pamqp import commands, frame

from .amqpraw import (
    CLOSE_METHODS,
    FRAME_HEAD,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    METHOD_ID,
    RawConnection,
)
from .loadgen import latency_summary
from .runner import STALL_S, Measurement, Target, fill_cpu
from .scenarios import Scenario
from .sysstat import CpuSnapshot

DECLARE_OK = (50, 11)
DELETE_OK = (50, 41)
PIPELINE_BYTES = 256 * 1024
# The prober keeps going this long after the flood (and starts this long before it).
MARGIN_S = 0.2


def measure_fairness(
    scenario: Scenario, target: Target, time_limit_s: float, result: Measurement
) -> None:
    prefix = f"bench.fairness.{os.getpid()}.{time.monotonic_ns() % 10**9}"
    names = [f"{prefix}.q{i}" for i in range(scenario.messages)]
    probe_name = f"{prefix}.probe"
    flood = RawConnection.open(target.address, timeout=STALL_S)
    # The prober's reads wait as long as the run may last: a stall is what it measures.
    prober = RawConnection.open(target.address, timeout=time_limit_s)
    try:
        prober.call(1, commands.Queue.Declare(queue=probe_name), commands.Queue.DeclareOk)
        declares = [
            frame.marshal(commands.Queue.Declare(queue=name, durable=True), 1) for name in names
        ]
        samples: array[int] = array("q")
        stop = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=_probe, args=(prober, probe_name, stop, samples, failure, time_limit_s)
        )
        thread.start()
        try:
            time.sleep(MARGIN_S)
            start = CpuSnapshot.take(target.pid)
            cpu0 = time.process_time()
            t0 = time.monotonic_ns()
            _pipeline(flood, declares, DECLARE_OK, time_limit_s)
            t1 = time.monotonic_ns()
            end = CpuSnapshot.take(target.pid)
            cpu = time.process_time() - cpu0
            time.sleep(MARGIN_S)
        finally:
            stop.set()
            thread.join(time_limit_s)
        if failure:
            raise failure[0]
        result.published = result.delivered = len(names)
        result.seconds = (t1 - t0) / 1e9
        result.msgs_per_s = len(names) / result.seconds if result.seconds > 0 else 0.0
        result.publish_msgs_per_s = result.msgs_per_s
        result.latency_ms = latency_summary(samples)
        window = (end.at_ns - start.at_ns) / 1e9
        if window > 0:
            # Both clients run in this process: their CPU is counted as the publisher's.
            busy = end.machine_busy_s - start.machine_busy_s
            fill_cpu(result, window, busy, cpu, 0.0, start.broker_s, end.broker_s)
    finally:
        with contextlib.suppress(Exception):
            deletes = [frame.marshal(commands.Queue.Delete(queue=name), 1) for name in names]
            _pipeline(flood, deletes, DELETE_OK, time_limit_s)
            prober.call(1, commands.Queue.Delete(queue=probe_name), commands.Queue.DeleteOk)
        flood.close()
        prober.close()


def _pipeline(
    conn: RawConnection, methods: list[bytes], reply: tuple[int, int], time_limit_s: float
) -> None:
    """Send every method without waiting (a thread writes), count ``reply`` frames here."""
    data = b"".join(methods)
    failure: list[BaseException] = []

    def send() -> None:
        try:
            for at in range(0, len(data), PIPELINE_BYTES):
                conn.sock.sendall(data[at : at + PIPELINE_BYTES])
        except BaseException as exc:
            failure.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        _await_replies(conn, reply, len(methods), time_limit_s)
    finally:
        sender.join(time_limit_s)
    if failure:
        raise failure[0]


def _await_replies(
    conn: RawConnection, reply: tuple[int, int], count: int, time_limit_s: float
) -> None:
    """Read frames until ``count`` ``reply`` methods came (struct only, bounded in time)."""
    seen = 0
    deadline = time.monotonic() + time_limit_s
    buf = conn.buf
    while True:
        pos = 0
        while len(buf) - pos >= 7:
            ftype, _, size = FRAME_HEAD.unpack_from(buf, pos)
            if len(buf) - pos < size + FRAME_OVERHEAD:
                break
            if ftype == FRAME_METHOD:
                ids = METHOD_ID.unpack_from(buf, pos + 7)
                if ids == reply:
                    seen += 1
                elif ids in CLOSE_METHODS:
                    raise RuntimeError(f"the broker closed the connection: {ids}")
            pos += size + FRAME_OVERHEAD
        del buf[:pos]
        if seen >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{seen} of {count} replies in time")
        conn.fill()


def _probe(
    conn: RawConnection,
    name: str,
    stop: threading.Event,
    samples: array[int],
    failure: list[BaseException],
    time_limit_s: float,
) -> None:
    """Passive declares of our own queue, one round trip at a time, until told to stop."""
    request = frame.marshal(commands.Queue.Declare(queue=name, passive=True), 1)
    deadline = time.monotonic() + time_limit_s
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            t0 = time.monotonic_ns()
            conn.sock.sendall(request)
            _await_replies(conn, DECLARE_OK, 1, time_limit_s)
            samples.append(time.monotonic_ns() - t0)
    except BaseException as exc:
        failure.append(exc)
