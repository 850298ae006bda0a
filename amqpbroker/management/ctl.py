"""``amqpbroker ctl``: rabbitmqctl-like verbs over the management API."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    raise SystemExit("amqpbroker ctl: not implemented yet")
