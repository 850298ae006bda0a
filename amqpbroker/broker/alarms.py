"""Resource alarms: when memory or disk runs short, publishers are blocked.

As RabbitMQ: while any alarm is raised, a connection that publishes is no longer
read from (its publishes wait in the socket) and, if the client advertised the
``connection.blocked`` capability, it is told ``connection.blocked`` with the
reason; consumers keep draining.  When the last alarm clears, blocked connections
get ``connection.unblocked`` and are read again.

This module is sans-IO: the server polls the resources (server/monitor.py) and
waits on the gate; here is only the state and what clients are told.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pamqp import commands

from ..protocol import method_codec

if TYPE_CHECKING:
    from .ports import Connection

MEMORY = "memory"
DISK = "disk"
# Raised by a test (broker/faults.py): a memory alarm as clients see it, which the
# resource monitor neither raises nor clears.
FORCED = "forced"
# The reason texts RabbitMQ puts in connection.blocked.
REASONS = {MEMORY: "low on memory", DISK: "low on disk", FORCED: "low on memory"}


class Alarms:
    def __init__(self, sessions: set[Connection]) -> None:
        self._sessions = sessions
        self.raised: set[str] = set()
        # Called with True when publishers must stop being read, False when they may
        # be read again (the server's read gate).
        self.on_change: Callable[[bool], None] = lambda blocked: None

    @property
    def blocking(self) -> bool:
        return bool(self.raised)

    def raise_alarm(self, name: str) -> None:
        if name in self.raised:
            return
        first = not self.raised
        self.raised.add(name)
        if first:
            self.on_change(True)
            for session in list(self._sessions):
                if session.published:
                    self.notify_blocked(session)

    def clear_alarm(self, name: str) -> None:
        if name not in self.raised:
            return
        self.raised.discard(name)
        if not self.raised:
            for session in list(self._sessions):
                if session.told_blocked:
                    session.told_blocked = False
                    session.send(method_codec.encode_method(0, commands.Connection.Unblocked()))
            self.on_change(False)

    def notify_blocked(self, session: Connection) -> None:
        """Tell a publishing connection it is blocked (once per alarm period)."""
        if session.told_blocked or not session.wants("connection.blocked"):
            return
        session.told_blocked = True
        reason = REASONS.get(min(self.raised), "low on resources")
        session.send(
            method_codec.encode_method(
                0, method_codec.make_method(commands.Connection.Blocked, reason=reason)
            )
        )
