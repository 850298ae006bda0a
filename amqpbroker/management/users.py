"""Users, tags and permissions as the management API sees them, over the broker's
user database (``Broker.users``, amqpbroker.auth.users.UserDB).

Logins go through ``Broker.authenticate``, so the loopback-only rule for guest
holds here too.  Access to the API follows RabbitMQ's user tags: ``management``
(and every tag above it) may use the API; ``monitoring`` may read every vhost;
``administrator`` may also manage users, permissions, vhosts and definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..broker.broker import Broker

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
FULL_ACCESS = ".*"
ADMINISTRATOR = "administrator"
MONITORING = "monitoring"
# Tags that open the API at all (RabbitMQ: management and everything above it).
MANAGEMENT_TAGS = frozenset({"management", "policymaker", MONITORING, ADMINISTRATOR})
# Tags that may read policies and parameters.
POLICYMAKER_TAGS = frozenset({"policymaker", ADMINISTRATOR})


class UserError(ValueError):
    """A user change the user database refuses (400 bad_request with this text)."""


def authenticate(broker: Broker, user: str, password: str, peer: str) -> bool:
    response = b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")
    return broker.authenticate("PLAIN", response, peer) is not None


def names(broker: Broker) -> list[str]:
    return [rec.name for rec in broker.users.list_users()]


def exists(broker: Broker, name: str) -> bool:
    return broker.users.get(name) is not None


def tags(broker: Broker, name: str) -> list[str]:
    rec = broker.users.get(name)
    return list(rec.tags) if rec is not None else []


def may_access(broker: Broker, user: str, vhost: str) -> bool:
    """Whether the user has any permission record on the vhost (RabbitMQ's vhost access)."""
    return broker.users.permission(user, vhost) is not None


def user_info(broker: Broker, name: str) -> dict[str, Any]:
    rec = broker.users.get(name)
    assert rec is not None
    return {
        "name": name,
        "password_hash": rec.password_hash,
        "hashing_algorithm": rec.hashing_algorithm,
        "tags": list(rec.tags),
        "limits": {},
    }


def put_user(
    broker: Broker,
    name: str,
    *,
    password: str | None,
    hashed: str | None,
    algorithm: str | None = None,
    user_tags: list[str] | None,
) -> bool:
    """Create or update a user from a password or a RabbitMQ hash; True if created."""
    from ..store.base import UserRecord

    db = broker.users
    created = db.get(name) is None
    try:
        if hashed is not None and password is None:
            rec = UserRecord(name, hashed, algorithm or HASHING_ALGORITHM, tuple(user_tags or ()))
            db.import_user(rec)
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
    if broker.users.get(name) is None:
        return False
    broker.users.delete_user(name)
    return True


def permissions(broker: Broker) -> list[dict[str, str]]:
    return [
        {"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write,
         "read": p.read}
        for p in broker.users.list_permissions()
    ]  # fmt: skip


def set_permission(broker: Broker, user: str, vhost: str, body: dict[str, Any]) -> None:
    patterns = [str(body.get(k, "")) for k in ("configure", "write", "read")]
    try:
        broker.users.set_permissions(user, vhost, *patterns)
    except Exception as exc:
        raise UserError(str(exc)) from None


def clear_permission(broker: Broker, user: str, vhost: str) -> None:
    broker.users.clear_permissions(user, vhost)
