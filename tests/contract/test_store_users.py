"""The store contract for users and permissions, and for offline (admin) opens, run
against every store; the last tests are SQLite-only (the schema migration)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from amqpbroker.store import (
    DataDirLocked,
    Definitions,
    ExchangeRecord,
    MemoryImage,
    MemoryStore,
    MessageRecord,
    PermissionRecord,
    SQLiteStore,
    Store,
    StoreError,
    UserRecord,
    sqlite_schema,
)

ALICE = UserRecord("alice", "aGFzaA==", "rabbit_password_hashing_sha256", ("management", "x"))
BOB = UserRecord("bob", "", "rabbit_password_hashing_sha256")


@attrs.define
class Backend:
    name: str
    make: Callable[[], Store]  # a new, unopened store over the same data

    def new(self) -> Store:
        return self.make()


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        image = MemoryImage()
        return Backend("memory", lambda: MemoryStore(image))
    return Backend("sqlite", lambda: SQLiteStore(tmp_path / "data"))


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    store = backend.new()
    store.open()
    yield store
    store.close()


def reopen(backend: Backend, store: Store, *, crash: bool = False) -> Definitions:
    if crash:
        store.simulate_crash()
    else:
        store.close()
    new = backend.new()
    defs = new.open()
    new.close()
    return defs


def test_a_new_store_never_held_users(backend: Backend, store: Store) -> None:
    defs = reopen(backend, store)
    assert defs.users is None
    assert defs.permissions == []


@pytest.mark.parametrize("crash", [False, True])
def test_users_round_trip_and_are_committed_at_once(
    backend: Backend, store: Store, crash: bool
) -> None:
    store.put_user(ALICE)
    store.put_user(BOB)
    defs = reopen(backend, store, crash=crash)
    assert defs.users == [ALICE, BOB]
    assert type(defs.users[0].tags) is tuple


def test_put_user_replaces_it(backend: Backend, store: Store) -> None:
    store.put_user(ALICE)
    changed = attrs.evolve(ALICE, password_hash="bmV3", tags=())
    store.put_user(changed)
    assert reopen(backend, store).users == [changed]


def test_deleting_every_user_is_not_a_new_store(backend: Backend, store: Store) -> None:
    store.put_user(ALICE)
    store.delete_user("alice")
    store.delete_user("nobody")
    assert reopen(backend, store).users == []


def test_deleting_a_missing_user_counts_as_having_users(backend: Backend, store: Store) -> None:
    store.delete_user("nobody")
    assert reopen(backend, store).users == []


def test_permissions_round_trip_and_replace(backend: Backend, store: Store) -> None:
    store.put_user(ALICE)
    store.put_permission(PermissionRecord("alice", "/", ".*", "", "^amq\\.gen-.*"))
    store.put_permission(PermissionRecord("alice", "/", "^$", "w", "r"))
    store.put_permission(PermissionRecord("alice", "other", "c", "w", "r"))
    # The store checks neither the user nor the vhost.
    store.put_permission(PermissionRecord("ghost", "nowhere", "", "", ""))
    store.delete_permission("alice", "other")
    store.delete_permission("alice", "missing")
    defs = reopen(backend, store, crash=True)
    assert defs.permissions == [
        PermissionRecord("alice", "/", "^$", "w", "r"),
        PermissionRecord("ghost", "nowhere", "", "", ""),
    ]


def test_delete_user_removes_its_permissions(backend: Backend, store: Store) -> None:
    store.put_user(ALICE)
    store.put_user(BOB)
    store.put_permission(PermissionRecord("alice", "/", ".*", ".*", ".*"))
    store.put_permission(PermissionRecord("bob", "/", ".*", ".*", ".*"))
    store.delete_user("alice")
    defs = reopen(backend, store)
    assert defs.users == [BOB]
    assert [p.user for p in defs.permissions] == ["bob"]


def test_delete_vhost_removes_its_permissions_only(backend: Backend, store: Store) -> None:
    store.put_vhost("a")
    store.put_vhost("b")
    store.put_user(ALICE)
    store.put_permission(PermissionRecord("alice", "a", ".*", ".*", ".*"))
    store.put_permission(PermissionRecord("alice", "b", ".*", ".*", ".*"))
    store.delete_vhost("a")
    store.put_vhost("a")  # a new vhost of the same name starts without permissions
    defs = reopen(backend, store)
    assert [(p.user, p.vhost) for p in defs.permissions] == [("alice", "b")]
    assert defs.users == [ALICE]


def test_admin_open_keeps_transient_entities_and_the_clean_flag(
    backend: Backend, store: Store
) -> None:
    store.put_vhost("/")
    store.put_exchange(ExchangeRecord("/", "transient", "direct", False, False, False, {}))
    qid = store.put_queue("/", "q", True, False, {})
    store.enqueue(qid, MessageRecord(1, "", "q", b"\x00\x3c\x00\x00h", b"m", False))
    store.commit()
    store.simulate_crash()

    admin = backend.new()
    defs = admin.open(admin=True)
    assert not defs.clean_shutdown
    assert [e.name for e in defs.exchanges] == ["transient"]
    admin.put_user(ALICE)
    admin.close()

    # The next broker run still sees the crash of the last one (and so marks recovered
    # messages redelivered), and drops the transient exchange itself.
    run = backend.new()
    defs = run.open()
    assert not defs.clean_shutdown
    assert defs.exchanges == []
    assert defs.users == [ALICE]
    run.close()
    final = backend.new()
    assert final.open().clean_shutdown
    final.close()


def test_admin_open_is_refused_while_a_broker_holds_the_data(
    backend: Backend, store: Store
) -> None:
    with pytest.raises(StoreError):
        backend.new().open(admin=True)


# -- SQLite only ---------------------------------------------------------------------------


def test_sqlite_upgrade_from_before_users_keeps_data_and_seeds_nothing(tmp_path: Path) -> None:
    old = SQLiteStore(tmp_path)
    old.open()
    old.put_vhost("kept")
    old.close()
    # Turn it into a database from before users existed (the schema version before).
    users_version = sqlite_schema.MIGRATIONS.index(sqlite_schema._v3_users)
    with sqlite3.connect(tmp_path / "amqpbroker.sqlite3") as conn:
        conn.execute("DROP TABLE users")
        conn.execute("DROP TABLE permissions")
        conn.execute(f"PRAGMA user_version = {users_version}")
    new = SQLiteStore(tmp_path)
    defs = new.open()
    assert defs.vhosts == ["kept"]
    assert defs.users is None  # the broker seeds its default user, as before users existed
    new.put_user(ALICE)
    new.close()
    again = SQLiteStore(tmp_path)
    assert again.open().users == [ALICE]
    again.close()


def test_sqlite_locked_data_dir_names_the_holder(tmp_path: Path) -> None:
    holder = SQLiteStore(tmp_path)
    holder.open()
    try:
        with pytest.raises(DataDirLocked) as err:
            SQLiteStore(tmp_path).open(admin=True)
        assert err.value.pid.isdigit()
    finally:
        holder.close()
