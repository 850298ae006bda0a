"""The broker: virtual hosts, users, and the sessions connected to it."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

import attrs

from .. import __version__
from ..auth.users import FULL_ACCESS, UserDB
from ..config import Settings
from ..protocol.sasl import parse_amqplain, parse_plain
from ..store import MEMORY, open_store
from ..store.base import Store
from . import permissions
from .ack_timeout import AckTimeouts
from .alarms import Alarms
from .exchanges.default import DefaultExchange
from .queue import Queue
from .reply_to import ReplyQueue
from .stats import Totals
from .timers import Timers
from .vhost import VirtualHost

if TYPE_CHECKING:
    from .channel import Channel
    from .message import Message
    from .ports import Connection
    from .recovery import RecoveryStats

    # observe(vhost, message, queues), called after each publish is routed.
    PublishObserver = Callable[[VirtualHost, Message, Collection[Queue]], None]


log = logging.getLogger("amqpbroker.auth")


def _noop() -> None:
    pass


@attrs.define
class CommitBatch:
    channels: list[tuple[Channel, int]]
    callbacks: list[Callable[[], None]]


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

    def __init__(
        self,
        settings: Settings | None = None,
        store: Store | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``store`` is an opened store for durable state, or None to keep nothing
        (``--transient``); with a store, call :meth:`recover` before serving.
        ``clock`` (seconds, wall-clock time by default) is what TTLs and other
        deadlines are measured with; tests pass their own and call :meth:`run_timers`."""
        self.settings = settings or Settings()
        # What differs by RabbitMQ release (versions.py): handlers read it as data.
        self.behaviour = self.settings.behaviour
        self.clock: Callable[[], float] = clock or time.time
        # Deadlines (TTLs, x-expires, ack timeouts); server/clock.py runs them.
        self.timers = Timers(self.clock)
        # Live direct reply-to names -> where their replies go (reply_to.py).
        self.reply_queues: dict[str, ReplyQueue] = {}
        self.vhosts: dict[str, VirtualHost] = {}
        # Users, password hashes and permissions (auth/users.py). With a store they
        # come from open() (first boot: the default user); without one, the default
        # user with full access to "/", as RabbitMQ's first boot.
        self.users = UserDB(store)
        if store is None:
            self.users.seed(self.settings.default_user, self.settings.default_pass, ["/"])
        # Open client connections (broker/session.py's Session, which the server adds).
        self.sessions: set[Connection] = set()
        # Called as observe(vhost, message, queues) after each publish is routed: the
        # testing helpers record published messages with it.  Empty unless a test is
        # recording, so the hot path pays one truthiness test for it.
        self.publish_observers: list[PublishObserver] = []
        # Message and churn totals of closed connections (management, metrics).
        self.totals = Totals()
        self.store = store
        # Group commit bookkeeping (see server/committer.py): channels whose
        # confirms wait for the next commit, and callbacks to run after it.
        self.commit_channels: list[Channel] = []
        self.commit_callbacks: list[Callable[[], None]] = []
        self.request_commit: Callable[[], None] = _noop
        # Paged queues waiting for their next messages (server/pager.py).
        self.page_requests: set[Queue] = set()
        self.wake_pager: Callable[[], None] | None = None
        self.recovered: RecoveryStats | None = None
        if self.settings.consumer_timeout:
            AckTimeouts(self.timers, self.sessions, self.settings.consumer_timeout).start()
        self.alarms = Alarms(self.sessions)
        # Why the disk alarm is up: free space under the limit, or commits failing.
        self.disk_low = False
        self.commit_failing = False
        self.add_vhost("/")

    @classmethod
    def open(cls, settings: Settings, *, clock: Callable[[], float] | None = None) -> Broker:
        """A broker over the store ``settings.data_dir`` names, its durable state
        recovered.  Raises StoreError (one readable line) when the data cannot be
        used: locked by another broker, unreadable, corrupt, from a newer version."""
        if settings.data_dir == MEMORY:
            return cls(settings, clock=clock)
        from .recovery import recover

        store = open_store(settings.data_dir, settings.sync, settings.store_check)
        definitions = store.open()
        try:
            broker = cls(settings, store, clock=clock)
            broker.recovered = recover(broker, definitions)
            broker.users.restore(
                definitions,
                default_user=settings.default_user,
                default_pass=settings.default_pass,
                vhosts=sorted(broker.vhosts),
            )
        except BaseException:
            store.close()
            raise
        return broker

    def close(self) -> None:
        """Write what is still buffered and release the store (after the server has
        stopped, so every unacked delivery is back in its queue)."""
        if self.store is not None:
            self._record_redeliveries(self.store)
            self.store.close()

    def _record_redeliveries(self, store: Store) -> None:
        """Deliveries are not written as they happen (one store operation fewer per
        persistent message): after a crash every recovered message is redelivered
        anyway (recovery.py). A clean stop records which stored messages have been
        delivered, so that exactly those come back with redelivered=true."""
        for vhost in self.vhosts.values():
            for queue in vhost.queues.values():
                if queue.store is None:
                    continue
                for qm in queue.ready:
                    if qm.persisted and qm.redelivered:
                        store.mark_delivered(queue.store_id, qm.seq)

    # --------------------------------------------------------- group commit

    def await_commit(self, channel: Channel, seq: int) -> None:
        """Confirm publish ``seq`` on ``channel`` after the next group commit."""
        channel.commit_seq = seq
        if not channel.commit_queued:
            channel.commit_queued = True
            self.commit_channels.append(channel)
        self.request_commit()

    def request_page_in(self, queue: Queue) -> None:
        """A paged queue's head runs low: read its next messages from the store.
        The server's pager does it in a worker thread; without one (a broker driven
        directly, in unit tests) it happens now."""
        if self.wake_pager is None:
            queue.page_in_now()
            return
        self.page_requests.add(queue)
        self.wake_pager()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.commit_callbacks.append(callback)
        self.request_commit()

    def take_commit_batch(self) -> CommitBatch:
        """What the commit about to start will make durable (called before it starts,
        on the broker's thread: everything buffered so far is in that commit)."""
        batch = CommitBatch(
            [(channel, channel.commit_seq) for channel in self.commit_channels],
            self.commit_callbacks,
        )
        for channel in self.commit_channels:
            channel.commit_queued = False
        self.commit_channels = []
        self.commit_callbacks = []
        return batch

    def restore_commit_batch(self, batch: CommitBatch) -> None:
        """A commit failed: its waiters wait for the next one, ahead of newer ones."""
        for channel, _seq in batch.channels:
            if not channel.commit_queued:
                channel.commit_queued = True
                self.commit_channels.append(channel)
        self.commit_callbacks[:0] = batch.callbacks

    def finish_commit(self, batch: CommitBatch) -> None:
        """The commit is durable: release the confirms and replies that waited."""
        for channel, seq in batch.channels:
            if not channel.closed:
                channel.committed(seq)
        for callback in batch.callbacks:
            callback()

    # -------------------------------------------------------------- timers

    def run_timers(self) -> None:
        """Run every due deadline (called by the server's timer task, or a test)."""
        self.timers.run_due()
        if self.store is not None and self.store.has_pending():
            self.request_commit()  # dead-lettered persistent messages, expiries

    # ------------------------------------------------------------- vhosts

    def add_vhost(self, name: str) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VirtualHost(name)
            vhost.on_queue_deleted = self._queue_deleted
            # Server-named queues are permission-checked once their name is drawn.
            vhost.on_server_named = permissions.check_server_named
            vhost.store = self.store
            vhost.pager = self.request_page_in
            vhost.timers = self.timers
            vhost.behaviour = self.behaviour
            # Replies to amq.rabbitmq.reply-to.* names route through the default exchange.
            vhost.exchanges[""] = DefaultExchange(vhost.queues.get, self.reply_queues.get)
            if self.store is not None:
                self.store.put_vhost(name)
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
        if self.store is not None:
            self.store.delete_vhost(name)
        self.users.vhost_deleted(name)

    def grant_default_user(self, vhost: str) -> None:
        """Full permissions on ``vhost`` for the default user, if it exists: what vhosts
        made through the embedding API and the pytest plugin get, so guest can use them."""
        name = self.settings.default_user
        if self.users.get(name) is not None:
            self.users.set_permissions(name, vhost, *FULL_ACCESS)

    def _queue_deleted(self, queue: Queue) -> None:
        for consumer in list(queue.consumers):
            consumer.queue_deleted()
        queue.consumers.clear()

    # -------------------------------------------------------------- users

    def authenticate(
        self, mechanism: str, response: bytes, peer: str, *, cert_user: str | None = None
    ) -> str | None:
        """The user a login is for, or None to refuse it (the reason is logged, never
        the password).  ``cert_user``: the name a verified TLS client certificate gives,
        the only input of EXTERNAL."""
        if mechanism == "EXTERNAL":
            user = cert_user
            if user is None:
                log.warning("EXTERNAL login refused from %s: no client certificate", peer)
                return None
            if self.users.get(user) is None:
                log.warning(
                    "EXTERNAL login refused from %s: user '%s' - invalid credentials", peer, user
                )
                return None
        else:
            if mechanism == "ANONYMOUS":
                # RabbitMQ 4: a fixed user and password (anonymous_login_user / _pass).
                creds = self.behaviour.anonymous_login
            elif mechanism == "PLAIN":
                creds = parse_plain(response)
            else:
                creds = parse_amqplain(response)
            if creds is None:
                log.warning("%s login refused from %s: malformed response", mechanism, peer)
                return None
            user, password = creds
            if not self.users.check_password(user, password):
                # RabbitMQ's wording; the same for an unknown user and a wrong password.
                log.warning(
                    "%s login refused from %s: user '%s' - invalid credentials",
                    mechanism,
                    peer,
                    user,
                )
                return None
        if user in self.settings.loopback_users and not is_loopback(peer):
            log.warning(
                "%s login refused from %s: user '%s' can only connect via localhost",
                mechanism,
                peer,
                user,
            )
            return None
        return user
