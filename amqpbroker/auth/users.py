"""The user database: users, password hashes, tags, and per-vhost permissions.

RabbitMQ's internal backend (rabbit_auth_backend_internal) in one object.  The broker
keeps one (``Broker.users``) and checks every login and every resource access against
it; ``amqpbroker ctl`` builds one over a stopped broker's store to change it.  Every
change is written to the store (when there is one) before it is made in memory, so
what a restarted broker recovers is what was last accepted.

Permissions are three regular expressions per (user, vhost): ``configure`` (declare,
delete), ``write`` (publish, bind to a queue) and ``read`` (consume, get, purge, bind
from an exchange).  As in RabbitMQ a pattern is searched, not anchored, and the empty
pattern means ``^$`` (matches nothing but the empty name); a user with no permission
record for a vhost may not open it at all.

Error handling: administrative operations raise :class:`AdminError` subclasses whose
``str()`` is a one-line message for an operator; ``exit_code`` follows rabbitmqctl's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

import attrs

from ..store.base import Definitions, PermissionRecord, Store, UserRecord
from .passwords import SHA256, check_password, hash_password

log = logging.getLogger("amqpbroker.auth")

CONFIGURE: Final = "configure"
WRITE: Final = "write"
READ: Final = "read"
# What RabbitMQ's first boot gives its default user on the default vhost.
FULL_ACCESS: Final = (".*", ".*", ".*")
DEFAULT_VHOST: Final = "/"
DEFAULT_TAGS: Final = ("administrator",)
# Remembered results of pattern searches per permission record: publishers repeat the
# same few exchange names, so a hit saves a regex search on every publish.  Bounded,
# since names come from clients.
_CACHE_SIZE: Final = 256


class AdminError(Exception):
    """A refused administrative operation; ``str()`` is one line for the operator."""

    # sysexits codes, as rabbitmqctl uses them.
    exit_code = 70


class UserExists(AdminError):
    exit_code = 70


class NoSuchUser(AdminError):
    exit_code = 67


class NoSuchVhost(AdminError):
    exit_code = 69


class InvalidArgument(AdminError):
    exit_code = 65


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """RabbitMQ's reading of a permission pattern; raises re.error when invalid."""
    # The empty pattern is "^$" (rabbit_auth_backend_internal), not "matches anything".
    return re.compile(pattern or "^$")


def _never() -> re.Pattern[str]:
    return re.compile(r"(?!)")


@attrs.define(eq=False)
class Permission:
    """One user's permissions in one vhost, compiled for checking."""

    record: PermissionRecord
    patterns: dict[str, re.Pattern[str]]
    # All three patterns match every name: checks can be skipped (the common case,
    # and the default user's).
    unrestricted: bool
    _cache: dict[tuple[str, str], bool] = attrs.field(factory=dict)

    @classmethod
    def compile(cls, record: PermissionRecord) -> Permission:
        patterns: dict[str, re.Pattern[str]] = {}
        for what in (CONFIGURE, WRITE, READ):
            source = getattr(record, what)
            try:
                patterns[what] = compile_pattern(source)
            except re.error as exc:
                # A pattern RabbitMQ accepts (PCRE) that Python's re does not: refuse
                # everything it would have guarded rather than guess.
                log.warning(
                    "%s permission of user '%s' in vhost '%s' is not a usable pattern "
                    "(%r: %s); treating it as matching nothing",
                    what,
                    record.user,
                    record.vhost,
                    source,
                    exc,
                )
                patterns[what] = _never()
        unrestricted = all(getattr(record, what) == ".*" for what in (CONFIGURE, WRITE, READ))
        return cls(record, patterns, unrestricted)

    def allows(self, what: str, name: str) -> bool:
        key = (what, name)
        hit = self._cache.get(key)
        if hit is None:
            hit = self.patterns[what].search(name) is not None
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = hit
        return hit


