"""benchmarks/connections.py still runs: a few connections against our broker only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_connections_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "connections.json"
    command = [
        sys.executable, "-m", "benchmarks.connections", "-n", "10", "--hold", "1",
        "--heartbeat", "1", "--settle", "0", "--no-rabbitmq", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    [ours] = json.loads(out.read_text())["sides"]
    assert (ours["opened"], ours["lost_during_hold"], ours["delivered"]) == (10, 0, 10)
    assert ours["heartbeats_received"] > 0
