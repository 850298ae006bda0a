"""Command-line options for access control, TLS and limits (``amqpbroker --help``).

Kept apart from cli.py so the serve command's parser only calls
:func:`add_arguments` and passes :func:`settings_from` into its Settings.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .config import DEFAULT_CHANNEL_MAX, DEFAULT_HANDSHAKE_TIMEOUT
from .server import tls as tls_module


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative")
    return number


def port_number(value: str) -> int:
    """An argparse type for the port flags (--port, --management-port, --tls-port)."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return port


def _readable(value: str) -> str:
    if not os.path.isfile(value) or not os.access(value, os.R_OK):
        raise argparse.ArgumentTypeError(f"cannot read {value!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("access control")
    group.add_argument(
        "--allow-guest-remote",
        action="store_true",
        help="let the default user (guest) log in from other hosts than loopback "
        "(RabbitMQ's loopback_users = none)",
    )
    tls = parser.add_argument_group("TLS (amqps)")
    tls.add_argument(
        "--tls-port",
        type=port_number,
        default=None,
        help="amqps port (off by default; 0: a free one)",
    )
    tls.add_argument("--tls-cert", type=_readable, help="certificate chain file (PEM)")
    tls.add_argument("--tls-key", type=_readable, help="private key file (PEM)")
    tls.add_argument(
        "--tls-ca",
        type=_readable,
        help="CA bundle (PEM): client certificates are verified against it, and a verified "
        "one may log in with EXTERNAL",
    )
    tls.add_argument(
        "--tls-require-client-cert",
        action="store_true",
        help="refuse TLS clients without a certificate (needs --tls-ca)",
    )
    tls.add_argument(
        "--tls-login-from",
        choices=tls_module.LOGIN_FROM,
        default="common_name",
        help="the user name EXTERNAL takes from a client certificate (common_name)",
    )

    limits = parser.add_argument_group("limits (0: none)")
    limits.add_argument(
        "--max-connections",
        type=_count,
        default=0,
        help="client connections the broker accepts; more are refused at connection.open (none)",
    )
    limits.add_argument(
        "--channel-max",
        type=_count,
        default=DEFAULT_CHANNEL_MAX,
        help=f"channels per connection offered in connection.tune ({DEFAULT_CHANNEL_MAX})",
    )
    limits.add_argument(
        "--max-consumers-per-channel", type=_count, default=0, help="consumers per channel (none)"
    )
    limits.add_argument(
        "--max-queues-per-vhost", type=_count, default=0, help="queues in each vhost (none)"
    )
    limits.add_argument(
        "--max-message-size",
        type=_count,
        default=None,
        help="largest message body in bytes (the RabbitMQ version's: 16 MiB, 128 MiB for 3.10)",
    )
    limits.add_argument(
        "--handshake-timeout",
        type=float,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        help=f"seconds a client has to complete the AMQP handshake ({DEFAULT_HANDSHAKE_TIMEOUT:g})",
    )


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """Settings keyword arguments for the options above; exits with a usage error (2)
    for combinations that cannot work."""
    settings: dict[str, Any] = {
        "max_connections": args.max_connections,
        "channel_max": args.channel_max,
        "max_consumers_per_channel": args.max_consumers_per_channel,
        "max_queues_per_vhost": args.max_queues_per_vhost,
        "max_message_size": args.max_message_size,
        "handshake_timeout": args.handshake_timeout,
    }
    if args.handshake_timeout <= 0:
        _usage("--handshake-timeout must be positive")
    if args.allow_guest_remote:
        settings["loopback_users"] = ()
    if args.tls_port is not None:
        if not (args.tls_cert and args.tls_key):
            _usage("--tls-port needs --tls-cert and --tls-key")
        settings.update(
            tls_port=args.tls_port,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_ca=args.tls_ca,
            tls_require_client_cert=args.tls_require_client_cert,
            tls_login_from=args.tls_login_from,
        )
    if args.tls_require_client_cert and not args.tls_ca:
        _usage("--tls-require-client-cert needs --tls-ca")
    return settings


def _usage(message: str) -> None:
    sys.stderr.write(f"amqpbroker: error: {message} (see amqpbroker --help)\n")
    sys.exit(2)


__all__ = ["add_arguments", "settings_from"]
