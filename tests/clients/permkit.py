"""Permission scenarios: every channel operation that needs a permission, run by users
with different (configure, write, read) patterns, and what a client observes.

The expected outcomes in test_permissions.py were recorded with this module against a
real RabbitMQ 3.10.8 (users made with rabbitmqctl, one vhost): run
``python tests/clients/permkit.py HOST PORT VHOST`` with the USERS below defined there
(password "pw") and guest having full access to VHOST.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

# name -> (configure, write, read)
USERS: dict[str, tuple[str, str, str]] = {
    "none": ("", "", ""),
    "conf": (".*", "", ""),
    "write": ("", ".*", ""),
    "read": ("", "", ".*"),
    "cw": (".*", ".*", ""),
    "cr": (".*", "", ".*"),
    "wr": ("", ".*", ".*"),
    "gen": ("^amq\\.gen-.*", ".*", ".*"),
    "caret": ("^$", "^$", "^$"),
}


def _consume(ch: BlockingChannel, queue: str) -> Any:
    return ch.basic_consume(queue, lambda *a: None)


def _publish(exchange: str, key: str) -> Callable[[BlockingChannel], Any]:
    def run(ch: BlockingChannel) -> Any:
        ch.confirm_delivery()  # so a refused publish is seen before the next step
        ch.basic_publish(exchange, key, b"x")

    return run


OPS: dict[str, Callable[[BlockingChannel], Any]] = {
    "qdecl_existing": lambda ch: ch.queue_declare("pq"),
    "qdecl_new": lambda ch: ch.queue_declare("newq"),
    "qdecl_passive": lambda ch: ch.queue_declare("pq", passive=True),
    "qdecl_passive_missing": lambda ch: ch.queue_declare("nosuch", passive=True),
    "qdecl_server": lambda ch: ch.queue_declare(""),
    "qdecl_dlx": lambda ch: ch.queue_declare("newq2", arguments={"x-dead-letter-exchange": "px"}),
    "qdecl_dlx_default": lambda ch: ch.queue_declare(
        "newq2", arguments={"x-dead-letter-exchange": ""}
    ),
    "qdecl_amq": lambda ch: ch.queue_declare("amq.foo"),
    "xdecl_existing": lambda ch: ch.exchange_declare("px", "direct"),
    "xdecl_new": lambda ch: ch.exchange_declare("newx", "direct"),
    "xdecl_passive": lambda ch: ch.exchange_declare("px", passive=True),
    "xdecl_passive_missing": lambda ch: ch.exchange_declare("nosuchx", passive=True),
    "xdecl_ae": lambda ch: ch.exchange_declare(
        "newx2", "direct", arguments={"alternate-exchange": "px"}
    ),
    "xdecl_amq": lambda ch: ch.exchange_declare("amq.foo", "direct"),
    "xdecl_badtype": lambda ch: ch.exchange_declare("newx", "nosuchtype"),
    "xdel": lambda ch: ch.exchange_delete("px"),
    "xdel_missing": lambda ch: ch.exchange_delete("nosuchx"),
    "xdel_amq": lambda ch: ch.exchange_delete("amq.direct"),
    "qbind": lambda ch: ch.queue_bind("pq", "px", "k2"),
    "qbind_missing_x": lambda ch: ch.queue_bind("pq", "nosuchx", "k2"),
    "qbind_missing_q": lambda ch: ch.queue_bind("nosuchq", "px", "k2"),
    "qbind_default": lambda ch: ch.queue_bind("pq", "", "k2"),
    "qunbind": lambda ch: ch.queue_unbind("pq", "px", "k"),
    "xbind": lambda ch: ch.exchange_bind("px2", "px", "k2"),
    "xunbind": lambda ch: ch.exchange_unbind("px2", "px", "k"),
    "pub_default": _publish("", "pq"),
    "pub_px": _publish("px", "k"),
    "pub_missing": _publish("nosuchx", "k"),
    "consume": lambda ch: _consume(ch, "pq"),
    "consume_missing": lambda ch: _consume(ch, "nosuchq"),
    "get": lambda ch: ch.basic_get("pq"),
    "purge": lambda ch: ch.queue_purge("pq"),
    "qdel": lambda ch: ch.queue_delete("pq"),
    "qdel_missing": lambda ch: ch.queue_delete("nosuchq"),
}

Outcome = str | tuple[Any, ...]


def _params(host: str, port: int, vhost: str, user: str, password: str) -> pika.URLParameters:
    return pika.URLParameters(
        f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/"
        f"{quote(vhost, safe='')}?heartbeat=0&socket_timeout=5"
    )


def _reset(ch: BlockingChannel) -> None:
    """The world every operation starts from (made by guest)."""
    for q in ("pq", "newq", "newq2"):
        ch.queue_delete(q)
    for x in ("px", "px2", "newx", "newx2"):
        ch.exchange_delete(x)
    ch.exchange_declare("px", "direct")
    ch.exchange_declare("px2", "direct")
    ch.queue_declare("pq")
    ch.queue_bind("pq", "px", "k")
    ch.exchange_bind("px2", "px", "k")
    ch.basic_publish("", "pq", b"m")


def _normalise(text: str, vhost: str, user: str) -> str:
    text = text.replace(f"'{vhost}'", "'<vhost>'").replace(f"'{user}'", "'<user>'")
    return re.sub(r"amq\.gen-[A-Za-z0-9_-]{22}", "amq.gen-<name>", text)


def observe(
    host: str, port: int, vhost: str, user: str, password: str, ops: list[str]
) -> dict[str, Outcome]:
    """What ``user`` sees running each operation on a fresh world, normalised."""
    outcomes: dict[str, Outcome] = {}
    admin = pika.BlockingConnection(_params(host, port, vhost, "guest", "guest"))
    conn: pika.BlockingConnection | None = None
    try:
        setup = admin.channel()
        for name in ops:
            _reset(setup)
            if conn is None or not conn.is_open:
                conn = pika.BlockingConnection(_params(host, port, vhost, user, password))
            try:
                OPS[name](conn.channel())
                outcomes[name] = "ok"
            except ChannelClosedByBroker as exc:
                outcomes[name] = (exc.reply_code, _normalise(exc.reply_text, vhost, user))
            except ConnectionClosedByBroker as exc:
                outcomes[name] = ("connection", exc.reply_code, exc.reply_text)
        _reset(setup)
    finally:
        if conn is not None and conn.is_open:
            conn.close()
        admin.close()
    return outcomes


if __name__ == "__main__":
    HOST, PORT, VHOST = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    prefix = sys.argv[4] if len(sys.argv) > 4 else "sec_"
    for short in USERS:
        print(f"    {short!r}: {{")
        for op, outcome in observe(HOST, PORT, VHOST, prefix + short, "pw", list(OPS)).items():
            print(f"        {op!r}: {outcome!r},")
        print("    },")
