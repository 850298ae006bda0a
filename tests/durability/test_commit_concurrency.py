"""Entity operations while group commits are in flight.

The group committer writes a batch into an open transaction on the event loop and commits it
on a thread, holding the store's lock in between; a queue or exchange declare that reaches
the store meanwhile waits for that lock. If the loop ever got to run such a declare before
the thread had the commit in hand, the broker would hang for good.
"""

from __future__ import annotations

from pathlib import Path

import rawflow
from brokerproc import BrokerProcesses
from pamqp import commands

QUEUE = "busy"
ROUNDS = 60
BURST = 300


def test_declares_between_persistent_publishes_do_not_hang(
    brokers: BrokerProcesses, tmp_path: Path
) -> None:
    broker = brokers.start(tmp_path / "data", "full")
    header = rawflow.persistent(8)
    burst = b"".join(rawflow.publish_frames("", QUEUE, header, b"m%07d" % i) for i in range(BURST))
    with rawflow.connect(broker.port) as client:
        rawflow.declare_durable(client, QUEUE)
        client.send(commands.Channel.Open(), 2)
        rawflow.expect(client, commands.Channel.OpenOk)
        rawflow.call(client, commands.Confirm.Select(), commands.Confirm.SelectOk)
        confirmed = 0
        for round_ in range(ROUNDS):
            client.send_bytes(burst)  # a commit starts when the broker has read these
            client.send(commands.Exchange.Declare(exchange=f"x{round_}", durable=True), channel=2)
            # Every answer arrives within the deadline (read_event raises otherwise).
            declared = False
            while not declared or confirmed < (round_ + 1) * BURST:
                event = rawflow.read_event(client)
                if isinstance(event, commands.Exchange.DeclareOk):
                    declared = True
                elif isinstance(event, commands.Basic.Ack):
                    confirmed = int(event.delivery_tag)
                else:
                    raise AssertionError(f"unexpected {event!r}")
        assert rawflow.message_count(client, QUEUE) == ROUNDS * BURST