class UserDB:
    """Users and permissions, written through to ``store`` (None: memory only)."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self.users: dict[str, UserRecord] = {}
        self._permissions: dict[tuple[str, str], Permission] = {}
        # Bumped by every change of users or permissions, so that a connection can
        # remember a check's result until something changes (the publish hot path).
        self.generation = 0

    # ------------------------------------------------------------- loading

    def restore(
        self,
        definitions: Definitions,
        *,
        default_user: str,
        default_pass: str,
        vhosts: Iterable[str],
    ) -> bool:
        """Take the users and permissions a store recovered.  A store that never held
        users (new, or written before users existed) gets RabbitMQ's first-boot
        defaults: the default user, tagged administrator, with full permissions on
        every vhost in ``vhosts``.  Returns whether that happened."""
        if definitions.users is not None:
            self.users = {rec.name: rec for rec in definitions.users}
            self._permissions = {
                (rec.user, rec.vhost): Permission.compile(rec) for rec in definitions.permissions
            }
            self.generation += 1
            return False
        self.seed(default_user, default_pass, vhosts)
        return True

    def seed(self, name: str, password: str, vhosts: Iterable[str]) -> None:
        """First boot: create the default user with full access to ``vhosts``."""
        if not name:
            return  # no default user wanted
        # Permissions first: the store counts its users as initialised from the first
        # put_user, so a crash in between seeds again rather than leaving a user
        # without access.
        for vhost in vhosts:
            self.set_permissions(name, vhost, *FULL_ACCESS, check_user=False)
        self._put_user(UserRecord(name, hash_password(password), SHA256, DEFAULT_TAGS))

    # ------------------------------------------------------------- queries

    def get(self, name: str) -> UserRecord | None:
        return self.users.get(name)

    def permission(self, user: str, vhost: str) -> Permission | None:
        return self._permissions.get((user, vhost))

    def list_users(self) -> list[UserRecord]:
        return [self.users[name] for name in sorted(self.users)]

    def list_permissions(
        self, *, vhost: str | None = None, user: str | None = None
    ) -> list[PermissionRecord]:
        return [
            perm.record
            for (u, v), perm in sorted(self._permissions.items())
            if (vhost is None or v == vhost) and (user is None or u == user)
        ]

    def check_password(self, name: str, password: str) -> bool:
        """Whether ``name`` may log in with ``password``; the same work is done for an
        unknown name, so timing tells nothing about which names exist."""
        rec = self.users.get(name)
        if rec is None:
            check_password("", password)
            return False
        return check_password(rec.password_hash, password, rec.hashing_algorithm)

    # -------------------------------------------------------- administration

    def add_user(self, name: str, password: str | None, tags: Iterable[str] = ()) -> UserRecord:
        """A new user; ``password`` None makes one that cannot log in with a password
        (as RabbitMQ's passwordless users: EXTERNAL / certificate logins only)."""
        _check_name(name)
        if name in self.users:
            raise UserExists(f'User "{name}" already exists')
        rec = UserRecord(
            name, hash_password(password) if password is not None else "", SHA256, tuple(tags)
        )
        self._put_user(rec)
        return rec

    def import_user(self, rec: UserRecord) -> None:
        """Create or replace a user from exported definitions (hash as given)."""
        _check_name(rec.name)
        self._put_user(rec)

    def change_password(self, name: str, password: str | None) -> None:
        rec = self._existing(name)
        new_hash = hash_password(password) if password is not None else ""
        self._put_user(attrs.evolve(rec, password_hash=new_hash, hashing_algorithm=SHA256))

    def set_tags(self, name: str, tags: Iterable[str]) -> None:
        rec = self._existing(name)
        self._put_user(attrs.evolve(rec, tags=tuple(tags)))

    def delete_user(self, name: str) -> None:
        """Delete the user and all its permissions."""
        self._existing(name)
        if self.store is not None:
            self.store.delete_user(name)
        del self.users[name]
        for key in [key for key in self._permissions if key[0] == name]:
            del self._permissions[key]
        self.generation += 1

    def set_permissions(
        self,
        user: str,
        vhost: str,
        configure: str,
        write: str,
        read: str,
        *,
        check_user: bool = True,
    ) -> None:
        """Replace ``user``'s permissions in ``vhost`` (the caller checks the vhost
        exists).  Patterns that do not compile are refused."""
        if check_user:
            self._existing(user)
        for what, pattern in ((CONFIGURE, configure), (WRITE, write), (READ, read)):
            try:
                compile_pattern(pattern)
            except re.error as exc:
                raise InvalidArgument(
                    f"{what} pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from None
        rec = PermissionRecord(user, vhost, configure, write, read)
        if self.store is not None:
            self.store.put_permission(rec)
        self._permissions[user, vhost] = Permission.compile(rec)
        self.generation += 1

    def clear_permissions(self, user: str, vhost: str) -> None:
        self._existing(user)
        if self.store is not None:
            self.store.delete_permission(user, vhost)
        self._permissions.pop((user, vhost), None)
        self.generation += 1

    def vhost_deleted(self, vhost: str) -> None:
        """Forget permissions on a deleted vhost (the store's delete_vhost drops its
        own), so a new vhost of the same name does not inherit them."""
        for key in [key for key in self._permissions if key[1] == vhost]:
            del self._permissions[key]
        self.generation += 1

    # ------------------------------------------------------------- helpers

    def _existing(self, name: str) -> UserRecord:
        rec = self.users.get(name)
        if rec is None:
            raise NoSuchUser(f'User "{name}" does not exist')
        return rec

    def _put_user(self, rec: UserRecord) -> None:
        if self.store is not None:
            self.store.put_user(rec)
        self.users[rec.name] = rec
        self.generation += 1


def _check_name(name: str) -> None:
    if not name:
        raise InvalidArgument("user name must not be empty")
