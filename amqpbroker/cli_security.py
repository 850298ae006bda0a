"""Command-line options for access control, TLS and limits (``amqpbroker --help``).

Kept apart from cli.py so the serve command's parser only calls
:func:`add_arguments` and passes :func:`settings_from` into its Settings.
"""

from __future__ import annotations

import argparse
from typing import Any


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("access control")
    group.add_argument(
        "--allow-guest-remote",
        action="store_true",
        help="let the default user (guest) log in from other hosts than loopback "
        "(RabbitMQ's loopback_users = none)",
    )


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """Settings keyword arguments for the options above."""
    settings: dict[str, Any] = {}
    if args.allow_guest_remote:
        settings["loopback_users"] = ()
    return settings


__all__ = ["add_arguments", "settings_from"]
_ = _count
