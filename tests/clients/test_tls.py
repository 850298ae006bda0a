"""amqps: pika and aio-pika over TLS (certificates from trustme), EXTERNAL logins with a
client certificate, and the broker surviving bad TLS clients."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pika
import pytest
import trustme
from pika.exceptions import ProbableAuthenticationError

import amqpbroker
from amqpbroker.server import tls

CLIENT_USER = "tls-client"


class Pki:
    """A CA, the broker's certificate for 127.0.0.1, and client certificates."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca = trustme.CA()
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.server_cert = tmp / "server.pem"
        self.server_key = tmp / "server.key"
        server.cert_chain_pems[0].write_to_path(str(self.server_cert))
        for extra in server.cert_chain_pems[1:]:
            extra.write_to_path(str(self.server_cert), append=True)
        server.private_key_pem.write_to_path(str(self.server_key))
        self.ca_file = tmp / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def client_context(self, common_name: str | None = None, ca: Any = None) -> ssl.SSLContext:
        """A client context trusting our CA, with a certificate for ``common_name``
        (issued by ``ca``, our CA by default) if given."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if common_name is not None:
            issued = (ca or self.ca).issue_cert(f"{common_name}.example", common_name=common_name)
            issued.configure_cert(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki: Pki) -> Iterator[amqpbroker.Broker]:
    with amqpbroker.Broker(
        tls_port=0,
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_ca=str(pki.ca_file),
    ) as broker:
        assert broker.core is not None
        # A certificate-only user: no password, so PLAIN can never log it in.
        broker.call(broker.core.users.add_user, CLIENT_USER, None)
        broker.call(broker.core.users.set_permissions, CLIENT_USER, "/", ".*", ".*", ".*")
        yield broker


def params(
    broker: amqpbroker.Broker, context: ssl.SSLContext, credentials: Any = None
) -> pika.ConnectionParameters:
    assert broker.tls_port is not None
    return pika.ConnectionParameters(
        "127.0.0.1",
        broker.tls_port,
        "/",
        credentials or pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(context, "127.0.0.1"),
        heartbeat=0,
        socket_timeout=5,
    )


def roundtrip(conn: pika.BlockingConnection, user_id: str | None = None) -> bytes:
    ch = conn.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"over tls", pika.BasicProperties(user_id=user_id))
    _method, _props, body = ch.basic_get(queue, auto_ack=True)
    return bytes(body)


def test_pika_plain_login_over_tls(tls_broker: amqpbroker.Broker, pki: Pki) -> None:
    conn = pika.BlockingConnection(params(tls_broker, pki.client_context()))
    assert roundtrip(conn) == b"over tls"
    conn.close()


def test_aio_pika_over_tls(tls_broker: amqpbroker.Broker, pki: Pki) -> None:
    async def scenario() -> bytes:
        url = f"amqps://guest:guest@127.0.0.1:{tls_broker.tls_port}/"
        connection = await aio_pika.connect(url, ssl_context=pki.client_context(), timeout=5)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("", exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"aio tls"), queue.name)
            message = await queue.get(timeout=5)
            await message.ack()
            return message.body

    assert asyncio.run(scenario()) == b"aio tls"


def test_external_login_with_a_client_certificate(tls_broker: amqpbroker.Broker, pki: Pki) -> None:
    context = pki.client_context(CLIENT_USER)
    conn = pika.BlockingConnection(
        params(tls_broker, context, pika.credentials.ExternalCredentials())
    )
    # The broker knows the connection as the certificate's user: user_id must match it.
    assert roundtrip(conn, user_id=CLIENT_USER) == b"over tls"
    conn.close()


def test_external_with_an_unknown_certificate_user_is_refused(
    tls_broker: amqpbroker.Broker, pki: Pki
) -> None:
    context = pki.client_context("nobody-we-know")
    with pytest.raises(ProbableAuthenticationError) as err:
        pika.BlockingConnection(params(tls_broker, context, pika.credentials.ExternalCredentials()))
    assert "Login was refused using authentication mechanism EXTERNAL" in str(err.value)


def test_external_is_not_offered_without_a_client_certificate(
    tls_broker: amqpbroker.Broker, pki: Pki
) -> None:
    # pika refuses locally when the server does not offer EXTERNAL.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(
            params(tls_broker, pki.client_context(), pika.credentials.ExternalCredentials())
        )


def test_a_certificate_from_another_ca_fails_the_handshake(
    tls_broker: amqpbroker.Broker, pki: Pki
) -> None:
    context = pki.client_context(CLIENT_USER, ca=trustme.CA())
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(params(tls_broker, context, pika.credentials.ExternalCredentials()))
    # ... and the broker goes on serving.
    pika.BlockingConnection(params(tls_broker, pki.client_context())).close()


def test_plain_amqp_on_the_tls_port_costs_only_that_connection(
    tls_broker: amqpbroker.Broker, pki: Pki
) -> None:
    assert tls_broker.tls_port is not None
    with socket.create_connection(("127.0.0.1", tls_broker.tls_port), timeout=5) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        # Not a TLS record: the handshake fails and the broker closes the connection
        # (what it sends first is a TLS alert); the 5 s timeout fails the test otherwise.
        while sock.recv(1024):
            pass
    pika.BlockingConnection(params(tls_broker, pki.client_context())).close()


def test_a_silent_tls_client_is_dropped_after_the_handshake_timeout(
    tls_broker: amqpbroker.Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "HANDSHAKE_TIMEOUT", 0.2)
    assert tls_broker.tls_port is not None
    with socket.create_connection(("127.0.0.1", tls_broker.tls_port), timeout=5) as sock:
        assert sock.recv(1) == b""  # closed by the broker, well before our 5 s timeout


def test_required_client_certificates(pki: Pki) -> None:
    with amqpbroker.Broker(
        tls_port=0,
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_ca=str(pki.ca_file),
        tls_require_client_cert=True,
    ) as broker:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(params(broker, pki.client_context()))
        # With a certificate, PLAIN still works (the certificate is not the login).
        conn = pika.BlockingConnection(params(broker, pki.client_context("someone")))
        conn.close()


# -------------------------------------------------------------- certificate names

SUBJECT = (
    (("countryName", "GB"),),
    (("organizationName", "Example, Inc."),),
    (("organizationalUnitName", "ops"), ("userId", "42")),
    (("commonName", " client #1"),),
)


def test_certificate_user_from_common_name_or_distinguished_name() -> None:
    cert = {"subject": SUBJECT}
    assert tls.certificate_user(cert) == " client #1"
    assert tls.certificate_user(cert, "distinguished_name") == (
        "CN=\\ client #1,OU=ops+UID=42,O=Example\\, Inc.,C=GB"
    )
    assert tls.certificate_user({}) is None
    assert tls.certificate_user(None) is None
    assert tls.certificate_user({"subject": ((("organizationName", "x"),),)}) is None
