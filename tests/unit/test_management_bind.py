"""Two brokers on the default management port: the second one learns that the port is
taken when it binds (and runs without the API, or refuses when the port was asked
for), not later inside the HTTP server, where it would stop the whole broker."""

from __future__ import annotations

import pytest

from amqpbroker.cli import ListenError, bind_management
from amqpbroker.config import Settings
from amqpbroker.management.server import bind


def test_port_taken_by_another_management_api_is_seen_at_bind() -> None:
    first = bind("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        settings = Settings(management_host="127.0.0.1", management_port=port)
        assert bind_management(settings, required=False) is None
        with pytest.raises(ListenError):
            bind_management(settings, required=True)
    finally:
        first.close()
