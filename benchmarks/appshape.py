"""Application-shaped publishes: messages as Celery 5 sends them (task protocol 2).

content_type application/json, content_encoding utf-8, a correlation_id (the task id) and a
reply_to that differ per message, a headers table of 18 entries (lang, task, id, root_id,
parent_id, group, retries, eta, expires, timelimit, argsrepr, kwargsrepr, origin,
ignore_result, ...), and a JSON body of 100-600 bytes.

Hot path: ``POOL`` different publishes are encoded once with pamqp (task names, routing keys,
argument sizes vary); each send copies the next ones and writes, in place, a task id and a
reply_to unique to the message (fixed width, so the sizes do not change) and the send time
into the body. No two publishes a publisher sends are byte-identical.

The body starts ``[["`` followed by the send time as a string of 19 decimal digits
(CLOCK_MONOTONIC ns), so the consumer finds it at a fixed offset: ``STAMP_OFFSET`` bytes
into the body.
"""

from __future__ import annotations

import json
import random

from pamqp import body, commands, frame, header

POOL = 256  # distinct publish templates per publisher (a multiple of ROUTES)
TASKS = ("proj.email.send", "proj.billing.charge", "proj.reports.render", "proj.sync.pull")
ROUTES = len(TASKS)  # one queue per task family, bound on the topic exchange by key
STAMP_OFFSET = 3
STAMP_DIGITS = 19
# Placeholders written into the templates and overwritten per message (same width).
TASK_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
REPLY_TO = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
STAMP = "1" * STAMP_DIGITS
UNIQUE_HEX = 12  # the last 12 hex digits of a placeholder carry the message's number
FRAME_OVERHEAD = 8


def routing_key(route: int) -> str:
    """The routing key of one task family: ``tasks.<family>.<name>``."""
    family, name = TASKS[route].split(".", 2)[1:]
    return f"tasks.{family}.{name}"


def binding_key(route: int) -> str:
    """The topic pattern that binds the queue of one task family."""
    return f"tasks.{TASKS[route].split('.')[1]}.*"


def route_of(sequence: int) -> int:
    """Which task family (queue) the message with this sequence number goes to."""
    return (sequence % POOL) % ROUTES


def per_route(count: int) -> list[int]:
    """How many of ``count`` messages (sequence 0..count-1) each route receives."""
    return [sum(1 for i in range(count) if route_of(i) == r) for r in range(ROUTES)]


class Template:
    """One encoded publish and where its per-message fields sit."""

    def __init__(self, data: bytes, stamp_at: int, id_at: list[int], reply_at: list[int]):
        self.data = data
        self.stamp_at = stamp_at
        self.id_at = id_at
        self.reply_at = reply_at


def templates(
    channel: int, exchange: str, frame_max: int, persistent: bool, seed: int
) -> list[Template]:
    rng = random.Random(seed)
    return [
        _template(channel, exchange, frame_max, persistent, index, rng) for index in range(POOL)
    ]


def _template(
    channel: int, exchange: str, frame_max: int, persistent: bool, index: int, rng: random.Random
) -> Template:
    route = index % ROUTES
    task = TASKS[route]
    # Arguments as applications pass them: a few ids and strings, sizes varying 100-600 B.
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(rng.randint(0, 430)))
    args: list[object] = [STAMP, rng.randint(1, 10**6), f"user-{rng.randint(1, 99999)}@example.com"]
    kwargs = {"note": text, "priority": rng.randint(0, 9)}
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    payload = json.dumps([args, kwargs, embed], separators=(", ", ": ")).encode()
    headers: dict[str, object] = {
        "lang": "py",
        "task": task,
        "id": TASK_ID,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": TASK_ID,
        "parent_id": None,
        "argsrepr": repr(tuple(args[1:])),
        "kwargsrepr": repr({"priority": kwargs["priority"]}),
        "origin": f"gen{rng.randint(1000, 9999)}@worker-host",
        "ignore_result": False,
        "stamped_headers": None,
        "stamps": {},
    }
    properties = commands.Basic.Properties(
        content_type="application/json",
        content_encoding="utf-8",
        correlation_id=TASK_ID,
        reply_to=REPLY_TO,
        delivery_mode=2 if persistent else 1,
        priority=0,
        headers=headers,  # type: ignore[arg-type]
    )
    publish = commands.Basic.Publish(exchange=exchange, routing_key=routing_key(route))
    head = frame.marshal(publish, channel) + frame.marshal(
        header.ContentHeader(0, len(payload), properties), channel
    )
    chunk = frame_max - FRAME_OVERHEAD
    bodies = b"".join(
        frame.marshal(body.ContentBody(payload[i : i + chunk]), channel)
        for i in range(0, len(payload), chunk)
    )
    data = head + bodies
    return Template(
        data,
        stamp_at=data.index(STAMP.encode(), len(head)),
        id_at=_all(data, TASK_ID.encode()),
        reply_at=_all(data, REPLY_TO.encode()),
    )


def _all(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


class AppBatches:
    """Builds the next ``count`` publishes of one publisher, each unique (hot path)."""

    def __init__(self, pool: list[Template], publisher: int) -> None:
        self.pool = pool
        self.publisher = publisher

    def build(self, first: int, count: int, now_ns: int) -> bytearray:
        pool = self.pool
        size = len(pool)
        picked = [pool[(first + i) % size] for i in range(count)]
        data = bytearray(b"".join(t.data for t in picked))
        stamp = b"%0*d" % (STAMP_DIGITS, now_ns)
        base = 0
        tail = -UNIQUE_HEX
        for i, template in enumerate(picked):
            number = (self.publisher << 40) | (first + i)
            unique = b"%0*x" % (UNIQUE_HEX, number)
            reply = b"%0*x" % (UNIQUE_HEX, number ^ 0x5A5A5A5A5A5A)
            for at in template.id_at:
                end = base + at + len(TASK_ID)
                data[end + tail : end] = unique
            for at in template.reply_at:
                end = base + at + len(REPLY_TO)
                data[end + tail : end] = reply
            at = base + template.stamp_at
            data[at : at + STAMP_DIGITS] = stamp
            base += len(template.data)
        return data
