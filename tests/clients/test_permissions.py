"""Users and permissions as a client sees them: logins, vhost access, and the 403 of
every operation for every kind of (configure, write, read) patterns, compared with
what a real RabbitMQ 3.10.8 answered to the same scenarios (data/…json, recorded with
permkit.py)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from permkit import OPS, USERS, observe
from pika.exceptions import (
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

import amqpbroker
from amqpbroker.auth.users import UserDB
from amqpbroker.testing.pytest_plugin import each_version

RECORDED = json.loads(
    (Path(__file__).parent / "data" / "permissions-rabbitmq-3.10.8.json").read_text("utf-8")
)["outcomes"]


def _as_recorded(outcome: Any) -> Any:
    return list(outcome) if isinstance(outcome, tuple) else outcome


class Users:
    """Users made for one test (unique names, deleted afterwards)."""

    def __init__(self, broker: amqpbroker.Broker, vhost: str) -> None:
        self.broker = broker
        self.vhost = vhost
        self.prefix = f"u{os.getpid()}-{vhost}-"
        self.made: list[str] = []

    @property
    def db(self) -> UserDB:
        assert self.broker.core is not None
        return self.broker.core.users

    def add(
        self, short: str, password: str = "pw", perms: tuple[str, str, str] | None = None
    ) -> str:
        name = self.prefix + short
        self.broker.call(self.db.add_user, name, password)
        self.made.append(name)
        if perms is not None:
            self.grant(name, *perms)
        return name

    def grant(self, name: str, configure: str, write: str, read: str) -> None:
        self.broker.call(self.db.set_permissions, name, self.vhost, configure, write, read)

    def cleanup(self) -> None:
        for name in self.made:
            if self.db.get(name) is not None:
                self.broker.call(self.db.delete_user, name)


@pytest.fixture
def users(broker: amqpbroker.Broker, vhost: str) -> Iterator[Users]:
    made = Users(broker, vhost)
    yield made
    made.cleanup()


def connect(broker: amqpbroker.Broker, vhost: str, user: str, password: str = "pw") -> Any:
    creds = pika.PlainCredentials(user, password)
    params = pika.ConnectionParameters(
        broker.host, broker.port, vhost, creds, heartbeat=0, socket_timeout=5
    )
    return pika.BlockingConnection(params)


# ----------------------------------------------------------------- the table


# RECORDED was recorded on RabbitMQ 3.10.8 (4.0 differs in xdecl_badtype: a 406
# channel close; tests/clients/test_exchanges.py covers that).
@pytest.mark.rabbitmq_version("3.10")
@pytest.mark.parametrize("short", list(USERS))
def test_every_operation_is_checked_as_rabbitmq_does(
    broker: amqpbroker.Broker, vhost: str, users: Users, short: str
) -> None:
    name = users.add(short, perms=USERS[short])
    seen = observe(broker.host, broker.port, vhost, name, "pw", list(OPS))
    assert {op: _as_recorded(out) for op, out in seen.items()} == RECORDED[short]


@each_version("4.2", "4.3")
def test_passive_declares_need_some_permission_from_4_3(
    broker: amqpbroker.Broker, vhost: str, users: Users, url: str, rabbitmq_version: str
) -> None:
    admin = pika.BlockingConnection(pika.URLParameters(url))
    admin.channel().queue_declare("pq", durable=True)
    admin.channel().exchange_declare("px", "direct")
    admin.close()
    nobody = users.add("nobody", perms=("^$", "^$", "^$"))
    reader = users.add("reader", perms=("^$", "^$", "^p"))
    for user in (nobody, reader):
        conn = connect(broker, vhost, user)
        try:
            for kind, declare in (
                ("queue", lambda ch: ch.queue_declare("pq", passive=True)),
                ("exchange", lambda ch: ch.exchange_declare("px", passive=True)),
            ):
                name = "pq" if kind == "queue" else "px"
                if rabbitmq_version == "4.2" or user == reader:
                    declare(conn.channel())
                    continue
                # 4.3: read, write or configure; refused as a declare would be.
                with pytest.raises(ChannelClosedByBroker) as info:
                    declare(conn.channel())
                assert info.value.args == (
                    403,
                    f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' "
                    f"refused for user '{user}'",
                )
        finally:
            if conn.is_open:
                conn.close()


# ------------------------------------------------------------ logins, vhosts


def test_default_user_has_full_access_to_embedding_api_vhosts(url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url + "?heartbeat=0"))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        assert channel.queue_declare("anything").method.queue == "anything"  # configure
        channel.basic_publish("", "anything", b"m")  # write (confirmed, or it raises)
        assert channel.basic_get("anything", auto_ack=True)[2] == b"m"  # read
    finally:
        conn.close()


def test_user_without_permissions_in_the_vhost_is_refused_530(
    broker: amqpbroker.Broker, vhost: str, users: Users
) -> None:
    name = users.add("nobody")
    with pytest.raises(ProbableAccessDeniedError) as err:
        connect(broker, vhost, name)
    assert f"(530) \"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{name}'\"" in str(
        err.value
    )


def test_empty_patterns_still_grant_the_vhost(
    broker: amqpbroker.Broker, vhost: str, users: Users
) -> None:
    conn = connect(broker, vhost, users.add("empty", perms=("", "", "")))
    assert conn.is_open
    conn.close()


def test_a_missing_vhost_is_reported_before_access(broker: amqpbroker.Broker, users: Users) -> None:
    with pytest.raises(ProbableAccessDeniedError) as err:
        connect(broker, "no-such-vhost", users.add("lost"))
    assert "NOT_ALLOWED - vhost no-such-vhost not found" in str(err.value)


@pytest.mark.parametrize("who", ["wrong password", "unknown user"])
def test_refused_login_is_logged_without_the_password(
    broker: amqpbroker.Broker,
    vhost: str,
    users: Users,
    caplog: pytest.LogCaptureFixture,
    who: str,
) -> None:
    name = users.add("alice", password="right-password", perms=(".*", ".*", ".*"))
    if who == "unknown user":
        name += "-nobody"
    with (
        caplog.at_level(logging.WARNING, "amqpbroker.auth"),
        pytest.raises(ProbableAuthenticationError) as err,
    ):
        connect(broker, vhost, name, "Wr0ng-S3cret")
    assert (
        "(403) 'ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
        "For details see the broker logfile.'"
    ) in str(err.value)
    assert "PLAIN login refused from 127.0.0.1:" in caplog.text
    assert f"user '{name}' - invalid credentials" in caplog.text
    assert "Wr0ng-S3cret" not in caplog.text


def test_amqplain_login_checks_the_hash(
    broker: amqpbroker.Broker, vhost: str, users: Users
) -> None:
    import amqp  # py-amqp logs in with AMQPLAIN

    name = users.add("amqplain", password="pässword", perms=(".*", ".*", ".*"))

    def login(password: str) -> amqp.Connection:
        conn = amqp.Connection(
            f"{broker.host}:{broker.port}",
            userid=name,
            password=password,
            virtual_host=vhost,
            login_method="AMQPLAIN",
            connect_timeout=5,
        )
        conn.connect()
        return conn

    conn = login("pässword")
    try:
        assert conn.connected
        assert conn.channel().queue_declare("", exclusive=True).queue
    finally:
        conn.close()
    with pytest.raises(amqp.exceptions.AccessRefused) as refused:
        login("password")
    assert refused.value.reply_text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. "
        "For details see the broker logfile."
    )


def test_changed_permissions_apply_to_open_connections(
    broker: amqpbroker.Broker, vhost: str, users: Users
) -> None:
    name = users.add("changing", perms=(".*", ".*", ".*"))
    conn = connect(broker, vhost, name)
    try:
        conn.channel().queue_declare("mine")
        users.grant(name, "^other$", ".*", ".*")
        with pytest.raises(ChannelClosedByBroker) as err:
            conn.channel().queue_declare("mine")
        assert err.value.reply_code == 403
    finally:
        if conn.is_open:
            conn.close()


def test_revoked_write_permission_stops_an_open_publisher(
    broker: amqpbroker.Broker, vhost: str, users: Users
) -> None:
    name = users.add("publisher", perms=(".*", ".*", ".*"))
    conn = connect(broker, vhost, name)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("amq.direct", "k", b"allowed")
        users.grant(name, ".*", "^$", ".*")
        with pytest.raises(ChannelClosedByBroker) as err:
            ch.basic_publish("amq.direct", "k", b"refused")
        assert err.value.reply_text == (
            f"ACCESS_REFUSED - access to exchange 'amq.direct' in vhost '{vhost}' "
            f"refused for user '{name}'"
        )
    finally:
        if conn.is_open:
            conn.close()


def test_server_named_queue_is_checked_on_its_generated_name(
    broker: amqpbroker.Broker, vhost: str, users: Users
) -> None:
    name = users.add("gen", perms=("^amq\\.gen-", ".*", ".*"))
    conn = connect(broker, vhost, name)
    try:
        declared = conn.channel().queue_declare("", exclusive=True).method.queue
        assert declared.startswith("amq.gen-")
        users.grant(name, "^amq\\.gen-[^\\s\\S]", ".*", ".*")  # matches no name
        with pytest.raises(ChannelClosedByBroker) as err:
            conn.channel().queue_declare("", exclusive=True)
        text = err.value.reply_text
        assert text.startswith("ACCESS_REFUSED - access to queue 'amq.gen-")
        assert text.endswith(f"' in vhost '{vhost}' refused for user '{name}'")
        assert len(text.split("'")[1]) == len("amq.gen-") + 22
    finally:
        if conn.is_open:
            conn.close()


def test_deleting_a_user_keeps_its_open_connection_but_refuses_new_ones(
    broker: amqpbroker.Broker, vhost: str, users: Users
) -> None:
    name = users.add("leaving", perms=(".*", ".*", ".*"))
    conn = connect(broker, vhost, name)
    users.broker.call(users.db.delete_user, name)
    # Its permissions went with it: the next operation is refused.
    with pytest.raises(ChannelClosedByBroker) as err:
        conn.channel().queue_declare("q")
    assert err.value.reply_code == 403
    conn.close()
    with pytest.raises(ProbableAuthenticationError):
        connect(broker, vhost, name)


def test_deleting_a_vhost_drops_its_permissions(broker: amqpbroker.Broker, users: Users) -> None:
    vhost = users.vhost + "-recreated"
    name = users.add("tenant")
    broker.add_vhost(vhost)
    try:
        broker.call(users.db.set_permissions, name, vhost, ".*", ".*", ".*")
        connect(broker, vhost, name).close()
        broker.delete_vhost(vhost)
        broker.call(broker.core.add_vhost, vhost)  # type: ignore[union-attr]
        with pytest.raises(ProbableAccessDeniedError):
            connect(broker, vhost, name)
    finally:
        broker.delete_vhost(vhost)


def test_unknown_mechanism_is_not_offered(broker: amqpbroker.Broker, vhost: str) -> None:
    # EXTERNAL is offered only on TLS connections with a verified client certificate.
    creds = pika.credentials.ExternalCredentials()
    params = pika.ConnectionParameters(broker.host, broker.port, vhost, creds, heartbeat=0)
    with pytest.raises((pika.exceptions.AMQPConnectionError, ConnectionClosedByBroker)):
        pika.BlockingConnection(params)
