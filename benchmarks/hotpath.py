"""The publish -> deliver -> ack hot path in process: no sockets, no event loop.

``python -m benchmarks.hotpath`` (``--help`` for the options) opens two sessions on one
in-memory broker -- a publisher and a consumer, as broker/session.py sees client
connections -- feeds the publisher raw publish frames in reads of ``--batch``
publishes, takes the consumer's output after each read (and acks it with one
multiple ack per read in the ``acks`` scenarios), and reports the CPU time
(``time.process_time``) per message, median of ``--repeat`` runs.  What it measures
is the broker's own code from bytes in to bytes out: frame reading, the publish
caches, routing, queueing, delivery encoding, acks.  Process CPU time, not wall
time, so a busy machine disturbs it less than the socket benchmarks (it still
shares caches and cores: compare runs made side by side).

Scenarios: ``burst`` (every publish the same up to the body: the reader's repeats),
``ids`` (a message_id per message: the same method, a new header each time),
``burst-acks`` and ``ids-acks`` (the same with a manual-ack consumer, prefetch 1000).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import struct
import time
from collections.abc import Callable

from pamqp import commands

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.session import Session
from amqpbroker.config import Settings

# The frame codec moved between modules over time; both layouts are accepted so
# the same script measures older commits too.
try:
    from amqpbroker.protocol import framing as _framing
    from amqpbroker.protocol import method_codec as _methods
except ImportError:  # pragma: no cover - before the split of protocol/frames.py
    from amqpbroker.protocol import frames as _framing  # type: ignore[no-redef]
    from amqpbroker.protocol import frames as _methods  # type: ignore[no-redef]

SCENARIOS = ("burst", "ids", "burst-acks", "ids-acks")


def _method(channel: int, method: object) -> bytes:
    return _methods.encode_method(channel, method)  # type: ignore[arg-type]


def _make(cls: object, **fields: object) -> object:
    return _methods.make_method(cls, **fields)  # type: ignore[arg-type]


def _open(broker: Broker, port: int) -> Session:
    session = Session(broker, f"127.0.0.1:{port}")
    session.receive_data(_framing.PROTOCOL_HEADER)
    start_ok = _make(
        commands.Connection.StartOk, mechanism="PLAIN", response="\0guest\0guest", locale="en_US"
    )
    session.receive_data(_method(0, start_ok))
    tune_ok = _make(commands.Connection.TuneOk, channel_max=2047, frame_max=131072, heartbeat=0)
    session.receive_data(_method(0, tune_ok))
    session.receive_data(_method(0, _make(commands.Connection.Open, virtual_host="/")))
    session.receive_data(_method(1, _make(commands.Channel.Open)))
    session.proto.take_output()
    return session


def _publish(index: int, with_id: bool) -> bytes:
    body = b"x" * 16
    if with_id:
        value = b"id-%08d" % index
        header = struct.pack(">HHQH", 60, 0, len(body), 0x0080) + bytes((len(value),)) + value
    else:
        header = struct.pack(">HHQH", 60, 0, len(body), 0x1000) + b"\x01"  # delivery_mode 1
    method = struct.pack(">HHH", 60, 40, 0) + b"\x00\x01q\x00"  # default exchange, key "q"
    return (
        _framing.encode_frame(_framing.FRAME_METHOD, 1, method)
        + _framing.encode_frame(_framing.FRAME_HEADER, 1, header)
        + _framing.encode_frame(_framing.FRAME_BODY, 1, body)
    )


def _last_tag(out: bytes) -> int:
    """The delivery tag of the last basic.deliver in ``out`` (0 for none)."""
    pos = out.rfind(b"\x00\x3c\x00\x3c")
    if pos < 0:
        return 0
    tag_at = pos + 5 + out[pos + 4]
    return int(struct.unpack_from(">Q", out, tag_at)[0])


def run(scenario: str, messages: int, batch: int) -> float:
    """CPU seconds per message for one run of ``scenario``."""
    acks = scenario.endswith("acks")
    with_id = scenario.startswith("ids")
    broker = Broker(Settings(consumer_timeout=0))
    publisher = _open(broker, 1)
    consumer = _open(broker, 2)
    consumer.receive_data(_method(1, _make(commands.Queue.Declare, queue="q")))
    if acks:
        consumer.receive_data(_method(1, _make(commands.Basic.Qos, prefetch_count=1000)))
    consumer.receive_data(
        _method(1, _make(commands.Basic.Consume, queue="q", consumer_tag="c", no_ack=not acks))
    )
    consumer.proto.take_output()
    reads = [
        b"".join(_publish(start + i, with_id) for i in range(batch))
        for start in range(0, messages, batch)
    ]
    take: Callable[[], bytes] = consumer.proto.take_output
    gc.collect()
    started = time.process_time()
    for data in reads:
        publisher.receive_data(data)
        out = take()
        consumer.drained()
        if acks and (tag := _last_tag(out)):
            consumer.receive_data(struct.pack(">BHIHHQBB", 1, 1, 13, 60, 80, tag, 1, 0xCE))
    elapsed = time.process_time() - started
    publisher.proto.take_output()
    assert not publisher.proto.closing and not consumer.proto.closing
    return elapsed / (len(reads) * batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100, help="publishes per read")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args(argv)
    for scenario in args.scenarios.split(","):
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        runs = [run(scenario, args.messages, args.batch) for _ in range(args.repeat)]
        median = statistics.median(runs) * 1e6
        spread = (max(runs) - min(runs)) / 2 / statistics.median(runs) * 100
        print(f"{scenario:11} {median:6.2f} us/msg  ±{spread:.0f}%  ({args.repeat} runs)")


if __name__ == "__main__":
    main()
