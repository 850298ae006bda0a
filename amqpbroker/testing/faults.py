"""What the ``amqp_faults`` fixture hands a test: faults aimed at the test's vhost.

Each method calls the embedded broker's own (:class:`amqpbroker.Broker`), with
the test's vhost filled in where it narrows what is hit::

    def test_consumer_reconnects(amqp_url, amqp_faults):
        ...
        amqp_faults.kill_connections()       # TCP reset, no close frame
        amqp_faults.close_connections()      # 320 CONNECTION_FORCED, as RabbitMQ's UI
        amqp_faults.restart()                # same port, durable state kept
        amqp_faults.block_publishers()       # connection.blocked: low on memory

Resource handling: publishers blocked by the test are unblocked after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..broker.faults import DEFAULT_CLOSE_TEXT

if TYPE_CHECKING:
    from ..embed import Broker


class Faults:
    def __init__(self, broker: Broker, vhost: str) -> None:
        self.broker = broker
        self.vhost = vhost
        self._blocked = False

    def close_connections(
        self, code: int = 320, text: str = DEFAULT_CLOSE_TEXT, *, client: str | None = None
    ) -> int:
        """Close the test's connections (or ``client``'s: its connection_name or
        ``host:port``) with connection.close ``code``; how many were closed."""
        return self.broker.close_connections(code, text, vhost=self.vhost, client=client)

    def kill_connections(self, *, client: str | None = None) -> int:
        """Reset the test's connections (TCP RST, no close frame); how many."""
        return self.broker.kill_connections(vhost=self.vhost, client=client)

    def restart(self) -> None:
        """Restart the whole broker on the same port: clients are closed with 320
        CONNECTION_FORCED (reason 'shutdown'), durable queues and persistent
        messages come back, everything else is gone (as with RabbitMQ)."""
        self.broker.restart()

    def block_publishers(self) -> None:
        """A memory alarm: publishing connections get connection.blocked and are not
        read until :meth:`unblock_publishers`."""
        self.broker.block_publishers()
        self._blocked = True

    def unblock_publishers(self) -> None:
        self.broker.unblock_publishers()
        self._blocked = False

    def close(self) -> None:
        if self._blocked:
            self.unblock_publishers()
