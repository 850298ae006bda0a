"""py-spy on our broker during one measurement, and a text summary of where the time went.

py-spy samples the broker process from outside and writes collapsed stacks
(``--format raw``: one ``frame;frame;... count`` line per distinct stack), which speedscope
or flamegraph.pl can also read. Idle time (the event loop waiting in epoll) is not
sampled, so shares are shares of the broker's busy time.

py-spy pauses the broker for each sample (its default): with ``--nonblocking`` it reads the
stack of a running interpreter, and in Python 3.11, where calls do not leave the
interpreter loop, that credited the caller's call line with much of its callees' time
(``self._handle_frame(*frame)`` at 20 % self nonblocking, 5 % paused). The pauses cost the
broker a few per cent of its speed during the profiled run only.

Resource handling: ``PySpy`` is a context manager; leaving it sends SIGINT (py-spy then
writes its file) and kills it if it has not exited in time.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SAMPLE_RATE = 250  # samples per second: enough resolution for runs of a few seconds
ATTACH_S = 0.5  # py-spy needs a moment to attach before the load starts
STOP_TIMEOUT_S = 20.0
TOP = 20


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class PySpy:
    def __init__(self, pid: int, raw_path: Path) -> None:
        self.pid = pid
        self.raw_path = raw_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        exe = py_spy_path()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.raw_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                exe, "record", "--pid", str(self.pid), "--format", "raw",
                "--rate", str(SAMPLE_RATE), "-o", str(self.raw_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(ATTACH_S)
        if self.process.poll() is not None:
            error = (
                self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            )
            raise RuntimeError(f"py-spy exited at once: {error.strip()[:500]}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if process.stderr is not None:
            process.stderr.close()


@dataclass(frozen=True)
class ProfileSummary:
    samples: int
    self_share: list[tuple[str, float]]  # where the CPU is when sampled (leaf function)
    total_share: list[tuple[str, float]]  # share of samples with the function on the stack
    line_share: list[tuple[str, float]]  # leaf frames by source line

    def text(self, top: int = TOP) -> str:
        lines = [f"{self.samples} samples of the broker's busy time"]
        for title, shares in (
            ("self (leaf function; includes the C code it calls)", self.self_share),
            ("total (function anywhere on the stack)", self.total_share),
            ("hot lines (leaf frame)", self.line_share),
        ):
            lines.append(f"  {title}:")
            lines += [f"    {share * 100:5.1f}%  {name}" for name, share in shares[:top]]
        return "\n".join(lines)


def summarize(raw_path: Path) -> ProfileSummary:
    """Self, inclusive and per-line shares from py-spy's collapsed stacks."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    line_counts: Counter[str] = Counter()
    samples = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";") if frame.strip()]
        if not frames:
            continue
        samples += count
        functions = [_without_line(frame) for frame in frames]
        self_counts[functions[-1]] += count
        line_counts[frames[-1]] += count
        for name in set(functions):
            total_counts[name] += count

    def shares(counts: Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / samples) for name, n in counts.most_common()]

    if not samples:
        return ProfileSummary(0, [], [], [])
    return ProfileSummary(samples, shares(self_counts), shares(total_counts), shares(line_counts))


_LINE_NUMBER = re.compile(r":\d+\)$")


def _without_line(frame: str) -> str:
    return _LINE_NUMBER.sub(")", frame)


def _short(frame: str) -> str:
    """``f (/x/site-packages/trio/_core/_run.py:12)`` -> ``f (trio/_core/_run.py:12)``."""
    name, _, where = frame.strip().partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    if where.startswith(".") and "/" in where:  # "/lib/python3" + ".11/foo.py"
        where = "stdlib/" + where.split("/", 1)[1]
    return f"{name} ({where})" if where else name
