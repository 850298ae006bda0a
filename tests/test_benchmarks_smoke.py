"""Smoke test of the benchmark harness: ``python -m benchmarks`` runs and fills its table.

Not a timed test: a tiny message count against our broker only, to catch a harness that
no longer starts the broker, talks to it, or writes its results.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pamqp import frame

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("transient", "confirms", "persistent", "latency", "fanout")
# Issue 13's scenarios: app-shaped traffic (2 publishers, 2 consumers, topic routing, one
# ack per message), big bodies with acks, and the fairness probe.
APP_SCENARIOS = ("body-64k", "body-1m", "app-transient", "app-persistent", "fairness")


def _run(tmp_path: Path, scenarios: tuple[str, ...], messages: int) -> list[dict[str, object]]:
    command = [
        sys.executable, "-m", "benchmarks", "--quick", "--no-rabbitmq", "--no-plot",
        "--messages", str(messages), "--latency-seconds", "0.3",
        "--scenarios", ",".join(scenarios), "--time-limit", "20", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1 : 1 + len(scenarios)]] == list(scenarios)
    (results,) = tmp_path.glob("results-*.json")
    summary: list[dict[str, object]] = json.loads(results.read_text())["summary"]
    assert {entry["scenario"] for entry in summary} == set(scenarios)
    return summary


def test_quick_run_against_our_broker_fills_the_table(tmp_path: Path) -> None:
    for entry in _run(tmp_path, SCENARIOS, 300):
        ours = entry["amqpbroker"]
        assert isinstance(ours, dict)
        assert ours["median_msgs_per_s"] > 0, entry


def test_app_shaped_scenarios_deliver_every_message_and_report_broker_cpu(
    tmp_path: Path,
) -> None:
    summary = _run(tmp_path, APP_SCENARIOS, 40)
    results = json.loads(next(tmp_path.glob("results-*.json")).read_text())
    for entry in summary:
        ours = entry["amqpbroker"]
        assert isinstance(ours, dict)
        assert ours["median_msgs_per_s"] > 0, entry
        assert ours["median_broker_us_per_msg"] is not None, entry
        assert ours["latency_ms"]["max"] >= ours["latency_ms"]["p50"] > 0, entry
    for run in results["measurements"]:
        # Every publish delivered exactly once (the app ones routed by key to one queue),
        # and the fairness run declared all its queues.
        assert run["error"] is None, run
        assert run["delivered"] == run["published"] == run["messages"], run


def test_app_shaped_publishes_are_celery_like_and_never_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # the harness is not an installed package
    appshape = importlib.import_module("benchmarks.appshape")

    pool = appshape.templates(1, "tasks", 131072, persistent=True, seed=7)
    batch = bytes(appshape.AppBatches(pool, publisher=1).build(0, 2 * appshape.POOL, 12345))
    frames, publishes = [], []
    at = start = 0
    while at < len(batch):
        used, _, value = frame.unmarshal(batch[at:])
        frames.append(value)
        at += used
        if value.name == "ContentBody":  # small bodies: one body frame ends a publish
            publishes.append(batch[start:at])
            start = at
    headers = [f for f in frames if f.name == "ContentHeader"]
    bodies = [bytes(f.value) for f in frames if f.name == "ContentBody"]
    assert len(headers) == len(bodies) == len(publishes) == 2 * appshape.POOL
    # No two consecutive publishes (nor any two) byte-identical.
    assert len(set(publishes)) == len(publishes)
    ids = [h.properties.correlation_id for h in headers]
    assert len(set(ids)) == len(ids)
    assert len({h.properties.reply_to for h in headers}) == len(ids)
    first = headers[0].properties
    assert (first.content_type, first.content_encoding, first.delivery_mode) == (
        "application/json",
        "utf-8",
        2,
    )
    assert len(first.headers) >= 17
    assert first.headers["id"] == first.headers["root_id"] == first.correlation_id
    assert {"lang", "task", "retries", "timelimit", "argsrepr", "origin"} <= set(first.headers)
    assert all(100 <= len(b) <= 600 for b in bodies)
    assert all(json.loads(b)[0][0] == f"{12345:019d}" for b in bodies)


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
