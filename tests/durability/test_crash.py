"""Crash a broker under load and check what comes back (RabbitMQ's guarantees, RABBITMQ.md
"Durability guarantees"; the shape of classic_queue_prop_SUITE's crash-restart command).

A publisher with confirms and a consumer with manual acks run against an ``amqpbroker``
process that is SIGKILLed at a random moment; a new broker then starts on the same data dir
and the queue is drained. The rules:

- every confirmed message is there: acked by the consumer before the kill, or recovered;
- no message is recovered twice, and recovered messages keep their publish order;
- every recovered message that may have been delivered carries redelivered=true;
- no acked message comes back once the broker has committed the ack. A plain basic.ack has
  no reply, so the client cannot know that, and (as with RabbitMQ) the acks in flight at
  the crash may come back; but acks are committed in the order they arrive, so those that
  come back are the last ones sent: once one acked message comes back, every later acked
  message that was confirmed must come back too. With acks in a transaction, the client
  does know: no message whose tx.commit-ok arrived may come back.

Each seed picks the sync mode (all three survive a process crash: every commit is written
to the OS before the confirm), the ack style, the prefetch, the moment of the kill, and
whether the queue keeps only 64 ready messages in memory (``--paging-window``: the rest of
the backlog is then on disk only, paged in as the consumer drains it).
The suite runs a few seeds; to loop it locally:

    AMQPBROKER_CRASH_RUNS=20 pytest tests/durability/test_crash.py -q
    AMQPBROKER_CRASH_RUNS=100 AMQPBROKER_CRASH_SEED=1000 pytest tests/durability/test_crash.py -q
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
import rawflow
from brokerproc import BrokerProcesses
from crashclients import Consumer, Publisher, index_of

RUNS = int(os.environ.get("AMQPBROKER_CRASH_RUNS", "4"))
FIRST_SEED = int(os.environ.get("AMQPBROKER_CRASH_SEED", "0"))
SYNC_MODES = ("full", "normal", "off")
QUEUE = "crash"
PAGING_WINDOW = 64
# Upper bound on the traffic before the kill, and on a thread's exit after it.
TRAFFIC_DEADLINE = 3.0
JOIN_TIMEOUT = 10.0


def broker_args(seed: int) -> tuple[str, ...]:
    return ("--paging-window", str(PAGING_WINDOW)) if (seed // 3) % 2 else ()


def run_until_killed(
    brokers: BrokerProcesses, data: Path, seed: int
) -> tuple[Publisher, Consumer, str]:
    rng = random.Random(seed)
    sync = SYNC_MODES[seed % 3]
    broker = brokers.start(data, sync, *broker_args(seed))
    with rawflow.connect(broker.port) as client:
        rawflow.declare_durable(client, QUEUE)
    publisher = Publisher(broker.port, QUEUE, random.Random(rng.random()))
    consumer = Consumer(broker.port, QUEUE, random.Random(rng.random()), tx=seed % 2 == 1)
    kill_after = rng.randint(1, 3000)  # confirmed messages
    consumer_after = rng.choice([0, 0, kill_after // 2])  # sometimes a backlog first
    publisher.start()
    try:
        deadline = time.monotonic() + TRAFFIC_DEADLINE
        while len(publisher.confirmed) < consumer_after and time.monotonic() < deadline:
            time.sleep(0.001)
        consumer.start()
        assert consumer.ready.wait(JOIN_TIMEOUT), f"consumer not ready: {consumer.error!r}"
        while len(publisher.confirmed) < kill_after and time.monotonic() < deadline:
            if publisher.error or consumer.error:
                break
            time.sleep(0.001)
        time.sleep(rng.choice([0, 0, 0.001, 0.01]))
    finally:
        broker.kill()
        publisher.stop.set()
        for thread in (publisher, consumer):
            if thread.started():
                thread.join(JOIN_TIMEOUT)
            assert not thread.is_alive(), f"{thread.name} did not stop"
    for thread in (publisher, consumer):
        assert thread.error is None, f"{thread.name}: {thread.error!r}"
        assert thread.refused is None, f"{thread.name}: {thread.refused}"
    return publisher, consumer, sync


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + RUNS))
def test_crash_loses_no_confirmed_message(
    brokers: BrokerProcesses, tmp_path: Path, seed: int
) -> None:
    data = tmp_path / "data"
    publisher, consumer, sync = run_until_killed(brokers, data, seed)
    assert publisher.confirmed, "no traffic before the kill"
    assert not publisher.nacked

    restarted = brokers.start(data, sync, *broker_args(seed))
    recovered = [(index_of(d.body), d.redelivered) for d in rawflow.drain(restarted.port, QUEUE)]
    indexes = [index for index, _ in recovered]
    present = set(indexes)
    acks_sent = set(consumer.acks_sent)
    summary = (
        f"seed {seed} sync={sync} tx={consumer.tx} prefetch={consumer.prefetch}"
        f" paged={bool(broker_args(seed))}:"
        f" published {publisher.published}, confirmed {len(publisher.confirmed)},"
        f" received {len(consumer.received)}, acks sent {len(acks_sent)},"
        f" committed acks {len(consumer.acked)}, requeued {consumer.requeued},"
        f" recovered {len(recovered)}"
    )

    # No duplicates, publish order kept.
    assert indexes == sorted(present), summary
    assert len(indexes) == len(present), summary
    # Only what was published, and every confirmed message is accounted for.
    assert all(0 <= i < publisher.published for i in present), summary
    lost = publisher.confirmed - present - acks_sent
    assert not lost, f"confirmed messages lost: {sorted(lost)[:20]}; {summary}"
    # Every recovered message that may have been delivered is flagged redelivered.
    delivered = {index for index, _ in consumer.received}
    unflagged = [i for i, redelivered in recovered if i in delivered and not redelivered]
    assert not unflagged, f"delivered, recovered without redelivered: {unflagged[:20]}; {summary}"
    # Acked messages that come back are the acks the broker had not committed: a tail.
    back = [n for n, index in enumerate(consumer.acks_sent) if index in present]
    if back:
        tail = consumer.acks_sent[back[0] :]
        missing = [i for i in tail if i in publisher.confirmed and i not in present]
        assert not missing, f"acks committed out of order: {missing[:20]}; {summary}"
    # Acks whose transaction committed never come back.
    assert not consumer.acked & present, summary
    print(summary, f"acked and back {len(back)}")
