"""Group-commit throughput of the SQLite store, and the cost of buffering one operation.

    PYTHONPATH=. python benchmarks/store_bench.py [--seconds 1.5] [--dir /path/on/the/disk]

For each sync mode, body size and batch size it enqueues ``batch`` messages and commits, over
and over, on a fresh data dir, for about ``--seconds``; it prints persisted messages per
second, commits per second and the mean commit latency. A second table shows a steady-state
round as a broker with consumers that keep up does it: publish ``batch`` messages, mark the
previous round's delivered, ack the round before that. The data dir should be on the disk the
broker will use: fsync cost is the whole story for sync=full.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from amqpbroker.store import MessageRecord, SQLiteStore

SYNC_MODES = ("full", "normal", "off")
BODY_SIZES = (16, 1024)
BATCH_SIZES = (1, 100, 1000)
HEADER = b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x10\x98\x00\x0atext/plain\x02"


def run(
    data_dir: Path, sync: str, seconds: float, round_: Callable[[SQLiteStore, int, int], int]
) -> tuple[int, int, float]:
    """Run rounds until ``seconds`` pass; return (messages, commits, elapsed)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    store = SQLiteStore(data_dir, sync=sync)
    store.open()
    queue_id = store.put_queue("/", "bench", True, False, {})
    messages = commits = 0
    seq = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        added = round_(store, queue_id, seq)
        seq += added
        store.commit()
        messages += added
        commits += 1
    store.close()
    return messages, commits, elapsed


def publish_round(batch: int, body: bytes) -> Callable[[SQLiteStore, int, int], int]:
    def round_(store: SQLiteStore, queue_id: int, seq: int) -> int:
        for s in range(seq + 1, seq + batch + 1):
            store.enqueue(queue_id, MessageRecord(s, "amq.direct", "bench", HEADER, body, False))
        return batch

    return round_


def steady_round(batch: int, body: bytes) -> Callable[[SQLiteStore, int, int], int]:
    def round_(store: SQLiteStore, queue_id: int, seq: int) -> int:
        for s in range(seq + 1, seq + batch + 1):
            store.enqueue(queue_id, MessageRecord(s, "amq.direct", "bench", HEADER, body, False))
        for s in range(seq - batch + 1, seq + 1):  # delivered last round
            store.mark_delivered(queue_id, s)
        for s in range(seq - 2 * batch + 1, seq - batch + 1):  # acked now
            store.remove(queue_id, s)
        return batch

    return round_


def buffering_cost(data_dir: Path) -> float:
    """ns per enqueue() call: what the event loop pays per persistent message. Timed in
    rounds of 1000 with a commit between them (not timed), so the buffer stays as small as a
    broker keeps it."""
    store = SQLiteStore(data_dir, sync="off")
    store.open()
    rec = MessageRecord(1, "amq.direct", "bench", HEADER, b"x" * 16, False)
    rounds, per_round, spent = 300, 1000, 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            store.enqueue(0, rec)  # queue 0 does not exist: the commit discards these
        spent += time.perf_counter() - start
        store.commit()
    store.close()
    return spent / (rounds * per_round) * 1e9


def table(
    title: str,
    data_dir: Path,
    seconds: float,
    make: Callable[[int, bytes], Callable[[SQLiteStore, int, int], int]],
) -> None:
    print(f"\n{title}")
    print(f"{'sync':<7}{'body':>6}{'batch':>7}{'msgs/s':>11}{'commits/s':>11}{'ms/commit':>11}")
    for sync in SYNC_MODES:
        for size in BODY_SIZES:
            for batch in BATCH_SIZES:
                msgs, commits, elapsed = run(data_dir, sync, seconds, make(batch, b"x" * size))
                print(
                    f"{sync:<7}{size:>6}{batch:>7}{msgs / elapsed:>11,.0f}"
                    f"{commits / elapsed:>11,.0f}{elapsed / commits * 1000:>11.2f}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per configuration")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data dirs")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.dir))
    try:
        cost = buffering_cost(root / "buffering")
        print(f"enqueue() buffering cost: {cost:.0f} ns per call")
        table("enqueue + commit", root / "data", args.seconds, publish_round)
        table(
            "steady state: enqueue, mark_delivered, remove per message + commit",
            root / "data",
            args.seconds,
            steady_round,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
