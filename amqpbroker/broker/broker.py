"""The broker: virtual hosts, users, and the sessions connected to it."""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING

from .. import __version__
from ..config import Settings
from ..protocol.connection import parse_amqplain, parse_plain
from .queue import Queue
from .vhost import VirtualHost

if TYPE_CHECKING:
    from .session import Session


def is_loopback(peer: str) -> bool:
    host = peer.rsplit(":", 1)[0].strip("[]") if peer else ""
    if not host:
        return True  # in-memory transports (tests) have no address
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Broker:
    version = __version__

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.vhosts: dict[str, VirtualHost] = {}
        self.users: dict[str, str] = {self.settings.default_user: self.settings.default_pass}
        self.sessions: set[Session] = set()
        self.add_vhost("/")

    # ------------------------------------------------------------- vhosts

    def add_vhost(self, name: str) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VirtualHost(name)
            vhost.on_queue_deleted = self._queue_deleted
        return vhost

    def delete_vhost(self, name: str) -> None:
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            return
        for session in list(self.sessions):
            if session.vhost is vhost:
                session.force_close(f"vhost '{name}' is deleted")
        for queue in list(vhost.queues.values()):
            vhost.remove_queue(queue)

    def _queue_deleted(self, queue: Queue) -> None:
        sessions = {consumer.channel.session for consumer in queue.consumers}
        for session in sessions:
            session.cancel_consumers_of(queue)
        queue.consumers.clear()

    # -------------------------------------------------------------- users

    def authenticate(self, mechanism: str, response: bytes, peer: str) -> str | None:
        creds = parse_plain(response) if mechanism == "PLAIN" else parse_amqplain(response)
        if creds is None:
            return None
        user, password = creds
        expected = self.users.get(user)
        # compare_digest: no timing signal about how much of the password matched.
        if expected is None or not hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        ):
            return None
        if user in self.settings.loopback_users and not is_loopback(peer):
            return None
        return user
