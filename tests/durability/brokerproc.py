"""A broker in its own process, as operators run it: ``amqpbroker --port 0 --data-dir DIR``.

Durability is about what survives the process, so these tests never share a process with
the broker: they start the console script, wait for its ready line, talk to it over
loopback, and end it with SIGTERM (a clean shutdown) or SIGKILL (a crash).

Resource handling: every wait is bounded; a process that does not stop in time is
SIGKILLed. ``BrokerProcesses`` (the ``brokers`` fixture) kills whatever a test left
running, so a failing test never leaves a broker behind. The broker's stderr goes to a
file beside the data dir (a pipe nobody reads would fill and stall the broker); its
text is in every failure message.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# How long a broker may take to print its ready line (it takes ~0.25 s here).
START_TIMEOUT = 15.0
# How long a clean shutdown (SIGTERM) may take before we call it hung.
STOP_TIMEOUT = 10.0
# How long a CLI run that must fail at startup may take.
CLI_TIMEOUT = 15.0
READY_PREFIX = "amqpbroker: listening on amqp://"


def amqpbroker_command() -> list[str]:
    """The ``amqpbroker`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).with_name("amqpbroker")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("amqpbroker")
    return [found] if found else [sys.executable, "-m", "amqpbroker"]


class BrokerProcess:
    """One ``amqpbroker`` process. ``start()`` returns once it accepts connections."""

    def __init__(
        self,
        data_dir: str | Path | None,
        *,
        sync: str | None = None,
        args: tuple[str, ...] = (),
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.data_dir = None if data_dir is None else str(data_dir)
        self.sync = sync
        self.args = args
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def url_for(self, vhost: str) -> str:
        from urllib.parse import quote

        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def command(self) -> list[str]:
        cmd = [*amqpbroker_command(), "--port", "0"]
        if self.data_dir is not None:
            cmd += ["--data-dir", self.data_dir]
        if self.sync is not None:
            cmd += ["--sync", self.sync]
        if not any(a.startswith(("--management-port", "--no-management")) for a in self.args):
            # Not the default 15672: two suites on one machine (other Pythons, other
            # checkouts) would collide on it.
            cmd += ["--management-port", "0"]
        return [*cmd, "--log-level", "warning", *self.args]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = START_TIMEOUT) -> BrokerProcess:
        assert self.proc is None, "start() once per BrokerProcess"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
            )
        try:
            line = self._ready_line(timeout)
        except BaseException:
            self.kill()
            raise
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def _ready_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        deadline = time.monotonic() + timeout
        data = b""
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while b"\n" not in data:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"amqpbroker printed no ready line in {timeout} s; log: {self.log()}"
                    )
                if not sel.select(remaining):
                    continue
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    code = self.proc.wait(STOP_TIMEOUT)
                    raise RuntimeError(f"amqpbroker exited with {code} at startup: {self.log()}")
                data += chunk
        line = data.split(b"\n", 1)[0].decode()
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"unexpected first line {line!r}; log: {self.log()}")
        return line

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM: the broker closes connections, commits and marks a clean shutdown.
        Returns the exit code; a broker that does not stop in time fails the test."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"amqpbroker ignored SIGTERM for {timeout} s") from None
        self._close_pipe()
        return code

    def kill(self) -> None:
        """SIGKILL: a crash. Nothing is flushed, nothing is marked clean."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(STOP_TIMEOUT)
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class BrokerProcesses:
    """Starts brokers for one test and kills every one still running at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[BrokerProcess] = []

    def start(
        self,
        data_dir: str | Path | None,
        sync: str | None = None,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> BrokerProcess:
        log_path = self.tmp / f"broker-{len(self.started) + 1}.log"
        broker = BrokerProcess(data_dir, sync=sync, args=args, log_path=log_path, env=env, cwd=cwd)
        self.started.append(broker)
        return broker.start()

    def restart(self, broker: BrokerProcess, *, crash: bool = False) -> BrokerProcess:
        """Stop ``broker`` (SIGKILL if ``crash``, else SIGTERM) and start a new one on the
        same data dir and flags."""
        if crash:
            broker.kill()
        else:
            assert broker.terminate() == 0
        return self.start(
            broker.data_dir, broker.sync, *broker.args, env=broker.env, cwd=broker.cwd
        )

    def cleanup(self) -> None:
        for broker in self.started:
            broker.kill()


def run_cli(*args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``amqpbroker ARGS`` to completion (for startup failures), bounded in time."""
    return subprocess.run(
        [*amqpbroker_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
