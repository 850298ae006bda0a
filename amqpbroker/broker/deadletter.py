"""Dead lettering: a message that dies in a queue is republished to its DLX.

Reasons: ``rejected`` (basic.reject / basic.nack with requeue=false), ``expired``
(TTL), ``maxlen`` (length limit: drop-head, or reject-publish-dlx) and
``delivery_limit`` (quorum queues).  What RabbitMQ 3.10 sends, checked on a real
broker (tests/clients/test_dead_letter.py holds the exact tables):

* ``x-death`` is an array of tables, newest first.  A death in a (queue, reason)
  seen before increments that entry's ``count`` (a long) and moves it to the front;
  the entry keeps its first ``time``, ``exchange``, ``routing-keys`` and
  ``original-expiration`` and its keys are then sorted.  A new entry's keys come in
  RabbitMQ's building order: count, reason, queue, time, exchange, routing-keys,
  then original-expiration when the message had an ``expiration``; a new entry is
  sorted too when other entries exist.  ``time`` is a timestamp in seconds,
  strings are long strings.
* ``x-first-death-reason``, ``-queue`` and ``-exchange`` are set when the message has
  no ``x-death`` yet; RabbitMQ 3.10 has no ``x-last-death-*`` (3.13+).
* The top-level headers table is sorted by key; ``expiration`` is removed (kept as
  ``original-expiration``); other properties are unchanged.
* It is published to the DLX with the queue's ``x-dead-letter-routing-key`` (and the
  ``CC`` header removed), or else with its original routing keys: the publish key
  and the CC keys.  ``routing-keys`` in x-death records those original keys.
* A missing DLX drops the message.  Cycles: when the death is not ``rejected``, a
  target queue whose x-death shows the message went round back to it with no
  ``rejected`` death on the way does not get it (RabbitMQ logs and drops it).

What RabbitMQ 4.0 does differently (checked on 4.0.5; versions.py's row says which):

* ``x-death``, ``x-first-death-*`` and ``x-last-death-*`` a publisher sent are not
  history: 4.0 keeps deaths beside the message and writes these headers from them, so
  only deaths in this broker count (``DeadLettered`` messages carry them here; a
  restart forgets that, and the headers then count as the publisher's).
* Every x-death entry has its keys in 4.0's order (``original-expiration`` first).
* ``x-last-death-reason``, ``-queue`` and ``-exchange`` describe this death.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol import properties as props
from ..protocol import tables
from ..versions import DEFAULT_BEHAVIOUR, Behaviour
from .message import Message
from .sender_selected import cc_keys, route_keys

if TYPE_CHECKING:
    from .queue import QueueHost

REJECTED = "rejected"
EXPIRED = "expired"
MAXLEN = "maxlen"
DELIVERY_LIMIT = "delivery_limit"


# Headers that describe deaths: a 4.x broker writes them, a publisher cannot.
DEATH_HEADERS = (
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
    "x-last-death-reason",
    "x-last-death-queue",
    "x-last-death-exchange",
)


class DeadLettered(Message):
    """A message this broker dead-lettered: its death headers are the broker's own."""

    __slots__ = ()


def _sorted(table: dict[str, Any]) -> dict[str, Any]:
    # RabbitMQ sorts field tables by key as Erlang compares binaries: bytewise.
    return dict(sorted(table.items(), key=lambda item: item[0].encode()))


