"""The memory the broker accounts for, and when it is too much.

The memory alarm weighs what the broker itself holds rather than the process's
resident size: freed memory stays resident (Python's allocator and malloc keep it
for reuse, and a queue drained but for every hundredth message keeps most pages
partly used), so an alarm on RSS raised by a backlog may never clear once the
backlog is gone.  Held, as counted here once a second:

- messages in memory: each queue's ready messages (a paged queue's tail on disk is
  not in memory) and each channel's unacked deliveries, counted as their number
  times the mean size of up to SAMPLE of them (header, body or content frames, plus
  MESSAGE_OVERHEAD); a message routed to several queues counts once per queue, as in
  RabbitMQ's per-queue message_bytes;
- deliveries written for a connection and not yet sent (``Session.out_size``);
- message operations waiting for the next commit (``Store.pending_bytes``).

Nothing is counted on a message's path: an exact count (a Message finalizer)
cost ~0.5 us per message acked (+12% broker CPU, ampblast --ack), the sampled
count O(queues + channels) once a second.  The resident size remains a safety net
for what this does not see (server/monitor.py).  Sans-IO: plain sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .broker import Broker
    from .message import QueuedMessage

# Hysteresis: an alarm raised past the watermark clears only once usage is below this
# fraction of it, so a broker hovering at the mark does not block and unblock its
# publishers every second.
CLEAR_FRACTION = 0.9
# Messages per queue or channel whose sizes stand for all of them.
SAMPLE = 16
# What a message costs beyond its header and body bytes: the Message (88 bytes) and
# its QueuedMessage (64), two bytes objects' headers (2 x 33) and a slot in a queue,
# measured with sys.getsizeof and rounded up.
MESSAGE_OVERHEAD = 256


def message_size(qm: QueuedMessage) -> int:
    return qm.message.footprint + MESSAGE_OVERHEAD


def _estimate(count: int, items: Iterable[QueuedMessage]) -> int:
    if not count:
        return 0
    sizes = [message_size(qm) for qm in islice(items, SAMPLE)]
    return count * sum(sizes) // len(sizes) if sizes else 0


def held_bytes(broker: Broker) -> int:
    """The bytes the broker holds for messages, unsent output and pending commits."""
    total = 0
    for vhost in broker.vhosts.values():
        for queue in vhost.queues.values():
            total += _estimate(len(queue.ready), queue.ready)
    for session in broker.sessions:
        total += session.out_size
        for channel in session.channels.values():
            unacked = channel.unacked
            total += _estimate(len(unacked), (entry[1] for entry in unacked.values()))
    store = broker.store
    if store is not None:
        total += store.pending_bytes()
    return total


def past_mark(used: int, mark: int, raised: bool) -> bool:
    """Whether ``used`` is past ``mark``: the mark itself to raise an alarm, and
    CLEAR_FRACTION of it while the alarm is up (so it clears below that)."""
    if mark <= 0:
        return False
    return used > (mark * CLEAR_FRACTION if raised else mark)
