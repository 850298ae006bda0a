"""Smoke test of the routing benchmark: ``python -m benchmarks.routing`` runs against our
broker and prints its table (small sizes, no RabbitMQ)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_routing_benchmark_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.routing", "--bindings", "200", "--messages", "500",
            "--repeat", "1", "--no-rabbitmq", "--quiet-wait", "0", "--out", str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| no match (`nomatch.a.b.c`) |" in done.stdout
    [result] = tmp_path.glob("routing-*.json")
    report = json.loads(result.read_text())
    assert [s["bindings"] for s in report["setups"]] == [200]
    routed = {run["case"]: run["routed_per_message"] for run in report["runs"]}
    # Each case reaches the queues it was designed to reach (3 bindings, 2 queues).
    assert routed == {"no match": 0, "1 match": 1, "3 matches": 2}
    assert all(run["error"] is None for run in report["runs"])
