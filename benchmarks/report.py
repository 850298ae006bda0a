"""Summaries, the table, the JSON file and the PNG plot of a run."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import OURS, RABBITMQ, Measurement
from .scenarios import FAIRNESS_MAX_MS, FAIRNESS_P99_MS, Scenario


@dataclass(frozen=True)
class Side:
    """One broker's figures for one scenario over its repetitions."""

    runs: tuple[Measurement, ...]  # the successful, unprofiled ones
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return bool(self.runs)

    @property
    def rates(self) -> list[float]:
        return [m.msgs_per_s for m in self.runs]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def spread(self) -> float:
        """Half the range of the repetitions, relative to the median (0 for one run)."""
        rates = self.rates
        return (max(rates) - min(rates)) / 2 / self.median_rate if len(rates) > 1 else 0.0

    @property
    def typical(self) -> Measurement:
        """The repetition whose rate is the median (the lower middle one for an even count)."""
        ordered = sorted(self.runs, key=lambda m: m.msgs_per_s)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def us_per_message(self) -> float | None:
        """Median over repetitions of the broker's CPU time per publish, in microseconds."""
        values = [v for m in self.runs if (v := m.broker_us_per_message) is not None]
        return statistics.median(values) if values else None

    def latency_median(self, key: str) -> float | None:
        """Median over repetitions of one latency figure (``p50``, ``p99``, ``max``)."""
        values = [m.latency_ms[key] for m in self.runs if m.latency_ms]
        return statistics.median(values) if values else None

    @property
    def p99_ms(self) -> float | None:
        """Median over repetitions of the p99 latency."""
        values = [m.latency_ms["p99"] for m in self.runs if m.latency_ms]
        return statistics.median(values) if values else None


@dataclass(frozen=True)
class Row:
    scenario: Scenario
    ours: Side
    rabbit: Side | None  # None: RabbitMQ was not part of the run

    @property
    def ratio(self) -> float | None:
        if self.rabbit is None or not self.ours.ok or not self.rabbit.ok:
            return None
        if self.scenario.latency_target:
            ours, theirs = self.ours.p99_ms, self.rabbit.p99_ms
            return theirs / ours if ours and theirs else None
        return self.ours.median_rate / self.rabbit.median_rate

    @property
    def met(self) -> bool | None:
        if self.scenario.fairness:
            # An absolute target, on our broker alone.
            p99, worst = self.ours.latency_median("p99"), self.ours.latency_median("max")
            if p99 is None or worst is None:
                return None
            return p99 <= FAIRNESS_P99_MS and worst <= FAIRNESS_MAX_MS
        ratio = self.ratio
        if ratio is None or self.scenario.target is None:
            return None
        return ratio >= self.scenario.target


def summarize(
    scenarios: Sequence[Scenario], measurements: Sequence[Measurement], with_rabbit: bool
) -> list[Row]:
    rows = []
    for scenario in scenarios:
        mine = [m for m in measurements if m.scenario == scenario.name and not m.profiled]

        def side(broker: str, mine: list[Measurement] = mine) -> Side:
            runs = [m for m in mine if m.broker == broker]
            return Side(
                runs=tuple(m for m in runs if m.error is None),
                errors=tuple(str(m.error) for m in runs if m.error is not None),
            )

        rows.append(Row(scenario, side(OURS), side(RABBITMQ) if with_rabbit else None))
    return rows


def _rate_cell(side: Side | None) -> str:
    if side is None:
        return "-"
    if not side.ok:
        return "error"
    text = f"{side.median_rate:,.0f}"
    if len(side.runs) > 1:
        text += f" ±{side.spread * 100:.0f}%"
    return text


def _latency_cell(side: Side | None) -> str:
    if side is None or not side.ok:
        return "-"
    latency = side.typical.latency_ms
    if not latency:
        return "-"
    return f"{_ms(latency['p50'])} / {_ms(latency['p99'])} / {_ms(latency['max'])}"


