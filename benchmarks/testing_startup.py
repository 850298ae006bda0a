"""How fast the broker is there for a test suite: import, start, CLI, vhost per test.

Usage: python benchmarks/testing_startup.py [--runs N]

Prints the median of N fresh processes (or N repetitions) for:
- import of amqpbroker.embed, and of the pytest plugin alone, after pytest (what
  every pytest session in the environment pays);
- Broker().start() until it accepts connections, first in a process and again;
- the first AMQP handshake frame (protocol header -> connection.start);
- ``amqpbroker --port 0`` until its ready line, from spawning the process;
- one vhost created and deleted from another thread (the amqp_vhost fixture's cost).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

# Run in a fresh interpreter: import and first start, in milliseconds.
_FRESH = """
import time
t0 = time.perf_counter()
import amqpbroker.embed
t1 = time.perf_counter()
broker = amqpbroker.embed.Broker().start()
t2 = time.perf_counter()
import socket
sock = socket.create_connection(("127.0.0.1", broker.port))
sock.sendall(b"AMQP\\x00\\x00\\x09\\x01")
sock.recv(4096)
t3 = time.perf_counter()
sock.close()
broker.stop()
t4 = time.perf_counter()
broker = amqpbroker.embed.Broker().start()
t5 = time.perf_counter()
broker.stop()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t5 - t4) * 1e3)
"""
# pytest is imported first: the plugin's own cost is what matters.
_PLUGIN_IMPORT = """
import time
import pytest
t0 = time.perf_counter()
import amqpbroker.testing.pytest_plugin
print((time.perf_counter() - t0) * 1e3)
"""
# Time to the CLI's ready line is bounded: a broken build must not hang the run.
CLI_TIMEOUT = 30


def fresh(code: str) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [float(x) for x in out.split()]


def cli_ready_ms() -> float:
    exe = shutil.which("amqpbroker") or ""
    cmd = [exe] if exe else [sys.executable, "-m", "amqpbroker"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "--port", "0", "--transient"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = (time.perf_counter() - started) * 1e3
        if not line.startswith("amqpbroker: listening on amqp://"):
            raise RuntimeError(f"unexpected first line {line!r}")
        return elapsed
    finally:
        proc.terminate()
        proc.wait(CLI_TIMEOUT)


def vhost_round_trip_us(count: int = 2000) -> float:
    import amqpbroker

    with amqpbroker.Broker() as broker:
        samples = []
        for n in range(count):
            started = time.perf_counter()
            broker.add_vhost(f"bench-{n}")
            broker.delete_vhost(f"bench-{n}")
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    rows = [fresh(_FRESH) for _ in range(runs)]
    imports, first, handshake, again = (statistics.median(col) for col in zip(*rows, strict=True))
    plugin = statistics.median(fresh(_PLUGIN_IMPORT)[0] for _ in range(runs))
    cli = statistics.median(cli_ready_ms() for _ in range(runs))
    vhost = vhost_round_trip_us()
    print(f"median of {runs} runs")
    print(f"import amqpbroker.embed           {imports:8.1f} ms")
    print(f"import the pytest plugin          {plugin:8.1f} ms")
    print(f"Broker().start(), first           {first:8.1f} ms")
    print(f"Broker().start(), again           {again:8.1f} ms")
    print(f"first handshake frame             {handshake:8.1f} ms")
    print(f"amqpbroker --port 0 -> ready line {cli:8.1f} ms")
    print(f"vhost add + delete (other thread) {vhost:8.1f} us")


if __name__ == "__main__":
    main()
