"""The SQLite store's schema, as a list of migrations.

``PRAGMA user_version`` holds how many migrations a database has had. Opening runs the
missing ones in order, each in its own transaction together with the version bump, so a crash
mid-upgrade leaves the previous version intact, and a newer broker opens an older data dir.
A database whose version is above ``SCHEMA_VERSION`` was written by a newer broker and is
refused. Migrations only ever get appended: never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sqlite_utils import Database


def _create(db: Database, name: str, columns: dict[str, type], pk: str | tuple[str, ...]) -> None:
    # Every column NOT NULL: SQLite would otherwise even allow NULL in a composite primary key.
    db.table(name).create(columns, pk=pk, not_null=set(columns))


def _v1_initial(db: Database) -> None:
    # Counters that must never go backwards, even when the rows they numbered are gone:
    # max_seq (Definitions.max_seq) and last_queue_id (queue ids are never reused).
    _create(db, "meta", {"key": str, "value": int}, pk="key")
    db.table("meta").insert_all(
        [{"key": "max_seq", "value": 0}, {"key": "last_queue_id", "value": 0}]
    )

    _create(db, "vhosts", {"name": str}, pk="name")
    # Argument tables are stored as canonical JSON text (amqpbroker.store.stored_arguments).
    _create(
        db,
        "exchanges",
        {
            "vhost": str,
            "name": str,
            "type": str,
            "durable": bool,
            "auto_delete": bool,
            "internal": bool,
            "arguments": str,
        },
        pk=("vhost", "name"),
    )
    _create(
        db,
        "queues",
        {
            "queue_id": int,
            "vhost": str,
            "name": str,
            "durable": bool,
            "auto_delete": bool,
            "arguments": str,
        },
        pk="queue_id",
    )
    db.table("queues").create_index(["vhost", "name"], unique=True)
    # Every field identifies a binding, arguments included (as RabbitMQ's binding key does).
    binding_columns = ("vhost", "source", "destination_kind", "destination", "routing_key")
    _create(
        db,
        "bindings",
        {**dict.fromkeys(binding_columns, str), "arguments": str},
        pk=(*binding_columns, "arguments"),
    )
    # delete_exchange and delete_queue find bindings by destination.
    db.table("bindings").create_index(["vhost", "destination_kind", "destination"])
    # A rowid table with the (queue_id, seq) key as a separate index: WITHOUT ROWID measured
    # ~10% faster for 16-byte bodies but 3-4x slower inserts and deletes for 1 KiB bodies,
    # because the whole row then lives in the key b-tree.
    _create(
        db,
        "messages",
        {
            "queue_id": int,
            "seq": int,
            "exchange": str,
            "routing_key": str,
            "header": bytes,
            "body": bytes,
            "redelivered": bool,
        },
        pk=("queue_id", "seq"),
    )


def _v2_message_expiry(db: Database) -> None:
    # Queue features: a message's TTL deadline (epoch ms, 0 = none) and a quorum queue's
    # delivery count, so both survive a restart.
    db.execute("ALTER TABLE messages ADD COLUMN expires INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE messages ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0")


def _v3_users(db: Database) -> None:
    # Users and permissions (RabbitMQ's internal auth backend). tags: a JSON list of
    # strings. Whether users were ever stored is the meta key "users_initialized", absent
    # until the first put_user / delete_user: its absence makes the broker create the
    # default user on its first start after this migration, as before users existed.
    _create(
        db,
        "users",
        {"name": str, "password_hash": str, "hashing_algorithm": str, "tags": str},
        pk="name",
    )
    _create(
        db,
        "permissions",
        {"user": str, "vhost": str, "configure": str, "write": str, "read": str},
        pk=("user", "vhost"),
    )
    # delete_vhost removes the vhost's permissions.
    db.table("permissions").create_index(["vhost"])


# Index i upgrades a database from version i to version i + 1.
MIGRATIONS: list[Callable[[Database], None]] = [_v1_initial, _v2_message_expiry, _v3_users]


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def supported_version() -> int:
    # A function, not a constant, so tests can append a migration and see it honoured.
    return len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database up to ``supported_version()``; the caller checked it is not newer."""
    db = Database(conn, execute_plugins=False)
    for version in range(schema_version(conn), len(MIGRATIONS)):
        with db.atomic():
            MIGRATIONS[version](db)
            # PRAGMA takes no parameters; the value is an int we computed.
            db.execute(f"PRAGMA user_version = {version + 1}")
