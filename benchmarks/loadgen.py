"""The two load-generating processes: one publisher, one consumer (any number of queues).

Each runs in its own process (``multiprocessing`` spawn), talks raw AMQP through
``benchmarks.amqpraw`` and puts exactly one result on a queue: ``("publisher", dict)``,
``("consumer", dict)`` or ``("error", role, text)``.

Clocks: every timestamp is ``time.monotonic_ns()`` (CLOCK_MONOTONIC), which is one clock for
all processes on the machine, so the publisher's send time in a message body can be compared
with the consumer's receive time.

Every loop is bounded: by a message count, by ``time_limit_s`` from the start, and by a
socket timeout (``stall_s``) on every blocking read.
"""

from __future__ import annotations

import socket
import struct
import time
from array import array
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

from pamqp import commands

from . import appshape
from .amqpraw import (
    CLASS_BASIC,
    CLOSE_METHODS,
    FRAME_BODY,
    FRAME_HEAD,
    FRAME_HEADER,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    ID_TEMPLATE,
    METHOD_ACK,
    METHOD_DELIVER,
    METHOD_ID,
    METHOD_NACK,
    RECV_SIZE,
    TIMESTAMP,
    BrokerAddress,
    BrokerClosed,
    RawConnection,
    StampedBatch,
    encode_ack,
    encode_message,
    message_id_offset,
)
from .sysstat import CpuSnapshot

# Publishes per sendall: ampblast's 100, fewer for large bodies so one batch stays near 256 KiB.
MAX_BATCH = 100
BATCH_BYTES = 256 * 1024
# Unconfirmed publishes allowed in flight with confirms (as ampblast).
CONFIRM_WINDOW = 2000
# A process waits this long for the harness's "go" before giving up.
GO_TIMEOUT_S = 30.0
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))


@dataclass(frozen=True)
class PublisherSpec:
    address: BrokerAddress
    exchange: str
    routing_key: str
    count: int
    body_size: int
    persistent: bool
    confirms: bool
    rate: float | None  # messages per second; None = as fast as the broker takes them
    time_limit_s: float
    stall_s: float
    # Every message with its own message_id property (as most applications send them),
    # not one publish repeated byte for byte up to the body.
    distinct: bool = False
    # Celery-shaped publishes (benchmarks.appshape), routed by key over a topic exchange;
    # ``publisher`` numbers the process so that every message id is unique.
    app: bool = False
    publisher: int = 0


@dataclass(frozen=True)
class ConsumerSpec:
    address: BrokerAddress
    queues: tuple[str, ...]
    acks: bool
    prefetch: int
    expected: int  # deliveries to wait for, over all queues
    latency_skip: int  # the first deliveries are warm-up: left out of the latency figures
    time_limit_s: float
    stall_s: float
    broker_pid: int | None  # read its CPU time at the end, when it is ours
    ack_each: bool = False  # one basic.ack(multiple=false) per delivery, else one per read
    app: bool = False  # bodies carry the send time as appshape writes it


def run_publisher(spec: PublisherSpec, ready: Event, go: Event, results: Queue[object]) -> None:
    """Process entry point: connect, say ready, wait for go, publish, report."""
    try:
        results.put(("publisher", _publish(spec, ready, go)))
    except BaseException as exc:  # report anything: the harness must not wait in vain
        results.put(("error", "publisher", f"{type(exc).__name__}: {exc}"))


def run_consumer(spec: ConsumerSpec, ready: Event, results: Queue[object]) -> None:
    """Process entry point: connect, consume, say ready, count deliveries, report."""
    try:
        results.put(("consumer", _consume(spec, ready)))
    except BaseException as exc:
        results.put(("error", "consumer", f"{type(exc).__name__}: {exc}"))


