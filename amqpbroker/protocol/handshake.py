"""The rules of the connection handshake (start / tune / open), without its state.

What the broker offers in connection.start and connection.tune, which tune-ok
values it accepts, how a refused login is logged, and in which phase a failure is
reported with connection.close rather than a bare socket close.  The connection
(connection.py) runs the handshake and keeps its state; every decision here is
a pure function of its arguments, checked against RabbitMQ 3.10.
"""

from __future__ import annotations

import enum
from typing import Any

from .. import errors
from .sasl import parse_amqplain, parse_plain

__all__ = [
    "CHANNEL_MAX",
    "FRAME_MAX",
    "HEARTBEAT",
    "Phase",
    "close_frame_allowed",
    "login_refused_reason",
    "negotiate_tune",
    "server_properties",
]

# What we offer in connection.tune (RabbitMQ's defaults, see RABBITMQ.md).
CHANNEL_MAX = 2047
FRAME_MAX = 131072
HEARTBEAT = 60
# The minimum frame size (before tune-ok the largest, a pre-auth limit) depends on
# the RabbitMQ release: versions.Behaviour.frame_min_size.


class Phase(enum.Enum):
    AWAIT_HEADER = "awaiting protocol header"
    AWAIT_START_OK = "awaiting start-ok"
    AWAIT_TUNE_OK = "awaiting tune-ok"
    AWAIT_OPEN = "awaiting open"
    OPEN = "open"
    CLOSING = "closing"  # we sent connection.close, waiting for close-ok
    # We sent close-ok to the client's connection.close: what still arrives (publishes
    # the client had queued behind its close) is read and dropped until it closes its
    # side, so that the socket is not closed with unread bytes (a reset to the client).
    DRAINING = "draining"
    CLOSED = "closed"  # nothing more to read: the I/O layer closes the socket


def server_properties(product: str, version: str, info: str) -> dict[str, Any]:
    """connection.start's server-properties: RabbitMQ's keys and capabilities."""
    return {
        "product": product,
        "version": version,
        "platform": "Python",
        "copyright": "The amqpbroker authors",
        "information": info,
        "cluster_name": "amqpbroker@localhost",
        "capabilities": {
            "publisher_confirms": True,
            "exchange_exchange_bindings": True,
            "basic.nack": True,
            "consumer_cancel_notify": True,
            "connection.blocked": True,
            "consumer_priorities": True,
            "authentication_failure_close": True,
            "per_consumer_qos": True,
            "direct_reply_to": True,
        },
    }


def login_refused_reason(mechanism: str, response: bytes) -> str:
    """The close reason logged for a refused login: the user name the response
    names, or '?' (EXTERNAL, or a response that does not parse)."""
    if mechanism == "EXTERNAL":
        who = None
    else:
        who = parse_plain(response) if mechanism == "PLAIN" else parse_amqplain(response)
    return f"login refused for user '{who[0] if who else '?'}'"


def negotiate_tune(
    method: Any, server_channel_max: int, server_frame_max: int, frame_min_size: int
) -> tuple[int, int, int]:
    """(channel_max, frame_max, heartbeat) from the client's tune-ok, within what
    we offered.  Values over the offer (or 0, "no limit", where we set one) and a
    frame_max under ``frame_min_size`` raise NotAllowed (530, RabbitMQ's texts)."""
    frame_max = method.frame_max
    server_max = server_frame_max
    if server_max and (frame_max == 0 or frame_max > server_max):
        raise errors.NotAllowed(
            f"negotiated frame_max = {frame_max} is higher than the maximum allowed "
            f"value ({server_max})"
        )
    if 0 < frame_max < frame_min_size:
        raise errors.NotAllowed(
            f"negotiated frame_max = {frame_max} is lower than the minimum allowed "
            f"value ({frame_min_size})"
        )
    channel_max = method.channel_max
    server_channels = server_channel_max
    # As for frame_max, 0 ("no limit") is more than a limited server allows.
    if server_channels and (channel_max == 0 or channel_max > server_channels):
        raise errors.NotAllowed(
            f"negotiated channel_max = {channel_max} is higher than the maximum "
            f"allowed value ({server_channels})"
        )
    return channel_max, frame_max or server_max, method.heartbeat


def close_frame_allowed(phase: Phase, exc: errors.AMQPError) -> bool:
    """Whether a failure in this phase is reported with connection.close.

    Before connection.open-ok RabbitMQ 3.10 closes the socket without a word (checked
    against a real broker: bad tune-ok values, an unknown mechanism, methods out of
    order), except for a refused login when the client asked for
    authentication_failure_close, a refused connection.open (530), and after tune-ok
    a method (504) or frame (505) out of place.
    """
    if phase is Phase.AWAIT_START_OK:
        return exc.reply_code == errors.ACCESS_REFUSED
    if phase is Phase.AWAIT_TUNE_OK:
        return False
    if phase is Phase.AWAIT_OPEN:
        # A refused open; a method or frame out of place (504 / 505, as RabbitMQ's
        # reader in its "opening" state).
        return exc.reply_code in (errors.NOT_ALLOWED, errors.CHANNEL_ERROR, errors.UNEXPECTED_FRAME)
    return phase is not Phase.AWAIT_HEADER
