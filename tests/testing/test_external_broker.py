"""ExternalBroker's URLs and the relay's frame scanner (no network needed)."""

from __future__ import annotations

import struct

import pytest
from pamqp import commands, frame

from amqpbroker.testing.cleanup import Declarations, FrameScanner
from amqpbroker.testing.external import ExternalBroker, mask_password


def test_urls_keep_credentials_and_query() -> None:
    broker = ExternalBroker("amqp://user:p%40ss@rabbit:5673/prod?heartbeat=5")
    assert (broker.host, broker.port, broker.user, broker.password) == (
        "rabbit",
        5673,
        "user",
        "p@ss",
    )
    assert broker.vhost == "prod"
    assert broker.url_for("a/b") == "amqp://user:p%40ss@rabbit:5673/a%2Fb?heartbeat=5"
    assert broker.url_via("127.0.0.1", 9) == "amqp://user:p%40ss@127.0.0.1:9/prod?heartbeat=5"
    assert broker.isolation == "cleanup"


def test_defaults() -> None:
    broker = ExternalBroker("amqp://rabbit")
    assert (broker.port, broker.user, broker.vhost) == (5672, "guest", "/")
    assert broker.url == "amqp://rabbit/%2F"
    tls = ExternalBroker("amqps://rabbit/")
    assert (tls.port, tls.isolation) == (5671, "none")
    managed = ExternalBroker("amqps://rabbit/", "http://rabbit:15672/")
    assert managed.isolation == "vhost" and managed.isolated


def test_rejects_other_schemes_and_masks_passwords() -> None:
    with pytest.raises(ValueError, match=r"http://u:\*\*\*@h/"):
        ExternalBroker("http://u:secret@h/")
    assert mask_password("amqp://u:secret@h:1/v") == "amqp://u:***@h:1/v"
    assert mask_password("amqp://h/") == "amqp://h/"


def test_vhosts_need_the_management_api() -> None:
    with pytest.raises(RuntimeError, match="--amqp-management-url"):
        ExternalBroker("amqp://rabbit/").add_vhost("x")


def _stream() -> bytes:
    body = b"\x01\x00\x01" * 100
    return b"".join(
        [
            b"AMQP\x00\x00\x09\x01",
            frame.marshal(commands.Queue.Declare(queue="passive-q", passive=True), 1),
            frame.marshal(commands.Queue.Declare(queue="q1", durable=True), 1),
            frame.marshal(commands.Basic.Publish(exchange="", routing_key="q1"), 1),
            # A content header and a body made of bytes that look like frame headers.
            struct.pack(">BHIHHQH", 2, 1, 14, 60, 0, len(body), 0) + b"\xce",
            struct.pack(">BHI", 3, 1, len(body)) + body + b"\xce",
            frame.marshal(commands.Exchange.Declare(exchange="ex", exchange_type="topic"), 1),
            frame.marshal(commands.Exchange.Declare(exchange="p-ex", passive=True), 1),
        ]
    )


@pytest.mark.parametrize("chunk", [1, 2, 7, 13, 64, 100_000])
def test_frame_scanner_finds_declarations_across_chunks(chunk: int) -> None:
    found = Declarations()
    scanner = FrameScanner(found.client_method, skip=8)
    data = _stream()
    for start in range(0, len(data), chunk):
        scanner.feed(data[start : start + chunk])
    assert found.snapshot() == (["q1"], ["ex"])


def test_server_named_queues_come_from_declare_ok() -> None:
    found = Declarations()
    scanner = FrameScanner(found.server_method)
    scanner.feed(frame.marshal(commands.Queue.DeclareOk("amq.gen-abc", 0, 0), 1))
    scanner.feed(frame.marshal(commands.Queue.DeclareOk("named-by-client", 0, 0), 1))
    assert found.snapshot() == (["amq.gen-abc"], [])
