"""What every management handler works with: the broker and how it is reached.

No Starlette here: the formatters, the definitions code and the metrics take a
:class:`ManagementContext`, so they can be tested (and reused by
``--load-definitions``) without HTTP.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import attrs

from ..config import DEFAULT_MANAGEMENT_MAX_BODY_SIZE
from .totals import Rates

if TYPE_CHECKING:
    from ..broker.broker import Broker
    from ..broker.vhost import VirtualHost

# Reported as erlang_version; some tools display it, none act on it.
ERLANG_VERSION = "25.2.3"


def _node_name() -> str:
    host = socket.gethostname().split(".", 1)[0] or "localhost"
    return f"rabbit@{host}"


@attrs.define
class ManagementContext:
    """The broker plus the addresses the API reports (listeners, node name)."""

    broker: Broker
    amqp_host: str = "127.0.0.1"
    amqp_port: int = 5672
    http_host: str = "127.0.0.1"
    http_port: int = 15672
    node: str = attrs.field(factory=_node_name)
    started_at: float = attrs.field(factory=time.time)
    # What the broker has no place for yet: vhost descriptions and tags (this run only).
    vhost_meta: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    rates: Rates = attrs.field(factory=Rates)
    # Request bodies above this many bytes are refused unread (Api.raw_body).
    max_body_size: int = DEFAULT_MANAGEMENT_MAX_BODY_SIZE

    def vhost(self, name: str) -> VirtualHost | None:
        return self.broker.vhosts.get(name)

    def connection_name(self, peer: str) -> str:
        """RabbitMQ names a connection ``peer -> local``: clients and tools use it
        as the key of /api/connections/{name}."""
        host = self.amqp_host if ":" not in self.amqp_host else f"[{self.amqp_host}]"
        return f"{peer or '127.0.0.1:0'} -> {host}:{self.amqp_port}"
