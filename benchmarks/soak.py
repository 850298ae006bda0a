"""``python -m benchmarks.soak``: a broker under pressure for a long time (issue 15).

Mixed traffic against ``amqpbroker`` on a small data disk (a tmpfs when we may mount
one): publishers of persistent messages in confirm mode, consumers that stall (stop
reading and acking) and resume, so backlogs build up past the memory watermark and
the publishers are blocked, then drain.  Every second it samples the broker's
resident size, whether publishers are blocked, and the publish-to-delivery latency.
At the end it drains everything and fails (exit 1) if any confirmed message never
arrived.  Writes soak-*.json and, with matplotlib, soak-*.png (RSS and latency over
time) into ``--out``.

    python -m benchmarks.soak                 # 30 minutes
    python -m benchmarks.soak --duration 20   # a smoke run

Resource handling: the broker, its threads and the tmpfs are stopped and unmounted
on every exit path; threads stop within a second of the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika

from .brokers import OurBroker

QUEUE = "soak"
BODY_PAD = b"p" * 4096
# The memory watermark: the backlog of a stall (~1,000 messages of 4 KiB) passes it.
MEMORY_MARK = 4_000_000
DISK_FREE_LIMIT = "20MB"
PUBLISHERS = 2
CONSUMERS = 2
# Consumers read for RUN seconds, then all stall for STALL seconds (an alarm each time).
RUN_S, STALL_S = 8.0, 6.0


def _total_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def small_disk(root: Path, megabytes: int) -> Iterator[tuple[Path, str]]:
    """A tmpfs of ``megabytes`` (or a plain directory when mounting is not allowed)."""
    point = root / "soak-disk"
    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(point)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if done.returncode != 0:
        yield point, f"plain directory (no tmpfs: {done.stderr.strip()})"
        return
    try:
        yield point, f"{megabytes} MB tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


class Shared:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.draining = threading.Event()
        self.confirmed: set[int] = set()
        self.received: set[int] = set()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.next_id = 0

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id


def publisher(port: int, shared: Shared, index: int) -> None:
    params = pika.ConnectionParameters("127.0.0.1", port, blocked_connection_timeout=300)
    try:
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        channel.confirm_delivery()
        while not shared.stop.is_set():
            ident = shared.new_id()
            body = json.dumps({"id": ident, "t": time.time()}).encode() + b"\n" + BODY_PAD
            channel.basic_publish("", QUEUE, body, pika.BasicProperties(delivery_mode=2))
            with shared.lock:  # returned without an exception: confirmed
                shared.confirmed.add(ident)
        connection.close()
    except Exception as exc:  # reported, and the run fails
        shared.errors.append(f"publisher {index}: {exc!r}")


def consumer(port: int, shared: Shared, index: int) -> None:
    try:
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        channel = connection.channel()
        channel.basic_qos(prefetch_count=500)

        def take(ch: Any, method: Any, _props: Any, body: bytes) -> None:
            head = json.loads(body.split(b"\n", 1)[0])
            with shared.lock:
                shared.received.add(head["id"])
                shared.latencies.append(time.time() - head["t"])
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(QUEUE, take)
        while not (shared.stop.is_set() and not shared.draining.is_set()):
            if shared.draining.is_set() or time.monotonic() % (RUN_S + STALL_S) < RUN_S:
                connection.process_data_events(time_limit=0.2)
            else:
                time.sleep(0.2)  # stalled: nothing read, nothing acked
        connection.close()
    except Exception as exc:
        shared.errors.append(f"consumer {index}: {exc!r}")


def run(duration: float, out: Path, disk_mb: int, plot: bool) -> int:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with small_disk(Path(tempfile.mkdtemp(prefix="soak-")), disk_mb) as (disk, disk_kind):
        fraction = f"{MEMORY_MARK / _total_memory():.6f}"
        broker = OurBroker(
            out / f"soak-{stamp}.log", persistent=True, sync="normal", data_dir=disk / "data",
            extra_args=("--disk-free-limit", DISK_FREE_LIMIT, "--memory-high-watermark", fraction),
        )  # fmt: skip
        with broker:
            assert broker.address is not None
            port = broker.address.port
            setup = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            setup.channel().queue_declare(QUEUE, durable=True)
            setup.close()
            shared = Shared()
            threads = [
                threading.Thread(target=publisher, args=(port, shared, i), daemon=True)
                for i in range(PUBLISHERS)
            ] + [
                threading.Thread(target=consumer, args=(port, shared, i), daemon=True)
                for i in range(CONSUMERS)
            ]
            for thread in threads:
                thread.start()
            samples = _sample(broker.pid, shared, duration)
            shared.draining.set()
            shared.stop.set()
            for thread in threads[:PUBLISHERS]:
                thread.join(timeout=330)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with shared.lock:
                    if shared.confirmed <= shared.received:
                        break
                time.sleep(0.2)
            shared.draining.clear()
            for thread in threads[PUBLISHERS:]:
                thread.join(timeout=10)
            final_rss = _rss(broker.pid)
        log = broker.log_path.read_text(errors="replace")
    lost = sorted(shared.confirmed - shared.received)
    report = {
        "duration_s": duration,
        "disk": disk_kind,
        "memory_mark": MEMORY_MARK,
        "confirmed": len(shared.confirmed),
        "received": len(shared.received),
        "lost": len(lost),
        "errors": shared.errors,
        "final_rss": final_rss,
        "alarms": {
            kind: {
                "raised": log.count(f"{kind} alarm:"),
                "cleared": log.count(f"{kind} alarm cleared"),
            }
            for kind in ("memory", "disk")
        },
        "samples": samples,
    }
    path = out / f"soak-{stamp}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(_summary(report))
    print(f"wrote {path}")
    if plot:
        print(_plot(report, out / f"soak-{stamp}.png"))
    return 1 if lost or shared.errors else 0


def _sample(pid: int, shared: Shared, duration: float) -> list[dict[str, float]]:
    samples = []
    start = time.monotonic()
    last_confirmed = 0
    while (now := time.monotonic()) - start < duration:
        time.sleep(1.0)
        with shared.lock:
            window, shared.latencies = shared.latencies, []
            confirmed, received = len(shared.confirmed), len(shared.received)
        # pika reports connection.blocked only between publishes, so a publisher held up
        # (blocked, or its confirm waiting for a commit) shows as confirms that stop.
        stalled, last_confirmed = int(confirmed == last_confirmed), confirmed
        samples.append({
            "t": round(now - start, 1),
            "rss": _rss(pid),
            "publishing_stalled": stalled,
            "latency_p50": statistics.median(window) if window else 0.0,
            "latency_max": max(window) if window else 0.0,
            "confirmed": confirmed,
            "received": received,
        })  # fmt: skip
    return samples


def _summary(report: dict[str, Any]) -> str:
    samples = report["samples"]
    rss = [s["rss"] for s in samples] or [0]
    blocked = sum(s["publishing_stalled"] for s in samples)
    return (
        f"soak {report['duration_s']:.0f} s on {report['disk']}: "
        f"{report['confirmed']} confirmed, {report['received']} received, "
        f"{report['lost']} lost; RSS start {rss[0] / 1e6:.0f} MB, max {max(rss) / 1e6:.0f} MB, "
        f"end {report['final_rss'] / 1e6:.0f} MB; no confirms for {blocked} s of "
        f"{len(samples)}; alarms {report['alarms']}; errors: {report['errors'] or 'none'}"
    )


def _plot(report: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is missing (pip install .[bench])"
    samples = report["samples"]
    t = [s["t"] for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    top.plot(t, [s["rss"] / 1e6 for s in samples], label="broker RSS (MB)")
    top.fill_between(
        t, 0, [s["publishing_stalled"] * 10 for s in samples], alpha=0.3, label="no confirms"
    )
    top.legend()
    bottom.plot(t, [s["latency_p50"] * 1000 for s in samples], label="latency p50 (ms)")
    bottom.plot(t, [s["latency_max"] * 1000 for s in samples], label="latency max (ms)")
    bottom.set_yscale("log")
    bottom.set_xlabel("seconds")
    bottom.legend()
    fig.savefig(path)
    return f"wrote {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds (1800)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--disk-mb", type=int, default=64, help="tmpfs size for the data")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    return run(args.duration, args.out, args.disk_mb, not args.no_plot)


if __name__ == "__main__":
    sys.exit(main())
