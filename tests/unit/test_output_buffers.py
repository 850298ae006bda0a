"""The connection's output as the writer sends it: big buffers (64 KiB bodies) are passed
to sendmsg as they are, the short ones between them joined, and a partial sendmsg resumes
where the kernel stopped."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from amqpbroker.protocol.connection import AMQPConnection
from amqpbroker.protocol.output import SEND_AS_IS
from amqpbroker.server.server import _send_buffers

BIG = b"B" * SEND_AS_IS
SMALL = b"s" * 10


def _connection(out: list[bytes]) -> AMQPConnection:
    proto = AMQPConnection(handler=None)  # type: ignore[arg-type]  # output only
    proto.out.extend(out)
    return proto


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ([], []),
        ([SMALL], [SMALL]),
        ([SMALL, b"t", SMALL], [SMALL + b"t" + SMALL]),
        ([BIG], [BIG]),
        ([SMALL, BIG, SMALL, SMALL], [SMALL, BIG, SMALL + SMALL]),
        ([b"a", b"b", BIG, BIG, b"c"], [b"ab", BIG, BIG, b"c"]),
        ([BIG, b"x"], [BIG, b"x"]),
    ],
)
def test_take_buffers_joins_only_the_short_runs(out: list[bytes], expected: list[bytes]) -> None:
    proto = _connection(out)
    bufs = proto.take_buffers()
    assert bufs == expected
    assert not proto.out
    for buf in bufs:
        if len(buf) >= SEND_AS_IS:
            assert any(buf is item for item in out)  # not copied


def test_take_buffers_joins_a_long_queue_whole() -> None:
    out = [SMALL] * 300 + [BIG]
    assert _connection(out).take_buffers() == [b"".join(out)]


class _TrickleSocket:
    """sendmsg that takes at most ``limit`` bytes per call, like a full socket buffer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received = bytearray()
        self.calls = 0

    async def sendmsg(self, buffers: list[Any]) -> int:
        await trio.lowlevel.checkpoint()
        self.calls += 1
        data = b"".join(bytes(b) for b in buffers)[: self.limit]
        self.received += data
        return len(data)


@pytest.mark.parametrize("limit", [1, 7, SEND_AS_IS - 1, SEND_AS_IS + 3, 10**9])
def test_send_buffers_resumes_after_partial_sends(limit: int) -> None:
    bufs = [b"head", BIG, b"mid" * 5, b"C" * (SEND_AS_IS + 5), b"end"]
    sock = _TrickleSocket(limit)
    trio.run(_send_buffers, sock, list(bufs))
    assert sock.received == b"".join(bufs)
    if limit == 10**9:
        assert sock.calls == 1