def _us_cell(side: Side | None) -> str:
    value = side.us_per_message if side is not None and side.ok else None
    return "-" if value is None else f"{value:,.1f}"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (readable in a terminal too)."""
    header = (
        "| scenario | amqpbroker msg/s | RabbitMQ msg/s | ratio | target | met "
        "| amqpbroker latency p50 / p99 / max ms | RabbitMQ latency p50 / p99 / max ms "
        "| broker CPU us/msg amqpbroker / RabbitMQ |"
    )
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        ratio = row.ratio
        met = {True: "yes", False: "**no**", None: "-"}[row.met]
        lines.append(
            f"| {row.scenario.name} | {_rate_cell(row.ours)} | {_rate_cell(row.rabbit)} "
            f"| {f'{ratio:.2f}x' if ratio is not None else '-'} | {row.scenario.target_text} "
            f"| {met} | {_latency_cell(row.ours)} | {_latency_cell(row.rabbit)} "
            f"| {_us_cell(row.ours)} / {_us_cell(row.rabbit)} |"
        )
    return "\n".join(lines)


def cpu_table(rows: Sequence[Row]) -> str:
    """CPU use during the median repetition, in cores (the machine's total is the limit)."""
    lines = [
        "| scenario | amqpbroker: broker / publisher / consumer / other / machine | "
        "RabbitMQ: broker / publisher / consumer / other / machine |",
        "|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row.scenario.name} | {_cpu_cell(row.ours)} | {_cpu_cell(row.rabbit)} |")
    return "\n".join(lines)


def _cpu_cell(side: Side | None) -> str:
    if side is None or not side.ok or not side.typical.cpu_cores:
        return "-"
    cpu = side.typical.cpu_cores
    parts = [cpu.get(key) for key in ("broker", "publisher", "consumer", "other", "machine")]
    return " / ".join(f"{value:.2f}" if value is not None else "-" for value in parts)


def errors(rows: Sequence[Row]) -> list[str]:
    found = []
    for row in rows:
        for name, side in ((OURS, row.ours), (RABBITMQ, row.rabbit)):
            if side is not None:
                found += [f"{row.scenario.name} / {name}: {error}" for error in side.errors]
    return found


def write_json(
    path: Path,
    meta: dict[str, object],
    rows: Sequence[Row],
    measurements: Sequence[Measurement],
) -> None:
    summary = []
    for row in rows:
        entry: dict[str, object] = {
            "scenario": row.scenario.name,
            "title": row.scenario.title,
            "messages": row.scenario.messages,
            "body_size": row.scenario.body_size,
            "target": row.scenario.target,
            "target_on": "p99 latency" if row.scenario.latency_target else "msg/s",
            "ratio": row.ratio,
            "met": row.met,
        }
        for name, side in (("amqpbroker", row.ours), ("rabbitmq", row.rabbit)):
            if side is not None and side.ok:
                entry[name] = {
                    "median_msgs_per_s": side.median_rate,
                    "rates": side.rates,
                    "spread": side.spread,
                    "median_p99_ms": side.p99_ms,
                    "median_broker_us_per_msg": side.us_per_message,
                    "latency_ms": side.typical.latency_ms,
                    "cpu_cores": side.typical.cpu_cores,
                }
        summary.append(entry)
    document = {
        **meta,
        "summary": summary,
        "measurements": [m.as_dict() for m in measurements],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_plot(path: Path, rows: Sequence[Row], title: str) -> str | None:
    """A PNG of the table; returns why not when matplotlib is missing (pip install .[bench])."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    throughput = [r for r in rows if not r.scenario.latency_target and r.ours.ok]
    fig, (left, right, cpu) = plt.subplots(1, 3, figsize=(19, 5.6))
    names = [r.scenario.name for r in throughput]
    xs = list(range(len(names)))
    ours = [r.ours.median_rate for r in throughput]
    left.bar([x - 0.2 for x in xs], ours, width=0.4, label="amqpbroker", color="#3b7dd8")
    if any(r.rabbit is not None and r.rabbit.ok for r in throughput):
        theirs = [r.rabbit.median_rate if r.rabbit and r.rabbit.ok else 0.0 for r in throughput]
        left.bar([x + 0.2 for x in xs], theirs, width=0.4, label="RabbitMQ", color="#f28e2b")
    left.set_yscale("log")
    left.set_xticks(xs, names, rotation=30, ha="right")
    left.set_ylabel("delivered msg/s (median, log scale)")
    left.set_title("Throughput")
    left.legend()
    compared = [r for r in rows if r.ratio is not None]
    if compared:
        rx = list(range(len(compared)))
        ratios = [r.ratio or 0.0 for r in compared]
        colors = [
            "#59a14f" if r.met else "#e15759" if r.met is False else "#9c9c9c" for r in compared
        ]
        right.bar(rx, ratios, color=colors)
        for x, r in zip(rx, compared, strict=True):
            if r.scenario.target is not None:
                right.hlines(r.scenario.target, x - 0.4, x + 0.4, colors="black", linestyles="--")
        right.axhline(1.0, color="#777777", linewidth=0.8)
        right.set_xticks(rx, [r.scenario.name for r in compared], rotation=30, ha="right")
        right.set_ylabel("amqpbroker / RabbitMQ (latency: RabbitMQ p99 / ours)")
        right.set_title("Ratio (dashed: target; green met, red missed, grey no target)")
    else:
        right.text(0.5, 0.5, "no RabbitMQ in this run", ha="center", va="center")
        right.set_axis_off()
    _plot_cpu(cpu, rows)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _plot_cpu(axes: Any, rows: Sequence[Row]) -> None:
    """Broker CPU time per message (per declare in fairness), ours next to RabbitMQ's."""
    shown = [r for r in rows if r.ours.us_per_message is not None]
    xs = list(range(len(shown)))
    ours = [r.ours.us_per_message or 0.0 for r in shown]
    axes.bar([x - 0.2 for x in xs], ours, width=0.4, label="amqpbroker", color="#3b7dd8")
    theirs = [r.rabbit.us_per_message if r.rabbit and r.rabbit.ok else None for r in shown]
    if any(value is not None for value in theirs):
        values = [value or 0.0 for value in theirs]
        axes.bar([x + 0.2 for x in xs], values, width=0.4, label="RabbitMQ", color="#f28e2b")
    axes.set_yscale("log")
    axes.set_xticks(xs, [r.scenario.name for r in shown], rotation=30, ha="right")
    axes.set_ylabel("broker CPU us per message (median, log scale)")
    axes.set_title("Broker CPU per message (lower is better)")
    axes.legend()
