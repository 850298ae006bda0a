"""Faults a test inflicts on purpose: connections closed or cut, publishers blocked.

What RabbitMQ's operators can do to a client (close its connection from the
management UI or ``rabbitmqctl close_connection``, run out of memory) and what the
network can (reset a TCP connection), as broker operations, so a test can show its
client copes.  The embedding API (``amqpbroker.Broker``) and the ``amqp_faults``
fixture call these on the broker's thread.

Error handling: none raised; each returns how many connections it touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from .. import errors
from . import alarms

if TYPE_CHECKING:
    from .broker import Broker
    from .session import Session

# RabbitMQ's text when the management API closes a connection without a reason.
DEFAULT_CLOSE_TEXT = "Closed via management plugin"


def client_connections(
    broker: Broker, vhost: str | None = None, client: str | None = None
) -> list[Session]:
    """Open client connections, in ``vhost`` when given, and of ``client`` when
    given: the connection name the client chose (``connection_name`` in its client
    properties) or its address as ``host:port``."""
    found = []
    # The broker holds them as ports.Connection; the server's are Sessions.
    for session in cast("set[Session]", broker.sessions):
        if vhost is not None and (session.vhost is None or session.vhost.name != vhost):
            continue
        if client is not None:
            name = session.proto.client_properties.get("connection_name")
            if client not in (name, session.peer):
                continue
        found.append(session)
    return found


def close_connections(
    broker: Broker,
    code: int = errors.CONNECTION_FORCED,
    text: str = DEFAULT_CLOSE_TEXT,
    vhost: str | None = None,
    client: str | None = None,
) -> int:
    """connection.close with ``code`` (320 CONNECTION_FORCED: RabbitMQ's force-close)."""
    sessions = client_connections(broker, vhost, client)
    for session in sessions:
        session.proto.close_connection(errors.AMQPConnectionError(text, reply_code=code))
        session.wake()
    return len(sessions)


def kill_connections(broker: Broker, vhost: str | None = None, client: str | None = None) -> int:
    """Cut connections with a TCP reset and no close frame (a network failure)."""
    sessions = client_connections(broker, vhost, client)
    for session in sessions:
        session.abort()
    return len(sessions)


def block_publishers(broker: Broker) -> None:
    """Raise a memory alarm as clients see it: publishers get connection.blocked
    ("low on memory") and are no longer read; the memory monitor leaves it alone."""
    broker.alarms.raise_alarm(alarms.FORCED)


def unblock_publishers(broker: Broker) -> None:
    broker.alarms.clear_alarm(alarms.FORCED)