def _in_order(entry: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    return {key: entry[key] for key in order if key in entry}


def original_routing_keys(message: Message) -> list[str]:
    return [message.routing_key, *cc_keys(message.headers)]


def _x_death(
    deaths: Any, reason: str, queue: str, exchange: str, keys: list[str], expiration: str | None,
    now: float,
) -> list[Any]:  # fmt: skip
    entry: dict[str, Any] = {
        "count": 1,
        "reason": reason,
        "queue": queue,
        "time": tables.RawTimestamp(int(now)),
        "exchange": exchange,
        "routing-keys": list(keys),
    }
    if expiration is not None:
        entry["original-expiration"] = expiration
    if not isinstance(deaths, list):
        return [entry]  # none yet (or not an array, which RabbitMQ replaces)
    others: list[Any] = []
    match: dict[str, Any] | None = None
    for death in deaths:
        if (
            match is None
            and isinstance(death, dict)
            and death.get("queue") == queue
            and death.get("reason") == reason
        ):
            match = death
        else:
            others.append(death)
    if match is None:
        return [_sorted(entry), *others]
    count = match.get("count")
    updated = dict(match)
    updated["count"] = (int(count) if isinstance(count, int) else 0) + 1
    return [_sorted(updated), *others]


def dead_lettered(
    message: Message,
    reason: str,
    queue: str,
    now: float,
    exchange: str,
    routing_key: str | None,
    behaviour: Behaviour = DEFAULT_BEHAVIOUR,
) -> tuple[Message, list[str]]:
    """The message as its DLX gets it (new x-death and properties), with the routing
    keys to publish it with; ``behaviour``: the RabbitMQ release's rules."""
    properties = props.decode_properties(message.header)
    headers: dict[str, Any] = dict(properties.headers or {})
    if not behaviour.publisher_deaths_kept and not isinstance(message, DeadLettered):
        for name in DEATH_HEADERS:
            headers.pop(name, None)
    keys = original_routing_keys(message)
    expiration = properties.expiration
    first = "x-death" not in headers
    deaths = _x_death(
        headers.get("x-death"), reason, queue, message.exchange, keys, expiration, now
    )
    if not behaviour.publisher_deaths_kept:
        # 4.x writes every entry in one order (3.10's depends on the history).
        order = behaviour.x_death_key_order
        deaths = [_in_order(d, order) if isinstance(d, dict) else d for d in deaths]
    headers["x-death"] = deaths
    if first:
        headers["x-first-death-reason"] = reason
        headers["x-first-death-queue"] = queue
        headers["x-first-death-exchange"] = message.exchange
    if behaviour.last_death_headers:
        headers["x-last-death-reason"] = reason
        headers["x-last-death-queue"] = queue
        headers["x-last-death-exchange"] = message.exchange
    if routing_key is not None:
        headers.pop("CC", None)
        publish_keys = [routing_key]
    else:
        publish_keys = keys
    properties.headers = _sorted(headers)
    properties.expiration = None
    header = props.encode_header_payload(properties, len(message.body))
    return DeadLettered(exchange, publish_keys[0], header, message.body), publish_keys


def is_cycle(queue: str, deaths: list[Any]) -> bool:
    """Whether republishing to ``queue`` closes a loop of automatic deaths: the
    deaths up to and including the newest one in ``queue`` are none ``rejected``."""
    for index, death in enumerate(deaths):
        if isinstance(death, dict) and death.get("queue") == queue:
            return all(
                isinstance(d, dict) and d.get("reason") != REJECTED for d in deaths[: index + 1]
            )
    return False


def dead_letter(
    host: QueueHost,
    exchange_name: str,
    routing_key: str | None,
    queue: str,
    message: Message,
    reason: str,
    now: float,
) -> int:
    """Republish a message that died in ``queue`` to ``exchange_name``; returns how
    many queues got it."""
    exchange = host.exchanges.get(exchange_name)
    if exchange is None:
        return 0  # RabbitMQ drops it (and logs); nothing a client can see
    dead, keys = dead_lettered(
        message, reason, queue, now, exchange_name, routing_key, host.behaviour
    )
    targets = route_keys(host, exchange, keys, dead)
    if reason != REJECTED and targets:
        deaths = (dead.headers or {}).get("x-death") or []
        targets = [q for q in targets if not is_cycle(q.name, deaths)]
    for target in targets:
        target.publish(dead)
    return len(targets)
