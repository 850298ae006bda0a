"""``python -m benchmarks``: every scenario against our broker and RabbitMQ, one table.

Our broker is a fresh subprocess per measurement (``amqpbroker --port 0 --transient``, or a
temporary ``--data-dir`` with ``--sync full`` for persistent scenarios). RabbitMQ is the one
at ``--rabbitmq-url``, or on 127.0.0.1:5673 when it answers there. Repetitions alternate
which broker goes first. Exit status: 0 when every measurement ran (targets missed or not),
1 when one failed, 2 for bad arguments or an unreachable ``--rabbitmq-url``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .amqpraw import BrokerAddress
from .brokers import DEFAULT_RABBITMQ_URL, OurBroker, describe_server, probe
from .profiling import PySpy, summarize
from .report import cpu_table, errors, table, write_json, write_plot
from .report import summarize as summarize_rows
from .runner import OURS, RABBITMQ, Measurement, Target, measure
from .scenarios import Scenario, select
from .sysstat import CpuSnapshot, broker_source_fingerprint, listener_pid, machine_facts

N = TypeVar("N", int, float)
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DEFAULT_REPEAT = 3
DEFAULT_TIME_LIMIT_S = 120.0
# Before each measurement wait (up to --quiet-wait s) until the rest of the machine uses
# less than this many cores: other processes on a 2-core machine move the numbers a lot.
QUIET_CORES = 0.5
QUIET_SAMPLE_S = 0.5
DEFAULT_QUIET_WAIT_S = 60.0
# A run during which processes other than the broker and the two clients used more than
# this many cores is repeated (up to DEFAULT_RETRIES times); the least disturbed one counts.
DEFAULT_MAX_OTHER_CORES = 0.25
DEFAULT_RETRIES = 2
LOG_TAIL = 1500


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="amqpbroker and RabbitMQ side by side on this machine (loopback only).",
    )
    rabbit = parser.add_mutually_exclusive_group()
    rabbit.add_argument(
        "--rabbitmq-url",
        help=f"RabbitMQ to compare with (default: {DEFAULT_RABBITMQ_URL} if it answers)",
    )
    rabbit.add_argument("--no-rabbitmq", action="store_true", help="measure our broker only")
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages, 1 run")
    parser.add_argument("--scenarios", help="comma-separated names (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    parser.add_argument(
        "--messages", type=_positive(int), help="publishes per throughput measurement"
    )
    parser.add_argument("--latency-seconds", type=_positive(float), help="length of the paced run")
    parser.add_argument(
        "--repeat", type=_positive(int), help=f"runs per broker ({DEFAULT_REPEAT}; quick 1)"
    )
    parser.add_argument(
        "--time-limit",
        type=_positive(float),
        default=DEFAULT_TIME_LIMIT_S,
        help="seconds per measurement",
    )
    parser.add_argument("--sync", choices=("full", "normal", "off"), default="full")
    parser.add_argument("--data-root", type=Path, help="where persistent runs keep their data")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help=f"seconds to wait for an idle machine before each run ({DEFAULT_QUIET_WAIT_S:.0f};"
        " quick 0)",
    )
    parser.add_argument(
        "--max-other",
        type=float,
        default=DEFAULT_MAX_OTHER_CORES,
        help="a run during which other processes used more cores than this is repeated"
        f" ({DEFAULT_MAX_OTHER_CORES})",
    )
    parser.add_argument(
        "--retries",
        type=int,
        help=f"repeats of a disturbed run ({DEFAULT_RETRIES}; quick 0)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one extra run of our broker per scenario under py-spy (not in the table)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    return parser


def _positive(kind: type[N]) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        scenarios = [
            s.sized(args.quick, args.messages, args.latency_seconds) for s in select(args.scenarios)
        ]
    except ValueError as exc:
        parser.error(str(exc))
    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    quiet_wait = (
        args.quiet_wait
        if args.quiet_wait is not None
        else (0.0 if args.quick else DEFAULT_QUIET_WAIT_S)
    )
    retries = args.retries if args.retries is not None else (0 if args.quick else DEFAULT_RETRIES)
    rabbit, rabbit_label = _find_rabbit(args)
    if args.rabbitmq_url and rabbit is None:
        print(f"benchmarks: {rabbit_label}", file=sys.stderr)
        return 2
    print(f"RabbitMQ: {rabbit_label}", file=sys.stderr)
    facts = machine_facts()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    meta: dict[str, object] = {
        "started_utc": stamp,
        "command": " ".join(
            ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": facts,
        "rabbitmq": rabbit_label,
        "repeat": repeat,
        "quick": args.quick,
        "sync": args.sync,
        "max_other_cores": args.max_other,
        "retries": retries,
    }
    measurements: list[Measurement] = []
    profiles: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="amqpbench-logs-") as logs:
        for scenario in scenarios:
            runs = 1 if scenario.rate else repeat
            for rep in range(runs):
                order = (OURS, RABBITMQ) if rep % 2 == 0 else (RABBITMQ, OURS)
                for broker in order:
                    if broker == RABBITMQ and rabbit is None:
                        continue
                    attempts: list[Measurement] = []
                    while True:
                        background = _wait_quiet(quiet_wait)
                        if broker == OURS:
                            result = _measure_ours(scenario, rep, args, Path(logs))
                        else:
                            assert rabbit is not None
                            result = measure(scenario, rabbit, rep, args.time_limit)
                        result.background_cores = background
                        attempts.append(result)
                        _progress(result, runs)
                        if not _disturbed(result, args.max_other) or len(attempts) > retries:
                            break
                    measurements.append(_least_disturbed(attempts))
            if args.profile:
                raw = args.out / f"profile-{stamp}-{scenario.name}.raw"
                result = _measure_ours(scenario, runs, args, Path(logs), profile_to=raw)
                measurements.append(result)
                _progress(result, runs)
                if raw.exists():
                    profiles[scenario.name] = summarize(raw).text()
                    raw.with_suffix(".txt").write_text(profiles[scenario.name] + "\n")
    rows = summarize_rows(scenarios, measurements, with_rabbit=rabbit is not None)
    print()
    print(table(rows))
    print()
    print(f"CPU use during the median run, in cores (this machine has {facts['nproc']})")
    print(cpu_table(rows))
    for name, text in profiles.items():
        print(f"\nprofile of amqpbroker in {name}:\n{text}")
    sources = sorted({m.broker_source for m in measurements if m.broker_source})
    meta["broker_sources"] = sources
    if len(sources) > 1:
        print(
            f"\nwarning: the amqpbroker sources changed during this run ({len(sources)}"
            " versions measured; see broker_source per measurement in the JSON)"
        )
    found = errors(rows)
    if found:
        print("\nerrors:\n" + "\n".join(f"- {line}" for line in found))
    json_path = args.out / f"results-{stamp}.json"
    write_json(json_path, meta, rows, measurements)
    print(f"\nresults: {json_path}")
    if not args.no_plot:
        png_path = json_path.with_suffix(".png")
        versus = f"amqpbroker vs {rabbit_label}" if rabbit else "amqpbroker (no RabbitMQ)"
        why_not = write_plot(png_path, rows, f"{versus}, {stamp}")
        print(f"plot: {png_path}" if why_not is None else f"plot: skipped, {why_not}")
    return 1 if found else 0


def _find_rabbit(args: argparse.Namespace) -> tuple[Target | None, str]:
    if args.no_rabbitmq:
        return None, "not measured (--no-rabbitmq)"
    url = args.rabbitmq_url or DEFAULT_RABBITMQ_URL
    try:
        address = BrokerAddress.from_url(url)
    except ValueError as exc:
        return None, str(exc)
    try:
        properties = probe(address)
    except (OSError, TimeoutError, RuntimeError) as exc:
        return None, f"not reachable at {address.url} ({exc})"
    label = describe_server(properties)
    if "amqpbroker" in label:
        return None, f"{address.url} is amqpbroker, not RabbitMQ: {label}"
    # Its pid, to read its CPU time: the process listening on that loopback port.
    return Target(RABBITMQ, address, listener_pid(address.port)), f"{label} at {address.url}"


def _measure_ours(
    scenario: Scenario,
    rep: int,
    args: argparse.Namespace,
    logs: Path,
    profile_to: Path | None = None,
) -> Measurement:
    log_path = logs / f"{scenario.name}-{rep}{'-profile' if profile_to else ''}.log"
    source = broker_source_fingerprint()
    try:
        with OurBroker(log_path, scenario.persistent, args.sync, args.data_root) as broker:
            assert broker.address is not None
            target = Target(OURS, broker.address, broker.pid)
            if profile_to is None:
                result = measure(scenario, target, rep, args.time_limit)
            else:
                with PySpy(broker.pid, profile_to):
                    result = measure(scenario, target, rep, args.time_limit, profiled=True)
    except Exception as exc:
        result = Measurement(OURS, scenario.name, rep, scenario.messages)
        result.error = f"{type(exc).__name__}: {exc}"
    result.broker_source = source
    if result.error and log_path.exists():
        tail = log_path.read_text(errors="replace")[-LOG_TAIL:].strip()
        if tail:
            result.error += f" [broker log: {tail}]"
    return result


def _disturbed(result: Measurement, max_other: float) -> bool:
    other = result.other_cores
    return result.error is None and other is not None and other > max_other


def _least_disturbed(attempts: list[Measurement]) -> Measurement:
    """The attempt during which other processes used the least CPU; the rest are noted."""
    chosen = min(attempts, key=lambda m: (m.error is not None, m.other_cores or 0.0))
    chosen.attempts = len(attempts)
    chosen.discarded = [
        {"msgs_per_s": m.msgs_per_s, "other_cores": m.other_cores or 0.0}
        for m in attempts
        if m is not chosen
    ]
    return chosen


def _wait_quiet(limit_s: float) -> float:
    """Wait (bounded) until the machine is nearly idle; return the busy cores last seen."""
    deadline = time.monotonic() + limit_s
    while True:
        before = CpuSnapshot.take()
        time.sleep(QUIET_SAMPLE_S)
        after = CpuSnapshot.take()
        busy = (after.machine_busy_s - before.machine_busy_s) / QUIET_SAMPLE_S
        if busy < QUIET_CORES or time.monotonic() >= deadline:
            return busy
        time.sleep(QUIET_SAMPLE_S)


def _progress(result: Measurement, runs: int) -> None:
    what = f"{result.scenario:<10} {result.broker:<10} run {result.rep + 1}/{runs}"
    if result.profiled:
        what = f"{result.scenario:<10} {result.broker:<10} extra run under py-spy"
    if result.error:
        print(f"{what}: ERROR {result.error[:300]}", file=sys.stderr)
        return
    p99 = result.latency_ms["p99"] if result.latency_ms else float("nan")
    other = result.other_cores
    us = result.broker_us_per_message
    print(
        f"{what}: {result.msgs_per_s:>10,.0f} msg/s in {result.seconds:.2f} s, p99 {p99:,.2f} ms,"
        f" broker {'?' if us is None else f'{us:.1f}'} us/msg,"
        f" other processes {'?' if other is None else f'{other:.2f}'} cores"
        f" (before: {result.background_cores:.2f})",
        file=sys.stderr,
        flush=True,
    )
