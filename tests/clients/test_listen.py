"""Where the broker listens: ``localhost`` is both loopbacks (clients that resolve it to
::1 first, as Node does, connect too), and ``--host`` may be given more than once."""

from __future__ import annotations

import socket

import pika
import pytest

import amqpbroker
from amqpbroker.cli import build_parser, settings_from_args


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


def _round_trip(host: str, port: int) -> None:
    params = pika.ConnectionParameters(host, port, socket_timeout=5, blocked_connection_timeout=5)
    with pika.BlockingConnection(params) as conn:
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", queue, b"hello")
        conn.process_data_events(0)
        for _ in range(100):
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is not None:
                assert body == b"hello"
                return
            conn.sleep(0.01)
        raise AssertionError("message never arrived")


@needs_ipv6
def test_localhost_listens_on_both_loopbacks() -> None:
    with amqpbroker.Broker(host="localhost") as broker:
        assert broker.url.startswith("amqp://guest:guest@localhost:")
        _round_trip("127.0.0.1", broker.port)
        _round_trip("::1", broker.port)


@needs_ipv6
def test_more_hosts_share_the_port() -> None:
    with amqpbroker.Broker(host="127.0.0.1", more_hosts=("::1",)) as broker:
        _round_trip("::1", broker.port)
        _round_trip("127.0.0.1", broker.port)


def test_host_may_be_given_more_than_once() -> None:
    parser = build_parser()
    settings = settings_from_args(parser.parse_args(["--host", "localhost", "--host", "::1"]))
    assert (settings.host, settings.more_hosts) == ("localhost", ("::1",))
    default = settings_from_args(parser.parse_args([]))
    assert (default.host, default.more_hosts) == ("127.0.0.1", ())