def _publish(spec: PublisherSpec, ready: Event, go: Event) -> dict[str, object]:
    if spec.app:
        return _publish_app(spec, ready, go)
    if spec.body_size < TIMESTAMP.size:
        raise ValueError(f"bodies must hold an {TIMESTAMP.size}-byte timestamp")
    conn = RawConnection.open(spec.address, timeout=spec.stall_s)
    with conn:
        if spec.confirms:
            conn.call(1, commands.Confirm.Select(), commands.Confirm.SelectOk)
        payload = bytes(TIMESTAMP.size) + b"x" * (spec.body_size - TIMESTAMP.size)
        message, body_offset = encode_message(
            conn,
            1,
            spec.exchange,
            spec.routing_key,
            payload,
            spec.persistent,
            ID_TEMPLATE if spec.distinct else None,
        )
        id_offset = message_id_offset(message, body_offset) if spec.distinct else None
        batch = 1 if spec.rate else max(1, min(MAX_BATCH, BATCH_BYTES // len(message)))
        full = StampedBatch(message, body_offset, batch, id_offset)
        ready.set()
        if not go.wait(GO_TIMEOUT_S):
            raise TimeoutError("no go from the harness")
        cpu0 = time.process_time()
        t0 = time.monotonic_ns()
        deadline = t0 + int(spec.time_limit_s * 1e9)
        tracker = _ConfirmTracker(conn) if spec.confirms else None
        sent = 0
        interval_ns = int(1e9 / spec.rate) if spec.rate else 0
        while sent < spec.count:
            now = time.monotonic_ns()
            if now > deadline:
                raise TimeoutError(f"time limit reached after {sent} of {spec.count} publishes")
            if interval_ns:
                wait_ns = t0 + sent * interval_ns - now
                if wait_ns > 0:
                    time.sleep(wait_ns / 1e9)
            k = min(batch, spec.count - sent)
            chunk = full if k == batch else StampedBatch(message, body_offset, k, id_offset)
            conn.send(chunk.stamp(time.monotonic_ns(), sent))
            sent += k
            if tracker is not None:
                tracker.drain(block=False)
                while sent - tracker.confirmed > CONFIRM_WINDOW:
                    tracker.drain(block=True)
        return _finish(tracker, spec.count, sent, deadline, t0, cpu0)


def _finish(
    tracker: _ConfirmTracker | None, count: int, sent: int, deadline: int, t0: int, cpu0: float
) -> dict[str, object]:
    """After the last send: wait for the outstanding confirms, and the publisher's figures."""
    t_sent = time.monotonic_ns()
    if tracker is not None:
        while tracker.confirmed < count:
            if time.monotonic_ns() > deadline:
                raise TimeoutError(f"{tracker.confirmed} of {count} confirmed in time")
            tracker.drain(block=True)
    return {
        "published": sent,
        "t_start_ns": t0,
        "t_sent_ns": t_sent,
        "t_confirmed_ns": time.monotonic_ns(),
        "cpu_s": time.process_time() - cpu0,
    }


def _publish_app(spec: PublisherSpec, ready: Event, go: Event) -> dict[str, object]:
    """Celery-shaped publishes, 100 per ``sendall``, each with its own ids and body."""
    conn = RawConnection.open(spec.address, timeout=spec.stall_s)
    with conn:
        if spec.confirms:
            conn.call(1, commands.Confirm.Select(), commands.Confirm.SelectOk)
        pool = appshape.templates(
            1, spec.exchange, conn.frame_max, spec.persistent, seed=spec.publisher
        )
        batches = appshape.AppBatches(pool, spec.publisher)
        ready.set()
        if not go.wait(GO_TIMEOUT_S):
            raise TimeoutError("no go from the harness")
        cpu0 = time.process_time()
        t0 = time.monotonic_ns()
        deadline = t0 + int(spec.time_limit_s * 1e9)
        tracker = _ConfirmTracker(conn) if spec.confirms else None
        sent = 0
        while sent < spec.count:
            if time.monotonic_ns() > deadline:
                raise TimeoutError(f"time limit reached after {sent} of {spec.count} publishes")
            k = min(MAX_BATCH, spec.count - sent)
            conn.send(batches.build(sent, k, time.monotonic_ns()))
            sent += k
            if tracker is not None:
                tracker.drain(block=False)
                while sent - tracker.confirmed > CONFIRM_WINDOW:
                    tracker.drain(block=True)
        return _finish(tracker, spec.count, sent, deadline, t0, cpu0)


class _ConfirmTracker:
    """Reads basic.ack / basic.nack confirms from the publisher's socket (struct only)."""

    def __init__(self, conn: RawConnection) -> None:
        self.conn = conn
        self.confirmed = 0

    def drain(self, block: bool) -> None:
        conn = self.conn
        try:
            data = conn.sock.recv(RECV_SIZE, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionError("the broker closed the publisher's connection")
        buf = conn.buf
        buf += data
        pos = 0
        while len(buf) - pos >= 7:
            ftype, _, size = FRAME_HEAD.unpack_from(buf, pos)
            if len(buf) - pos < size + FRAME_OVERHEAD:
                break
            if ftype == FRAME_METHOD:
                ids = METHOD_ID.unpack_from(buf, pos + 7)
                if ids[0] == CLASS_BASIC and ids[1] in (METHOD_ACK, METHOD_NACK):
                    if ids[1] == METHOD_NACK:
                        raise BrokerClosed("the broker nacked a publish")
                    (tag,) = _TAG.unpack_from(buf, pos + 11)
                    self.confirmed = max(self.confirmed, tag)
                elif ids in CLOSE_METHODS:
                    raise BrokerClosed(f"the broker closed the publisher: {ids}")
            pos += size + FRAME_OVERHEAD
        del buf[:pos]


def _consume(spec: ConsumerSpec, ready: Event) -> dict[str, object]:
    conn = RawConnection.open(spec.address, timeout=spec.stall_s, channels=len(spec.queues))
    with conn:
        for index, queue in enumerate(spec.queues):
            channel = index + 1
            if spec.acks:
                qos = commands.Basic.Qos(prefetch_count=spec.prefetch)
                conn.call(channel, qos, commands.Basic.QosOk)
            consume = commands.Basic.Consume(
                queue=queue, consumer_tag=f"c{index}", no_ack=not spec.acks
            )
            conn.call(channel, consume, commands.Basic.ConsumeOk)
        cpu0 = time.process_time()
        ready.set()
        result = _count_deliveries(conn, spec)
        result["cpu_s"] = time.process_time() - cpu0
        result["machine_end"] = CpuSnapshot.take(spec.broker_pid).as_dict()
    latencies: array[int] = result.pop("latencies")  # type: ignore[assignment]
    # Raw samples: the harness merges those of several consumers before summarizing.
    result["latency_samples"] = latencies[spec.latency_skip :].tobytes()
    return result


def _count_deliveries(conn: RawConnection, spec: ConsumerSpec) -> dict[str, object]:
    """The consumer's hot loop: scan frame headers, count deliveries, ack, time bodies.

    Hot path on purpose: no pamqp, one ``recv`` and at most one ack per channel per
    wake-up; a body's timestamp is compared with the time that ``recv`` returned.
    """
    buf = conn.buf
    sock = conn.sock
    expected = spec.expected
    acks = spec.acks
    latencies: array[int] = array("q")
    record = latencies.append
    unpack_head = FRAME_HEAD.unpack_from
    unpack_ids = METHOD_ID.unpack_from
    unpack_tag = _TAG.unpack_from
    unpack_ts = TIMESTAMP.unpack_from
    ack_each = spec.ack_each
    each_tags: list[tuple[int, int]] = []
    app = spec.app
    stamp_at = 7 + appshape.STAMP_OFFSET
    stamp_end = stamp_at + appshape.STAMP_DIGITS
    awaiting_body: set[int] = set()  # channels whose next body frame starts a message
    last_tag: dict[int, int] = {}
    got = 0
    t_first = 0
    t_last = 0
    deadline = time.monotonic_ns() + int(spec.time_limit_s * 1e9)
    body_frame, header_frame, method_frame = FRAME_BODY, FRAME_HEADER, FRAME_METHOD
    overhead = FRAME_OVERHEAD
    pos = 0
    while got < expected:
        try:
            data = sock.recv(RECV_SIZE)
        except TimeoutError:
            raise TimeoutError(
                f"stalled: no delivery for {spec.stall_s:.0f} s after {got} of {expected}"
            ) from None
        now = time.monotonic_ns()
        if not data:
            raise ConnectionError(f"the broker closed the consumer after {got} of {expected}")
        if now > deadline:
            raise TimeoutError(f"time limit reached after {got} of {expected} deliveries")
        buf += data
        end = len(buf)
        while end - pos >= 7:
            ftype, channel, size = unpack_head(buf, pos)
            if end - pos < size + overhead:
                break
            if ftype == body_frame:
                if channel in awaiting_body:
                    awaiting_body.discard(channel)
                    if app:
                        record(now - int(buf[pos + stamp_at : pos + stamp_end]))
                    else:
                        record(now - unpack_ts(buf, pos + 7)[0])
            elif ftype == header_frame:
                awaiting_body.add(channel)
            elif ftype == method_frame:
                ids = unpack_ids(buf, pos + 7)
                if ids == _DELIVER:
                    got += 1
                    if acks:
                        tag_at = pos + 12 + buf[pos + 11]  # after the consumer-tag shortstr
                        if ack_each:
                            each_tags.append((channel, unpack_tag(buf, tag_at)[0]))
                        else:
                            last_tag[channel] = unpack_tag(buf, tag_at)[0]
                elif ids in CLOSE_METHODS:
                    raise BrokerClosed(f"the broker closed the consumer: {ids}")
            pos += size + overhead
        if pos:
            del buf[:pos]
            pos = 0
        if not t_first and got:
            t_first = now
        t_last = now
        if last_tag:
            sock.sendall(b"".join(encode_ack(ch, tag) for ch, tag in last_tag.items()))
            last_tag.clear()
        elif each_tags:
            # One ack per message, as applications ack (all written in one send).
            sock.sendall(b"".join(encode_ack(ch, tag, False) for ch, tag in each_tags))
            each_tags.clear()
    return {
        "delivered": got,
        "t_first_ns": t_first,
        "t_last_ns": t_last,
        "latencies": latencies,
    }


def latency_summary(samples: array[int]) -> dict[str, float] | None:
    """Nearest-rank percentiles and the maximum, in milliseconds."""
    if not samples:
        return None
    ordered = sorted(samples)
    last = len(ordered) - 1
    summary = {name: ordered[round(q * last)] / 1e6 for name, q in PERCENTILES}
    summary["max"] = ordered[last] / 1e6
    summary["samples"] = float(len(ordered))
    return summary


_TAG = struct.Struct(">Q")
_DELIVER = (CLASS_BASIC, METHOD_DELIVER)
