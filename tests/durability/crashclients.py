"""A publisher with confirms and a consumer with manual acks, on raw sockets, that keep
exact books on what the broker told them until the moment it dies.

Both run in threads and read their socket to the end after the broker is killed: what the
kernel had already received (a confirm, a delivery) is read and counted, so the books say
precisely which messages were confirmed and which were delivered. Each message's body is
its publish index (``b"%08d"``), which is also its confirm sequence number minus one.

Hot loops parse frames with ``struct`` on a bytearray instead of pamqp: the point is to
keep many messages in flight at the moment of the kill.
"""

from __future__ import annotations

import random
import select
import struct
import threading
from collections import OrderedDict
from typing import Final

import rawflow
from pamqp import commands, frame

FRAME_HEAD: Final = struct.Struct(">BHI")
METHOD_ID: Final = struct.Struct(">HH")
ACK_BODY: Final = struct.Struct(">QB")
# Deadline for any read while a broker should be alive (the threads stop at EOF).
READ_TIMEOUT: Final = 5.0
# Publishes in flight before the publisher waits for confirms.
WINDOW: Final = 500


def body_of(index: int) -> bytes:
    return b"%08d" % index


def index_of(body: bytes) -> int:
    return int(body)


class _FrameSocket:
    """A socket and a receive buffer of whole frames."""

    def __init__(self, client: rawflow.RawClient) -> None:
        self.client = client
        self.sock = client.sock
        # Deliveries may have come in the same read as consume-ok.
        self.buf = bytearray(client.buf)
        client.buf = b""
        self.closed = False

    def fill(self, timeout: float) -> None:
        """Read what arrives within ``timeout``; sets ``closed`` at EOF or reset."""
        if self.closed:
            return
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            return
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, TimeoutError, OSError):
            data = b""
        if not data:
            self.closed = True
        self.buf += data

    def frames(self) -> list[tuple[int, int, bytes]]:
        """Every complete frame in the buffer as (type, channel, payload)."""
        out = []
        pos = 0
        buf = self.buf
        while len(buf) - pos >= 7:
            frame_type, channel, size = FRAME_HEAD.unpack_from(buf, pos)
            if len(buf) - pos < size + 8:
                break
            out.append((frame_type, channel, bytes(buf[pos + 7 : pos + 7 + size])))
            pos += size + 8
        del buf[:pos]
        return out

    def send(self, data: bytes) -> bool:
        """False once the broker is gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True


def _method(payload: bytes) -> tuple[int, int]:
    return METHOD_ID.unpack_from(payload, 0)


def _refused(payload: bytes) -> str | None:
    """The text of a connection.close / channel.close, else None."""
    if _method(payload) in ((10, 50), (20, 40)):
        return repr(rawflow.decode_method(1, payload))
    return None


class ClientThread:
    """A client run on a thread it owns (composition, not a ``threading.Thread``
    subclass: Thread keeps private attributes of its own, and Python 3.13 added
    ``_handle``, which a subclass's method of that name broke)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.error: BaseException | None = None  # what ended the client, for the test
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def started(self) -> bool:
        return self._thread.ident is not None

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        raise NotImplementedError


class Publisher(ClientThread):
    """Publishes persistent messages to ``queue`` in confirm mode until ``stop`` is set
    or the broker goes away, then reads the confirms that had already arrived."""

    def __init__(self, port: int, queue: str, rng: random.Random) -> None:
        super().__init__("crash-publisher")
        self.port = port
        self.queue = queue
        self.rng = rng
        self.stop = threading.Event()
        self.published = 0
        self.confirmed: set[int] = set()  # publish indexes
        self.nacked: set[int] = set()
        self.refused: str | None = None
        self._lowest_open = 0  # every index below it is settled (acked or nacked)

    def _run(self) -> None:
        client = rawflow.connect(self.port)
        try:
            rawflow.call(client, commands.Confirm.Select(), commands.Confirm.SelectOk)
            conn = _FrameSocket(client)
            header = rawflow.persistent(8)
            while not self.stop.is_set() and not conn.closed:
                batch = self.rng.randint(1, 50)
                data = b"".join(
                    rawflow.publish_frames("", self.queue, header, body_of(self.published + i))
                    for i in range(batch)
                )
                if not conn.send(data):
                    break
                self.published += batch
                in_flight = self.published - len(self.confirmed) - len(self.nacked)
                conn.fill(READ_TIMEOUT if in_flight > WINDOW else 0)
                self._settle(conn)
            # The broker is gone (or we were told to stop): read what had arrived.
            while not conn.closed:
                conn.fill(READ_TIMEOUT)
                self._settle(conn)
            self._settle(conn)
        finally:
            client.close()

    def _settle(self, conn: _FrameSocket) -> None:
        for frame_type, _channel, payload in conn.frames():
            if frame_type != rawflow.FRAME_METHOD:
                continue
            class_id, method_id = _method(payload)
            if class_id == 60 and method_id in (80, 120):
                tag, flags = ACK_BODY.unpack_from(payload, 4)
                into = self.confirmed if method_id == 80 else self.nacked
                if flags & 1:  # multiple: every open tag up to this one
                    for index in range(self._lowest_open, tag):
                        if index not in self.confirmed and index not in self.nacked:
                            into.add(index)
                    self._lowest_open = max(self._lowest_open, tag)
                else:
                    into.add(tag - 1)
            elif (text := _refused(payload)) is not None:
                self.refused = text


class Consumer(ClientThread):
    """Consumes ``queue`` with manual acks until the broker goes away.

    ``tx``: acks are sent in transactions, and count as done (``acked``) only once
    tx.commit-ok arrives. Otherwise an ack counts as sent (``acks_sent``) when it is
    written; the broker may not have committed it when it dies.
    """

    def __init__(self, port: int, queue: str, rng: random.Random, *, tx: bool) -> None:
        super().__init__("crash-consumer")
        self.port = port
        self.queue = queue
        self.rng = rng
        self.tx = tx
        self.prefetch = rng.choice([1, 10, 100, 1000])
        self.ready = threading.Event()  # consuming
        self.received: list[tuple[int, bool]] = []  # (index, redelivered) in arrival order
        self.acks_sent: list[int] = []  # indexes, in the order the broker settles them
        self.acked: set[int] = set()  # tx mode: indexes whose commit-ok arrived
        self.requeued = 0
        self.refused: str | None = None
        self._unacked: OrderedDict[int, int] = OrderedDict()  # delivery tag -> index
        self._commits: list[list[int]] = []  # tx mode: acks per commit awaiting commit-ok
        self._deliver: tuple[int, bool] | None = None  # (tag, redelivered) awaiting content

    def _run(self) -> None:
        client = rawflow.connect(self.port)
        try:
            rawflow.call(
                client, commands.Basic.Qos(prefetch_count=self.prefetch), commands.Basic.QosOk
            )
            if self.tx:
                rawflow.call(client, commands.Tx.Select(), commands.Tx.SelectOk)
            rawflow.call(client, commands.Basic.Consume(queue=self.queue), commands.Basic.ConsumeOk)
            conn = _FrameSocket(client)
            self.ready.set()
            while True:
                self._handle(conn)
                if self._unacked and not (self.tx and self._commits):
                    self._settle_some(conn)
                if conn.closed:
                    break
                # Holding unacked messages (a full prefetch window stops deliveries): look
                # again soon, so that they get acked.
                conn.fill(0.002 if self._unacked else READ_TIMEOUT)
        finally:
            client.close()

    def _handle(self, conn: _FrameSocket) -> None:
        for frame_type, _channel, payload in conn.frames():
            if frame_type == rawflow.FRAME_METHOD:
                class_id, method_id = _method(payload)
                if (class_id, method_id) == (60, 60):  # basic.deliver
                    tag_at = 5 + payload[4]  # after the consumer tag (shortstr)
                    tag, bits = ACK_BODY.unpack_from(payload, tag_at)
                    self._deliver = (tag, bool(bits & 1))
                elif (class_id, method_id) == (90, 21):  # tx.commit-ok
                    self.acked.update(self._commits.pop(0))
                elif (text := _refused(payload)) is not None:
                    self.refused = text
            elif frame_type == rawflow.FRAME_BODY:
                assert self._deliver is not None
                tag, redelivered = self._deliver
                self._deliver = None
                index = index_of(payload)
                self.received.append((index, redelivered))
                self._unacked[tag] = index

    def _settle_some(self, conn: _FrameSocket) -> None:
        if self.rng.random() < 0.3:
            return  # leave some unacked for a while
        last = next(reversed(self._unacked))
        if not self.tx and self.rng.random() < 0.05:
            # Now and then, one back to the queue (it comes back redelivered).
            index = self._unacked.pop(last)
            if conn.send(frame.marshal(commands.Basic.Nack(delivery_tag=last, requeue=True), 1)):
                self.requeued += 1
            else:
                self._unacked[last] = index
            return
        indexes = list(self._unacked.values())
        data = frame.marshal(commands.Basic.Ack(delivery_tag=last, multiple=True), 1)
        if self.tx:
            data += frame.marshal(commands.Tx.Commit(), 1)
        if conn.send(data):
            self._unacked.clear()
            self.acks_sent.extend(indexes)
            if self.tx:
                self._commits.append(indexes)
