"""Wall time of the same 100-test pika suite on the embedded broker and on RabbitMQ.

Usage: python benchmarks/pytest_suite_time.py [--runs N] [--rabbitmq URL]
       [--management URL]

Runs ``benchmarks/pytest_suite`` (its own pytest project) as a fresh pytest
process N times per broker and prints the median wall time of the whole process
(interpreter start to exit, what a developer waits for) and pytest's own
"in X s" figure:

- embedded: the plugin's default, one amqpbroker in the process, a vhost per test;
- RabbitMQ, cleanup relay: ``--amqp-url`` only; each test's declarations are
  deleted after it (the plugin's fallback without the management API);
- RabbitMQ, vhost per test: ``--amqp-url`` plus ``--amqp-management-url``.

A RabbitMQ that does not answer is left out of the table.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

SUITE = Path(__file__).parent / "pytest_suite"
# One run of the suite; RabbitMQ with a vhost per test takes the longest.
RUN_TIMEOUT = 600


def answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 80), timeout=1).close()
    except OSError:
        return False
    return True


def run_suite(*args: str) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMQPBROKER_TEST_")}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=SUITE,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    wall = time.perf_counter() - started
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or "100 passed" not in last:
        raise RuntimeError(f"suite failed ({' '.join(args)}):\n{result.stdout}{result.stderr}")
    reported = re.search(r"in ([\d.]+)s", last)
    return wall, float(reported.group(1)) if reported else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5673/")
    parser.add_argument("--management-amqp", default="amqp://guest:guest@127.0.0.1:5674/")
    parser.add_argument("--management", default="http://guest:guest@127.0.0.1:15674/")
    opts = parser.parse_args()
    setups: list[tuple[str, list[str]]] = [("embedded amqpbroker, vhost per test", [])]
    if answers(opts.rabbitmq):
        setups.append(("RabbitMQ, cleanup relay", ["--amqp-url", opts.rabbitmq]))
    if answers(opts.management_amqp) and answers(opts.management):
        setups.append(
            (
                "RabbitMQ, vhost per test (management API)",
                ["--amqp-url", opts.management_amqp, "--amqp-management-url", opts.management],
            )
        )
    print(f"100-test pika suite, median of {opts.runs} runs (wall = whole pytest process)")
    for name, args in setups:
        runs = [run_suite(*args) for _ in range(opts.runs)]
        wall = statistics.median(r[0] for r in runs)
        reported = statistics.median(r[1] for r in runs)
        print(f"{name:45s} wall {wall:6.2f} s   pytest {reported:6.2f} s")


if __name__ == "__main__":
    main()
