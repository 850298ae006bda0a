"""The brokers under test: ours as a subprocess per measurement, RabbitMQ as found.

Resource handling: ``OurBroker`` is a context manager; leaving it sends SIGTERM, waits, then
SIGKILLs, and removes its temporary data directory. The child also gets SIGTERM from the
kernel if the harness dies first (PR_SET_PDEATHSIG), so no broker outlives a killed run.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from .amqpraw import BrokerAddress, RawConnection

READY_LINE = re.compile(r"amqpbroker: listening on amqp://(\[[^\]]+\]|[^:\s]+):(\d+)")
# Time allowed from spawning the broker to its "listening" line.
START_TIMEOUT_S = 20.0
# Time allowed for a graceful exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 10.0
POLL_S = 0.02
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5673/"
PR_SET_PDEATHSIG = 1
# Passed when the broker's --help lists them.
OPTIONAL_FLAGS = ("--no-management",)


def broker_command() -> list[str]:
    """The ``amqpbroker`` console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("amqpbroker")
    if script.exists():
        return [str(script)]
    found = shutil.which("amqpbroker")
    return [found] if found else [sys.executable, "-m", "amqpbroker"]


@functools.cache
def _broker_help() -> str:
    """``amqpbroker --help``, to pass only the flags this version of the broker has."""
    try:
        done = subprocess.run(
            [*broker_command(), "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class OurBroker:
    """``amqpbroker --port 0`` on loopback: ``--transient``, or a fresh data dir + ``--sync``.

    ``data_dir``: use this data dir instead of a fresh one, and leave it in place on stop
    (to start another broker on the same data).
    """

    def __init__(
        self,
        log_path: Path,
        persistent: bool,
        sync: str = "full",
        data_root: Path | None = None,
        data_dir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.log_path = log_path
        self.extra_args = extra_args
        self.start_timeout_s = start_timeout_s
        self.persistent = persistent
        self.sync = sync
        self.data_root = data_root
        self.data_dir: Path | None = data_dir
        self.keep_data = data_dir is not None
        self.process: subprocess.Popen[bytes] | None = None
        self.address: BrokerAddress | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> OurBroker:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> BrokerAddress:
        cmd = [*broker_command(), "--host", "127.0.0.1", "--port", "0", "--log-level", "warning"]
        # Only AMQP: a management listener on its fixed default port would collide with
        # other brokers on the machine (and is not what is measured).
        cmd += [flag for flag in OPTIONAL_FLAGS if flag in _broker_help()]
        if self.persistent:
            if self.data_dir is None:
                self.data_dir = Path(tempfile.mkdtemp(prefix="amqpbench-", dir=self.data_root))
            cmd += ["--data-dir", str(self.data_dir), "--sync", self.sync]
        else:
            cmd += ["--transient"]
        cmd += self.extra_args
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.address = self._wait_ready()
        return self.address

    def _wait_ready(self) -> BrokerAddress:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            match = READY_LINE.search(text)
            if match:
                return BrokerAddress(host=match.group(1).strip("[]"), port=int(match.group(2)))
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"amqpbroker exited with {self.process.returncode}: {text[-2000:]}"
                )
            time.sleep(POLL_S)
        raise TimeoutError(f"amqpbroker printed no listening line in {self.start_timeout_s:.0f} s")

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if self.data_dir is not None and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


def probe(address: BrokerAddress, timeout: float = 2.0) -> dict[str, object]:
    """Log in once and return the server properties; raises OSError/TimeoutError if absent."""
    with RawConnection.open(address, timeout=timeout, channels=0) as conn:
        return conn.server_properties


def describe_server(properties: dict[str, object]) -> str:
    def text(key: str) -> str:
        value = properties.get(key, "")
        return value.decode() if isinstance(value, bytes) else str(value)

    information = text("information")
    label = f"{text('product')} {text('version')}".strip()
    if information.startswith("amqpbroker"):
        label += f" ({information})"
    return label or "unknown"
