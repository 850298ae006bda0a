"""Users and permissions as the management API sees them, over the broker's store
of them.

Every read or change of users by the management code goes through here.  Two
shapes of ``Broker.users`` are handled while the user database is being built:
a user database object (``amqpbroker.auth.users.UserDB``: hashes, tags,
per-vhost permissions) and the older plain ``name -> password`` dict, where
every user may use every vhost.  Logins always go through
``Broker.authenticate``, so the loopback-only rule for guest holds here too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..broker.broker import Broker

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
# RabbitMQ's salted hash: base64(salt[4] + sha256(salt + password)).
SALT_SIZE = 4
FULL_ACCESS = ".*"
DEFAULT_TAGS = ["administrator"]


class UserError(ValueError):
    """A user change the broker refuses (400 bad_request with this text)."""


def _db(broker: Broker) -> Any:
    # Any: the two shapes above; the dict one goes once the user database lands.
    return broker.users


def _is_dict(db: Any) -> bool:
    return isinstance(db, dict)


def authenticate(broker: Broker, user: str, password: str, peer: str) -> bool:
    response = b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")
    return broker.authenticate("PLAIN", response, peer) is not None


def names(broker: Broker) -> list[str]:
    db = _db(broker)
    if _is_dict(db):
        return sorted(db)
    return [rec.name for rec in db.list_users()]


def exists(broker: Broker, name: str) -> bool:
    db = _db(broker)
    return name in db if _is_dict(db) else db.get(name) is not None


def tags(broker: Broker, name: str, extra: dict[str, list[str]]) -> list[str]:
    db = _db(broker)
    if not _is_dict(db):
        rec = db.get(name)
        return list(rec.tags) if rec is not None else []
    if name in extra:
        return list(extra[name])
    return list(DEFAULT_TAGS) if name == broker.settings.default_user else []


def password_hash(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(SALT_SIZE) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def _hash_matches(password: str, encoded: str) -> bool:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        return False
    if len(raw) != SALT_SIZE + hashlib.sha256().digest_size:
        return False
    return hmac.compare_digest(password_hash(password, raw[:SALT_SIZE]), encoded)


def user_info(broker: Broker, name: str, extra: dict[str, list[str]]) -> dict[str, Any]:
    db = _db(broker)
    if _is_dict(db):
        hashed, algorithm = password_hash(db[name]), HASHING_ALGORITHM
    else:
        rec = db.get(name)
        hashed, algorithm = rec.password_hash, rec.hashing_algorithm
    return {
        "name": name,
        "password_hash": hashed,
        "hashing_algorithm": algorithm,
        "tags": tags(broker, name, extra),
        "limits": {},
    }


def put_user(
    broker: Broker,
    name: str,
    *,
    password: str | None,
    hashed: str | None,
    user_tags: list[str] | None,
    extra: dict[str, list[str]],
) -> bool:
    """Create or update a user (a password, or a RabbitMQ hash); True if created."""
    db = _db(broker)
    created = not exists(broker, name)
    if _is_dict(db):
        if password is not None:
            db[name] = password
        elif hashed is not None and not (not created and _hash_matches(db[name], hashed)):
            # A plain password table cannot hold a hash that is not its password's.
            raise UserError(f"user '{name}': only a password hash is given")
        elif created:
            raise UserError(f"user '{name}' needs a password")
        if user_tags is not None:
            extra[name] = user_tags
        return created
    from ..store.base import UserRecord

    try:
        if hashed is not None and password is None:
            db.import_user(UserRecord(name, hashed, HASHING_ALGORITHM, tuple(user_tags or ())))
            return created
        if created:
            db.add_user(name, password, user_tags or ())
            return True
        if password is not None:
            db.change_password(name, password)
        if user_tags is not None:
            db.set_tags(name, user_tags)
    except Exception as exc:  # the user database's AdminError: one readable line
        raise UserError(str(exc)) from None
    return created


def delete_user(broker: Broker, name: str) -> bool:
    db = _db(broker)
    if _is_dict(db):
        return db.pop(name, None) is not None
    if db.get(name) is None:
        return False
    db.delete_user(name)
    return True


def permissions(broker: Broker) -> list[dict[str, str]]:
    db = _db(broker)
    if _is_dict(db):
        return [
            {"user": u, "vhost": v, "configure": FULL_ACCESS, "write": FULL_ACCESS,
             "read": FULL_ACCESS}
            for u in sorted(db)
            for v in sorted(broker.vhosts)
        ]  # fmt: skip
    return [
        {"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write,
         "read": p.read}
        for p in db.list_permissions()
    ]  # fmt: skip


def set_permission(broker: Broker, user: str, vhost: str, body: dict[str, Any]) -> None:
    db = _db(broker)
    if _is_dict(db):
        return  # every user may use every vhost
    patterns = [str(body.get(k, "")) for k in ("configure", "write", "read")]
    try:
        db.set_permissions(user, vhost, *patterns)
    except Exception as exc:
        raise UserError(str(exc)) from None


def clear_permission(broker: Broker, user: str, vhost: str) -> None:
    db = _db(broker)
    if not _is_dict(db):
        db.clear_permissions(user, vhost)
