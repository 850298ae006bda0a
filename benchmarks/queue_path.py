"""The queue's hot path in process: publish -> queue -> deliver -> ack, no sockets.

``python -m benchmarks.queue_path`` drives a broker through two sans-IO sessions (one
publisher, one consumer), the way tests/unit/test_delivery_path.py does, and prints
microseconds per message for three shapes of load on a plain in-memory queue:

* ``direct``: a no-ack consumer is waiting, each publish is delivered at once
  (Queue.publish's fast path);
* ``acks``: a consumer with prefetch 1000 acks once per batch of 100 (multiple=true):
  publish, deliver, Channel.ack and the re-dispatch after it;
* ``backlog``: 100,000 messages published with no consumer, then drained by a
  prefetch-1000 consumer acking per batch (the ready list and Queue.dispatch).

Figures are the median of ``--repeat`` runs (default 7); each run builds a fresh broker.
Time is this process's CPU time (``time.process_time``), so other work on the machine
counts only through caches and frequency, not through waiting for a core; still,
compare two versions by interleaving their runs (put the other checkout first on
``PYTHONPATH`` and run this file by its path, not with ``-m`` from this checkout).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
from collections.abc import Callable

from pamqp import commands

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.session import Session
from amqpbroker.config import Settings
from amqpbroker.protocol import framing, method_codec

BATCH = 100  # publishes per receive_data, as a client's sendall of 100 frames


def _method(channel: int, method: object) -> bytes:
    return method_codec.encode_method(channel, method)  # type: ignore[arg-type]


def _open(broker: Broker, port: int) -> Session:
    session = Session(broker, f"127.0.0.1:{port}")
    session.receive_data(framing.PROTOCOL_HEADER)
    session.receive_data(
        _method(
            0,
            method_codec.make_method(
                commands.Connection.StartOk,
                mechanism="PLAIN",
                response="\0guest\0guest",
                locale="en_US",
            ),
        )
    )
    session.receive_data(
        _method(
            0,
            method_codec.make_method(
                commands.Connection.TuneOk, channel_max=2047, frame_max=131072, heartbeat=0
            ),
        )
    )
    session.receive_data(
        _method(0, method_codec.make_method(commands.Connection.Open, virtual_host="/"))
    )
    session.receive_data(_method(1, method_codec.make_method(commands.Channel.Open)))
    session.proto.take_output()
    return session


def _publishes(count: int) -> bytes:
    method = struct.pack(">HHH", 60, 40, 0) + b"\x00" + b"\x01q" + b"\x00"
    header = struct.pack(">HHQH", 60, 0, 16, 0)
    body = b"x" * 16
    one = (
        framing.encode_frame(framing.FRAME_METHOD, 1, method)
        + framing.encode_frame(framing.FRAME_HEADER, 1, header)
        + framing.encode_frame(framing.FRAME_BODY, 1, body)
    )
    return one * count


def _ack(tag: int) -> bytes:
    return struct.pack(">BHIHHQBB", 1, 1, 13, 60, 80, tag, 1, 0xCE)


def _setup(no_ack: bool, consume: bool = True) -> tuple[Broker, Session, Session]:
    broker = Broker(Settings(consumer_timeout=0))
    publisher = _open(broker, 1)
    consumer = _open(broker, 2)
    consumer.receive_data(_method(1, method_codec.make_method(commands.Queue.Declare, queue="q")))
    if not no_ack:
        consumer.receive_data(
            _method(1, method_codec.make_method(commands.Basic.Qos, prefetch_count=1000))
        )
    if consume:
        consumer.receive_data(
            _method(
                1,
                method_codec.make_method(
                    commands.Basic.Consume, queue="q", consumer_tag="c", no_ack=no_ack
                ),
            )
        )
    consumer.proto.take_output()
    return broker, publisher, consumer


def run_direct(messages: int) -> float:
    _broker, publisher, consumer = _setup(no_ack=True)
    batch = _publishes(BATCH)
    start = time.process_time()
    for _ in range(messages // BATCH):
        publisher.receive_data(batch)
        consumer.proto.take_output()
        consumer.drained()
    return time.process_time() - start


def run_acks(messages: int) -> float:
    _broker, publisher, consumer = _setup(no_ack=False)
    batch = _publishes(BATCH)
    channel = consumer.channels[1]
    start = time.process_time()
    for _ in range(messages // BATCH):
        publisher.receive_data(batch)
        consumer.proto.take_output()
        consumer.drained()
        consumer.receive_data(_ack(channel.next_tag - 1))
    return time.process_time() - start


def run_backlog(messages: int) -> float:
    broker, publisher, consumer = _setup(no_ack=False, consume=False)
    batch = _publishes(BATCH)
    start = time.process_time()
    for _ in range(messages // BATCH):
        publisher.receive_data(batch)
    consumer.receive_data(
        _method(1, method_codec.make_method(commands.Basic.Consume, queue="q", consumer_tag="c"))
    )
    channel = consumer.channels[1]
    queue = broker.vhosts["/"].queues["q"]
    while channel.unacked:
        consumer.proto.take_output()
        consumer.drained()
        consumer.receive_data(_ack(channel.next_tag - 1))
    assert queue.message_count == 0
    return time.process_time() - start


SCENARIOS: dict[str, tuple[Callable[[int], float], int]] = {
    "direct": (run_direct, 200_000),
    "acks": (run_acks, 200_000),
    "backlog": (run_backlog, 100_000),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    for name in args.scenarios.split(","):
        run, messages = SCENARIOS[name]
        times = [run(messages) / messages * 1e6 for _ in range(args.repeat)]
        print(f"{name:8} {statistics.median(times):6.3f} us/msg  (min {min(times):.3f})")


if __name__ == "__main__":
    main()
