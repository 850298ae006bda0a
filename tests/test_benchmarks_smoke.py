"""Smoke test of the benchmark harness: ``python -m benchmarks`` runs and fills its table.

Not a timed test: a tiny message count against our broker only, to catch a harness that
no longer starts the broker, talks to it, or writes its results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("transient", "confirms", "persistent", "latency", "fanout")


def test_quick_run_against_our_broker_fills_the_table(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "benchmarks", "--quick", "--no-rabbitmq", "--no-plot",
        "--messages", "300", "--latency-seconds", "0.3", "--scenarios", ",".join(SCENARIOS),
        "--time-limit", "20", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1 : 1 + len(SCENARIOS)]] == list(SCENARIOS)
    (results,) = tmp_path.glob("results-*.json")
    summary = json.loads(results.read_text())["summary"]
    assert {entry["scenario"] for entry in summary} == set(SCENARIOS)
    for entry in summary:
        assert entry["amqpbroker"]["median_msgs_per_s"] > 0, entry


def test_soak_smoke_run_loses_nothing(tmp_path: Path) -> None:
    """``python -m benchmarks.soak`` for a few seconds: stalls, alarms and the final
    count of confirmed messages that never arrived (none)."""
    command = [
        sys.executable, "-m", "benchmarks.soak", "--duration", "8", "--no-plot",
        "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    (results,) = tmp_path.glob("soak-*.json")
    report = json.loads(results.read_text())
    assert report["confirmed"] > 0 and report["lost"] == 0
    assert len(report["samples"]) >= 7
