"""Output batching: a connection's queued output as buffers for one write.

The protocol connection appends each encoded frame (or batch of frames) to its
``out`` list; the I/O layer takes them all once per round and sends them with one
``send_all`` (or one ``sendmsg`` on plain TCP), never one write per frame (see
PERFORMANCE-NOTES).
"""

from __future__ import annotations

__all__ = ["SEND_AS_IS", "take_buffers", "take_output"]

# take_buffers: output buffers at least this long are sent without being joined, and it
# looks for them only in a queue of at most _SCAN_MAX buffers.
SEND_AS_IS = 16 * 1024
_SCAN_MAX = 256


def take_output(out: list[bytes]) -> bytes:
    """Everything queued for the peer, joined; empties the queue."""
    data = b"".join(out)
    out.clear()
    return data


def take_buffers(out: list[bytes]) -> list[bytes]:
    """Everything queued for the peer, as buffers for one ``sendmsg``: long ones (big
    bodies) as they are, the runs of short ones between them joined; empties the queue.
    Joining a 64 KiB body frame would copy it once more. A queue of many buffers
    (thousands of small deliveries) is joined whole without looking at each."""
    if len(out) > _SCAN_MAX:
        data = b"".join(out)
        out.clear()
        return [data]
    bufs: list[bytes] = []
    start = 0
    for i, item in enumerate(out):
        if len(item) >= SEND_AS_IS:
            if i - start > 1:
                bufs.append(b"".join(out[start:i]))
            elif i > start:
                bufs.append(out[start])
            bufs.append(item)
            start = i + 1
    if start < len(out):
        bufs.append(b"".join(out[start:]) if start < len(out) - 1 else out[start])
    out.clear()
    return bufs
