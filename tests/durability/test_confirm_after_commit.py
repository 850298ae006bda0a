"""A publisher confirm is a promise: the broker sends basic.ack for a persistent message in
a durable queue only once the message is committed, so killing the broker the moment the
ack arrives loses nothing that ack covers.

Each round publishes a burst in confirm mode, SIGKILLs the broker as soon as the first
basic.ack is read (it may cover the whole burst or a prefix of it), starts a new broker on
the same data dir and looks for every acked message. ``--sync full`` also survives power
loss (fsync per commit); ``--sync normal`` is what RabbitMQ's classic queues promise (the
OS has the write), which is all a process crash needs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import rawflow
from brokerproc import BrokerProcesses
from pamqp import commands

QUEUE = "confirmed"
ROUNDS = {"full": 8, "normal": 4}
BURSTS = (1, 1, 2, 10, 100, 1000)


@pytest.mark.parametrize("sync", list(ROUNDS))
def test_confirmed_messages_survive_sigkill_right_after_the_ack(
    brokers: BrokerProcesses, tmp_path: Path, sync: str
) -> None:
    data = tmp_path / "data"
    rng = random.Random(sync)
    header = rawflow.persistent(12, content_type="text/plain")
    broker = brokers.start(data, sync)
    with rawflow.connect(broker.port) as client:
        rawflow.declare_durable(client, QUEUE)
    for round_ in range(ROUNDS[sync]):
        bodies = [b"r%02d-m%07d" % (round_, i) for i in range(rng.choice(BURSTS))]
        with rawflow.connect(broker.port) as client:
            rawflow.call(client, commands.Confirm.Select(), commands.Confirm.SelectOk)
            client.send_bytes(
                b"".join(rawflow.publish_frames("", QUEUE, header, b) for b in bodies)
            )
            ack = rawflow.expect(client, commands.Basic.Ack)
            broker.kill()
        tag = int(ack.delivery_tag)
        acked = bodies[:tag] if ack.multiple else [bodies[tag - 1]]
        broker = brokers.start(data, sync)
        recovered = rawflow.drain(broker.port, QUEUE)
        present = {d.body for d in recovered}
        missing = [body for body in acked if body not in present]
        assert not missing, (
            f"round {round_}: acked {len(acked)} of {len(bodies)}, lost {missing[:10]}"
        )
        # The content header comes back byte for byte.
        assert all(d.header == header for d in recovered)
