"""Machine facts and CPU counters from /proc (Linux), for the report.

CPU time is read from /proc/stat (the whole machine) and /proc/PID/stat (our broker), in
clock ticks, at the start and the end of a measurement. RabbitMQ's own share is estimated as
machine busy time minus the two client processes' CPU time, which also counts anything else
running on the machine: the report says so.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    at_ns: int  # time.monotonic_ns() when taken
    machine_busy_s: float  # all CPUs, everything but idle and iowait, since boot
    broker_s: float | None  # utime + stime of the broker process, when we know its pid

    @classmethod
    def take(cls, broker_pid: int | None = None) -> CpuSnapshot:
        return cls(
            at_ns=time.monotonic_ns(),
            machine_busy_s=_machine_busy_s(),
            broker_s=process_cpu_s(broker_pid) if broker_pid else None,
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CpuSnapshot:
        broker = data.get("broker_s")
        return cls(
            at_ns=int(str(data["at_ns"])),
            machine_busy_s=float(str(data["machine_busy_s"])),
            broker_s=float(str(broker)) if broker is not None else None,
        )


def _machine_busy_s() -> float:
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    ticks = [int(x) for x in first[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLOCK_TICKS


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all its threads), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces: split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def listener_pid(port: int) -> int | None:
    """The process listening on a local TCP port (to read RabbitMQ's CPU time), if visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st ... inode (field 9); st 0A = LISTEN
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            links = {
                os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")
            }
        except OSError:
            continue
        if links & inodes:
            return int(entry)
    return None


def broker_source_fingerprint() -> str | None:
    """A short hash of the amqpbroker sources' names, sizes and mtimes.

    Our broker runs from the work tree, which others may edit during a run; measurements
    with different fingerprints measured different code.
    """
    spec = importlib.util.find_spec("amqpbroker")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


def machine_facts() -> dict[str, object]:
    """What the README's machine section reports."""
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "memory_gib": round(_mem_total_kib() / 1024 / 1024, 1),
        "loadavg_at_start": list(os.getloadavg()),
        "git_commit": _git_commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
