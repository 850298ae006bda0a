"""Password hashes in RabbitMQ's format, permission pattern semantics, and the login
rules of Broker.authenticate (loopback-only users, EXTERNAL)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amqpbroker.auth import passwords
from amqpbroker.auth.users import (
    CONFIGURE,
    READ,
    WRITE,
    InvalidArgument,
    NoSuchUser,
    Permission,
    UserDB,
    UserExists,
)
from amqpbroker.broker.broker import Broker
from amqpbroker.config import Settings
from amqpbroker.store import PermissionRecord

# Exported by rabbitmqctl export_definitions from RabbitMQ 3.10.8 (user password "pw",
# and guest's default "guest").
RABBITMQ_PW_HASH = "fegpxSt2aQOOWStbkXYwzi/Dr6nZphEqf4VMIDKE+bUAW+YW"
RABBITMQ_GUEST_HASH = "9IQiVa8xSyGnUXP7aIFty94curMmky+JTv1A5wRIvoGonvjd"


def plain(user: str, password: str) -> bytes:
    return b"\x00" + user.encode() + b"\x00" + password.encode()


# ------------------------------------------------------------------ passwords


def test_hashes_exported_by_rabbitmq_check() -> None:
    assert passwords.check_password(RABBITMQ_PW_HASH, "pw")
    assert passwords.check_password(RABBITMQ_GUEST_HASH, "guest")
    assert not passwords.check_password(RABBITMQ_PW_HASH, "PW")


def test_hash_layout_is_salt_then_sha256() -> None:
    import base64
    import hashlib

    encoded = passwords.hash_password("secret", salt=b"abcd")
    raw = base64.b64decode(encoded)
    assert raw == b"abcd" + hashlib.sha256(b"abcdsecret").digest()
    assert passwords.valid_hash(encoded, passwords.SHA256)


@given(st.text(), st.text())
def test_a_hash_matches_its_password_only(password: str, other: str) -> None:
    encoded = passwords.hash_password(password)
    assert passwords.check_password(encoded, password)
    assert passwords.check_password(encoded, other) == (other == password)


@pytest.mark.parametrize("algorithm", sorted(passwords.ALGORITHMS))
def test_older_rabbitmq_algorithms_check(algorithm: str) -> None:
    encoded = passwords.hash_password("pw", algorithm=algorithm)
    assert passwords.check_password(encoded, "pw", algorithm)
    assert not passwords.check_password(encoded, "pw", "no_such_algorithm")


@pytest.mark.parametrize("bad", ["", "not base64!", "YWJj", "YWJjZA=="])
def test_unusable_hashes_never_match(bad: str) -> None:
    # "" is a passwordless user; a hash no longer than its salt has no digest.
    assert not passwords.check_password(bad, "")
    assert not passwords.check_password(bad, "anything")


# ---------------------------------------------------------------- permissions


def perm(configure: str, write: str = "", read: str = "") -> Permission:
    return Permission.compile(PermissionRecord("u", "/", configure, write, read))


def test_empty_pattern_means_only_the_empty_name() -> None:
    p = perm("")
    assert not p.allows(CONFIGURE, "q")
    assert p.allows(CONFIGURE, "")


def test_patterns_are_searched_not_anchored() -> None:
    p = perm("foo", "^bar$", "^amq\\.gen-.*")
    assert p.allows(CONFIGURE, "xfooy")
    assert p.allows(WRITE, "bar") and not p.allows(WRITE, "barn")
    assert p.allows(READ, "amq.gen-abc") and not p.allows(READ, "q")
    assert not p.unrestricted
    assert perm(".*", ".*", ".*").unrestricted


def test_a_pattern_python_cannot_compile_matches_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "amqpbroker.auth"):
        p = perm("(?<pcre_only>x)")
    assert not p.allows(CONFIGURE, "x")
    assert "not a usable pattern" in caplog.text


def test_the_match_cache_is_bounded() -> None:
    p = perm(".*")
    for i in range(10_000):
        assert p.allows(CONFIGURE, f"q{i}")
    assert len(p._cache) <= 256


# ------------------------------------------------------------------- user db


def test_user_db_administration() -> None:
    db = UserDB()
    db.add_user("alice", "pw", ["management"])
    with pytest.raises(UserExists):
        db.add_user("alice", "pw")
    with pytest.raises(NoSuchUser):
        db.set_permissions("bob", "/", ".*", ".*", ".*")
    with pytest.raises(InvalidArgument):
        db.set_permissions("alice", "/", "(", ".*", ".*")
    db.set_permissions("alice", "/", "^a", "", ".*")
    db.set_permissions("alice", "v", ".*", ".*", ".*")
    assert db.check_password("alice", "pw")
    db.change_password("alice", "new")
    assert not db.check_password("alice", "pw") and db.check_password("alice", "new")
    db.change_password("alice", None)
    assert not db.check_password("alice", "")
    db.vhost_deleted("v")
    assert [(p.vhost, p.configure) for p in db.list_permissions(user="alice")] == [("/", "^a")]
    db.delete_user("alice")
    assert db.list_users() == [] and db.permission("alice", "/") is None


# ---------------------------------------------------------------- logins


def test_guest_may_log_in_only_from_loopback(caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker(Settings())
    assert broker.authenticate("PLAIN", plain("guest", "guest"), "127.0.0.1:5000") == "guest"
    assert broker.authenticate("PLAIN", plain("guest", "guest"), "[::1]:5000") == "guest"
    with caplog.at_level(logging.WARNING, "amqpbroker.auth"):
        assert broker.authenticate("PLAIN", plain("guest", "guest"), "10.1.2.3:5000") is None
    assert "user 'guest' can only connect via localhost" in caplog.text
    # Other users are not restricted.
    broker.users.add_user("remote", "pw")
    assert broker.authenticate("PLAIN", plain("remote", "pw"), "10.1.2.3:5000") == "remote"


def test_allow_guest_remote_lifts_the_loopback_rule() -> None:
    broker = Broker(Settings(loopback_users=()))
    assert broker.authenticate("PLAIN", plain("guest", "guest"), "10.1.2.3:5000") == "guest"


def test_external_takes_the_certificate_user_only() -> None:
    broker = Broker(Settings())
    broker.users.add_user("client.example", None)  # no password: certificate logins only
    assert broker.authenticate("EXTERNAL", b"", "127.0.0.1:1", cert_user="client.example") == (
        "client.example"
    )
    assert broker.authenticate("EXTERNAL", b"", "127.0.0.1:1", cert_user="unknown") is None
    assert broker.authenticate("EXTERNAL", b"", "127.0.0.1:1") is None
    # A passwordless user cannot log in with PLAIN, whatever it sends.
    assert broker.authenticate("PLAIN", plain("client.example", ""), "127.0.0.1:1") is None


def test_malformed_responses_are_refused() -> None:
    broker = Broker(Settings())
    assert broker.authenticate("PLAIN", b"guest", "127.0.0.1:1") is None
    assert broker.authenticate("AMQPLAIN", b"\xff\xff", "127.0.0.1:1") is None
