"""Durability benchmark: persistent, confirmed throughput per ``--sync`` mode next to RabbitMQ,
and the broker's memory with a million persistent messages queued.

    python -m benchmarks.durability [--messages 50000] [--repeat 3] [--no-rabbitmq]
                                    [--rss-messages 1000000 | --no-rss] [--data-root DIR]

Throughput: 1 publisher with confirms, 1 consumer with acks (prefetch 1000), one durable
queue, persistent messages of 16 B and 1 KiB, end to end, through the load generator of
``python -m benchmarks`` (benchmarks/runner.py) for both brokers; ours is a fresh
``amqpbroker --data-dir TMP --sync MODE`` process per run, RabbitMQ the one on
127.0.0.1:5673 when it answers (a durable queue of its own per run, deleted after). The
median of ``--repeat`` runs is shown, next to one run of /work/shared/tools/ampblast.py
(the reference load generator) against each broker as a cross-check.

Memory: a broker (``--sync normal``) is sent ``--rss-messages`` persistent 1 KiB messages
into one durable queue with confirms and no consumer; the table gives its resident set
size, the data dir's size, and the cost of a restart on that data (recovery time and the
resident set after it). Today every queued message is held in memory.

Every run is bounded (``--time-limit`` per throughput run, ``--rss-time-limit`` for the
memory run); every broker we start is stopped, its data dir removed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pamqp import commands

from .amqpraw import BrokerAddress, RawConnection
from .brokers import DEFAULT_RABBITMQ_URL, OurBroker
from .cli import _find_rabbit, _wait_quiet
from .loadgen import ConsumerSpec, PublisherSpec, run_consumer, run_publisher
from .runner import OURS, RABBITMQ, Measurement, Target, measure
from .scenarios import Scenario
from .sysstat import machine_facts

SYNC_MODES = ("full", "normal", "off")
BODY_SIZES = (16, 1024)
DEFAULT_MESSAGES = 50_000
DEFAULT_REPEAT = 3
DEFAULT_TIME_LIMIT_S = 120.0
DEFAULT_RSS_MESSAGES = 1_000_000
DEFAULT_RSS_TIME_LIMIT_S = 900.0
DEFAULT_RSS_DRAIN = 300_000
RSS_BODY_SIZE = 1024
# Wait up to this long for a quiet machine before each run (other work moves the numbers).
QUIET_WAIT_S = 20.0
AMPBLAST = Path("/work/shared/tools/ampblast.py")
AMPBLAST_RATE = re.compile(r"end-to-end ([\d,]+) msg/s")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
STALL_S = 30.0


@dataclass
class Cell:
    """The runs of one broker (ours with one sync mode, or RabbitMQ) for one body size."""

    runs: list[Measurement] = field(default_factory=list)
    ampblast: float | None = None
    ampblast_error: str | None = None

    @property
    def median(self) -> float | None:
        rates = [m.msgs_per_s for m in self.runs if m.error is None]
        return statistics.median(rates) if rates else None

    @property
    def errors(self) -> list[str]:
        return [m.error for m in self.runs if m.error] + (
            [self.ampblast_error] if self.ampblast_error else []
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.durability",
        description="Persistent throughput per sync mode vs RabbitMQ, and RSS with a backlog.",
    )
    rabbit = parser.add_mutually_exclusive_group()
    rabbit.add_argument("--rabbitmq-url", help=f"default: {DEFAULT_RABBITMQ_URL} if it answers")
    rabbit.add_argument("--no-rabbitmq", action="store_true")
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S)
    parser.add_argument("--data-root", type=Path, help="where our brokers keep their data")
    parser.add_argument("--no-throughput", action="store_true", help="only the memory run")
    parser.add_argument("--rss-messages", type=int, default=DEFAULT_RSS_MESSAGES)
    parser.add_argument("--rss-time-limit", type=float, default=DEFAULT_RSS_TIME_LIMIT_S)
    parser.add_argument("--no-rss", action="store_true", help="skip the memory run")
    parser.add_argument(
        "--cold-restart",
        action="store_true",
        help="drop the page cache before restarting (root), and time a restart with"
        " --store-check full too",
    )
    parser.add_argument(
        "--rss-drain",
        type=int,
        default=DEFAULT_RSS_DRAIN,
        help="messages consumed (acks) from the backlog after the restart",
    )
    parser.add_argument("--no-ampblast", action="store_true", help="skip the ampblast runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rabbit, rabbit_label = _find_rabbit(args)
    if args.rabbitmq_url and rabbit is None:
        print(f"benchmarks.durability: {rabbit_label}", file=sys.stderr)
        return 2
    print(f"RabbitMQ: {rabbit_label}", file=sys.stderr)
    facts = machine_facts()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, object] = {"started_utc": stamp, "machine": facts, "rabbitmq": rabbit_label}
    failed = False
    with tempfile.TemporaryDirectory(prefix="amqpbench-durability-") as logs:
        if not args.no_throughput:
            cells = throughput(args, rabbit, Path(logs))
            print()
            print(throughput_table(cells, args.messages, rabbit_label))
            report["throughput"] = {
                f"{body}/{who}": {
                    "median_msgs_per_s": cell.median,
                    "runs": [m.as_dict() for m in cell.runs],
                    "ampblast_msgs_per_s": cell.ampblast,
                }
                for (body, who), cell in cells.items()
            }
            problems = [
                f"{body} B {who}: {e}" for (body, who), c in cells.items() for e in c.errors
            ]
            if problems:
                failed = True
                print("\nerrors:\n" + "\n".join(f"- {p[:500]}" for p in problems))
        if not args.no_rss:
            memory = backlog_memory(args, Path(logs))
            print()
            print(memory_table(memory))
            report["memory"] = memory
            failed = failed or "error" in memory
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"durability-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresults: {path}")
    print(f"machine: {machine_line(facts)}")
    return 1 if failed else 0


# ------------------------------------------------------------------------ throughput


def scenario(body: int, messages: int) -> Scenario:
    return Scenario(
        f"durable-{body}b",
        f"persistent {body} B, durable queue, confirms + acks",
        messages,
        body_size=body,
        acks=True,
        confirms=True,
        persistent=True,
    ).sized(False, messages, None)


def throughput(
    args: argparse.Namespace, rabbit: Target | None, logs: Path
) -> dict[tuple[int, str], Cell]:
    """Cells keyed by (body size, "sync=MODE" or "rabbitmq")."""
    cells: dict[tuple[int, str], Cell] = {}
    for body in BODY_SIZES:
        plan = scenario(body, args.messages)
        who = [f"sync={mode}" for mode in SYNC_MODES] + ([RABBITMQ] if rabbit else [])
        for rep in range(args.repeat):
            # Rotate the order, so drift on the machine does not favour one side.
            shift = rep % len(who)
            for name in who[shift:] + who[:shift]:
                _wait_quiet(QUIET_WAIT_S)
                if name == RABBITMQ:
                    assert rabbit is not None
                    result = measure(plan, rabbit, rep, args.time_limit)
                else:
                    result = measure_ours(plan, name.split("=")[1], rep, args, logs)
                cells.setdefault((body, name), Cell()).runs.append(result)
                progress(body, name, result)
        if not args.no_ampblast and AMPBLAST.exists():
            for name in who:
                cell = cells[(body, name)]
                _wait_quiet(QUIET_WAIT_S)
                try:
                    if name == RABBITMQ:
                        assert rabbit is not None
                        cell.ampblast = ampblast(rabbit.address, body, args)
                    else:
                        log = logs / f"ampblast-{body}-{name}.log"
                        with OurBroker(log, True, name.split("=")[1], args.data_root) as broker:
                            assert broker.address is not None
                            cell.ampblast = ampblast(broker.address, body, args)
                except Exception as exc:
                    cell.ampblast_error = f"ampblast: {type(exc).__name__}: {exc}"
                print(f"{body:>5} B {name:<12} ampblast: {cell.ampblast or 0:>10,.0f} msg/s")
    return cells


def measure_ours(
    plan: Scenario, sync: str, rep: int, args: argparse.Namespace, logs: Path
) -> Measurement:
    log = logs / f"{plan.name}-{sync}-{rep}.log"
    try:
        with OurBroker(log, True, sync, args.data_root) as broker:
            assert broker.address is not None
            return measure(plan, Target(OURS, broker.address, broker.pid), rep, args.time_limit)
    except Exception as exc:
        failed = Measurement(OURS, plan.name, rep, plan.messages)
        failed.error = f"{type(exc).__name__}: {exc}"
        return failed


def ampblast(address: BrokerAddress, body: int, args: argparse.Namespace) -> float:
    """One ampblast run on a durable queue of its own, deleted afterwards."""
    name = f"amqpbroker-durability-{os.getpid()}-{body}"
    cmd = [sys.executable, str(AMPBLAST), str(address.port), "--ack", "--confirm"]
    cmd += ["--persistent", "--durable", "--queue", name]
    cmd += ["--n", str(args.messages), "--size", str(body)]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.time_limit, check=False
        )
    finally:
        with (
            contextlib.suppress(Exception),
            RawConnection.open(address, timeout=STALL_S) as conn,
        ):
            conn.call(1, commands.Queue.Delete(queue=name), commands.Queue.DeleteOk)
    match = AMPBLAST_RATE.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"exit {out.returncode}: {(out.stdout + out.stderr)[-300:]}")
    return float(match.group(1).replace(",", ""))


def progress(body: int, name: str, result: Measurement) -> None:
    other = result.other_cores
    text = (
        f"ERROR {result.error[:300]}"
        if result.error
        else f"{result.msgs_per_s:>10,.0f} msg/s in {result.seconds:.2f} s, broker"
        f" {result.cpu_cores.get('broker') or 0:.2f} cores, other processes"
        f" {'?' if other is None else f'{other:.2f}'} cores"
    )
    print(f"{body:>5} B {name:<12} run {result.rep + 1}: {text}", file=sys.stderr, flush=True)


def throughput_table(cells: dict[tuple[int, str], Cell], messages: int, rabbit: str) -> str:
    names = [f"sync={mode}" for mode in SYNC_MODES] + [RABBITMQ]
    lines = [
        f"Persistent messages, durable queue, 1 publisher (confirms) + 1 consumer (acks),"
        f" {messages:,} messages per run; end-to-end msg/s, median of the runs"
        f" [ampblast, one run]. RabbitMQ: {rabbit}",
        "",
        "| broker | 16 B | 1 KiB |",
        "|---|---|---|",
    ]
    for name in names:
        if not any((body, name) in cells for body in BODY_SIZES):
            continue
        label = f"amqpbroker --sync {name.split('=')[1]}" if "=" in name else "RabbitMQ 3.10"
        row = [label]
        for body in BODY_SIZES:
            cell = cells.get((body, name))
            row.append(_cell_text(cell))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _cell_text(cell: Cell | None) -> str:
    if cell is None or cell.median is None:
        return "error"
    text = f"{cell.median:,.0f}"
    if cell.ampblast is not None:
        text += f" [{cell.ampblast:,.0f}]"
    return text


# --------------------------------------------------------------------------- memory


def backlog_memory(args: argparse.Namespace, logs: Path) -> dict[str, object]:
    """RSS of a broker holding ``--rss-messages`` persistent 1 KiB messages, and a restart."""
    data = Path(tempfile.mkdtemp(prefix="amqpbench-rss-", dir=args.data_root))
    result: dict[str, object] = {"messages": args.rss_messages, "body_bytes": RSS_BODY_SIZE}
    queue_name = "backlog"
    try:
        with OurBroker(logs / "rss-1.log", True, "normal", data_dir=data) as broker:
            assert broker.address is not None
            result["idle_rss_mib"] = rss_mib(broker.pid)["VmRSS"]
            with RawConnection.open(broker.address, timeout=STALL_S) as conn:
                declare = commands.Queue.Declare(queue=queue_name, durable=True)
                conn.call(1, declare, commands.Queue.DeclareOk)
            started = time.monotonic()
            publish_backlog(broker.address, queue_name, args)
            result["publish_seconds"] = round(time.monotonic() - started, 1)
            result["queued"] = queue_depth(broker.address, queue_name)
            result.update({f"loaded_{k}": v for k, v in rss_mib(broker.pid).items()})
        result["data_dir_mib"] = round(dir_bytes(data) / 2**20, 1)
        if args.cold_restart:
            # Startup as after a reboot: the store is not in the page cache.  Also with
            # the full integrity check, which reads the whole file.
            result["cache_dropped"] = drop_page_cache()
            started = time.monotonic()
            full_check = ("--store-check", "full")
            with OurBroker(
                logs / "rss-full.log",
                True,
                "normal",
                data_dir=data,
                extra_args=full_check,
                start_timeout_s=args.rss_time_limit,  # it reads the whole store first
            ):
                result["restart_full_check_seconds"] = round(time.monotonic() - started, 1)
            drop_page_cache()
        started = time.monotonic()
        with OurBroker(logs / "rss-2.log", True, "normal", data_dir=data) as broker:
            assert broker.address is not None
            result["restart_seconds"] = round(time.monotonic() - started, 1)
            result["recovered"] = queue_depth(broker.address, queue_name)
            result.update({f"recovered_{k}": v for k, v in rss_mib(broker.pid).items()})
            drain = min(args.rss_drain, int(str(result["recovered"])))
            if drain:
                # Delivery from the head of the huge queue, with acks: paged in from
                # disk as it goes.
                started = time.monotonic()
                drain_backlog(broker.address, broker.pid, queue_name, drain, args)
                seconds = time.monotonic() - started
                result["drained"] = drain
                result["drain_msgs_per_s"] = round(drain / seconds)
                result.update({f"drained_{k}": v for k, v in rss_mib(broker.pid).items()})
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return result


def publish_backlog(address: BrokerAddress, queue_name: str, args: argparse.Namespace) -> None:
    """The benchmark's publisher, in this process: all confirmed when it returns."""
    spec = PublisherSpec(
        address=address,
        exchange="",
        routing_key=queue_name,
        count=args.rss_messages,
        body_size=RSS_BODY_SIZE,
        persistent=True,
        confirms=True,
        rate=None,
        time_limit_s=args.rss_time_limit,
        stall_s=STALL_S,
    )
    ready, go = threading.Event(), threading.Event()
    go.set()
    results: queue.Queue[object] = queue.Queue()
    run_publisher(spec, ready, go, results)  # type: ignore[arg-type]
    report = results.get_nowait()
    if not isinstance(report, tuple) or report[0] != "publisher":
        raise RuntimeError(f"publisher failed: {report!r}")


def drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only); whether it was."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def drain_backlog(
    address: BrokerAddress, pid: int, queue_name: str, count: int, args: argparse.Namespace
) -> None:
    """Consume ``count`` messages with acks (prefetch 1000), in this process."""
    spec = ConsumerSpec(
        address=address,
        queues=(queue_name,),
        acks=True,
        prefetch=1000,
        expected=count,
        latency_skip=count,
        time_limit_s=args.rss_time_limit,
        stall_s=STALL_S,
        broker_pid=pid,
    )
    ready = threading.Event()
    results: queue.Queue[object] = queue.Queue()
    run_consumer(spec, ready, results)  # type: ignore[arg-type]
    report = results.get_nowait()
    if not isinstance(report, tuple) or report[0] != "consumer":
        raise RuntimeError(f"consumer failed: {report!r}")


def queue_depth(address: BrokerAddress, queue_name: str) -> int:
    with RawConnection.open(address, timeout=STALL_S) as conn:
        declare = commands.Queue.Declare(queue=queue_name, passive=True)
        return int(conn.call(1, declare, commands.Queue.DeclareOk).message_count)


def rss_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def memory_table(memory: dict[str, object]) -> str:
    if "error" in memory:
        return f"memory run failed: {memory['error']}"
    n = int(str(memory["messages"]))
    loaded = float(str(memory["loaded_VmRSS"]))
    idle = float(str(memory["idle_rss_mib"]))
    per_message = (loaded - idle) * 2**20 / n
    cold = " (page cache dropped)" if memory.get("cache_dropped") else ""
    return "\n".join(
        [
            f"amqpbroker --sync normal, one durable queue, {n:,} persistent"
            f" {memory['body_bytes']} B messages, no consumer",
            "",
            "| measure | value |",
            "|---|---|",
            f"| RSS idle | {idle:,.0f} MiB |",
            f"| RSS with the backlog (peak) | {loaded:,.0f} MiB ({memory['loaded_VmHWM']:,} MiB)|",
            f"| RSS per queued message | {per_message:,.0f} B |",
            f"| publishing them (confirms) | {memory['publish_seconds']} s |",
            f"| data dir on disk | {memory['data_dir_mib']:,} MiB |",
            f"| restart on that data dir, to ready{cold} | {memory['restart_seconds']} s |",
            *(
                [
                    f"| restart with --store-check full{cold} |"
                    f" {memory['restart_full_check_seconds']} s |"
                ]
                if "restart_full_check_seconds" in memory
                else []
            ),
            f"| RSS after the restart (peak) | {memory['recovered_VmRSS']:,} MiB"
            f" ({memory['recovered_VmHWM']:,} MiB) |",
            f"| messages queued before / after | {memory['queued']:,} / {memory['recovered']:,} |",
            *(
                [
                    f"| draining {memory['drained']:,} of them from the head, acks"
                    f" (prefetch 1000) | {memory['drain_msgs_per_s']:,} msg/s |",
                    f"| RSS after draining (peak) | {memory['drained_VmRSS']:,} MiB"
                    f" ({memory['drained_VmHWM']:,} MiB) |",
                ]
                if "drained" in memory
                else []
            ),
        ]
    )


def machine_line(facts: dict[str, object]) -> str:
    return (
        f"{facts['cpu_model']}, {facts['nproc']} vCPU, {facts['memory_gib']} GiB,"
        f" Linux {facts['kernel']}, Python {facts['python']}, commit {facts['git_commit']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
