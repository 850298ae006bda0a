"""The same scenarios against our broker and a real RabbitMQ; outcomes must be equal.

Each scenario runs once per RabbitMQ release we can compare with, our broker in that
release's mode against a real broker of it: RabbitMQ 3.10 at
AMQPBROKER_REFERENCE_URL (default amqp://guest:guest@127.0.0.1:5673/, see
../shared/tools/start-rabbitmq.sh) and RabbitMQ 4.0 at AMQPBROKER_REFERENCE4_URL
(default amqp://guest:guest@127.0.0.1:5680/, start-rabbitmq4.sh).  A release whose
reference does not listen is skipped.  Scenarios use names of their own
(made unique per run) and clean up, since the reference vhost is shared; vhost names
and those unique parts are normalised away before comparing.
"""

from __future__ import annotations

import os
import socket
import struct
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pytest
from pamqp import commands
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, UnroutableError
from pikakit import wait_until
from rawamqp import RawClient, connect, method_frame, parse_url, raw_frame

from amqpbroker.testing.pytest_plugin import each_version

REFERENCES = {
    "3.10": os.environ.get("AMQPBROKER_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5673/"),
    "4.0": os.environ.get("AMQPBROKER_REFERENCE4_URL", "amqp://guest:guest@127.0.0.1:5680/"),
}


def _listening(url: str) -> bool:
    host, port, _ = parse_url(url)
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


LISTENING = {version: _listening(url) for version, url in REFERENCES.items()}


class Names:
    """Unique names for one scenario run: ``names('q')`` -> 'diff-<token>-q'."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex[:10]

    def __call__(self, name: str) -> str:
        return f"diff-{self.token}-{name}"


def _blocking(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url + "?heartbeat=0&socket_timeout=5"))


def observe(url: str, scenario: Callable[[str, Names], Any]) -> Any:
    """What a client sees when it runs ``scenario`` against the broker at ``url``,
    normalised: vhost names and per-run tokens replaced."""
    names = Names()
    try:
        outcome: Any = ("ok", scenario(url, names))
    except ChannelClosedByBroker as exc:
        outcome = ("channel-closed", exc.reply_code, exc.reply_text)
    except ConnectionClosedByBroker as exc:
        outcome = ("connection-closed", exc.reply_code, exc.reply_text)
    except UnroutableError as exc:
        outcome = ("returned", [m.method.reply_text for m in exc.messages])
    vhost = parse_url(url)[2]
    return _normalise(outcome, {f"'{vhost}'": "'<vhost>'", names.token: "<token>"})


def _normalise(value: Any, replacements: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, tuple | list):
        return type(value)(_normalise(v, replacements) for v in value)
    if isinstance(value, dict):
        return {k: _normalise(v, replacements) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- scenarios


def server_properties(url: str, names: Names) -> Any:
    conn = _blocking(url)
    props = conn._impl.server_properties
    conn.close()
    return sorted(props), props["product"], props["capabilities"]


def tune_offer(url: str, names: Names) -> Any:
    with RawClient.for_url(url) as client:
        start = client.start()
        tune = client.login()
        # RabbitMQ 4.0 lists its mechanisms in its registry's order, which differs
        # between nodes (AMQPLAIN PLAIN ANONYMOUS on one, AMQPLAIN ANONYMOUS PLAIN on
        # another): compared as a set.
        mechanisms = sorted(start.mechanisms.split())
        return mechanisms, start.locales, tune.channel_max, tune.frame_max, tune.heartbeat


def bad_password(url: str, names: Names) -> Any:
    with RawClient.for_url(url) as client:
        client.start()
        close = client.login(password="not-the-password")
        return close.reply_code, close.reply_text, close.class_id, close.method_id


def unknown_vhost(url: str, names: Names) -> Any:
    with RawClient.for_url(url) as client:
        client.start()
        client.login()
        client.tune_ok()
        close = client.open(names("vhost"))
        return close.reply_code, close.reply_text, close.class_id, close.method_id


def frame_max_too_large(url: str, names: Names) -> Any:
    with RawClient.for_url(url, timeout=6) as client:  # RabbitMQ waits 3 s, then closes
        client.start()
        client.login()
        client.tune_ok(frame_max=131073)
        return [type(f).__name__ for f in client.frames_until_closed()]


def channel_protocol_errors(url: str, names: Names) -> Any:
    seen = []
    for number, method in ((1, commands.Channel.Open()), (9, commands.Basic.Qos())):
        with connect(url) as client:
            if number == 1:
                client.open_channel(1)
            client.send(method, number)
            close = client.recv_method()
            seen.append((close.reply_code, close.reply_text, close.class_id, close.method_id))
    return seen


def _close_of(client: RawClient) -> Any:
    """The connection.close that ends what the client sees (ignoring earlier frames)."""
    frames = client.frames_until_closed()
    close = frames[-1] if frames else None
    if not isinstance(close, commands.Connection.Close):
        return [type(f).__name__ for f in frames]
    return close.reply_code, close.reply_text, close.class_id, close.method_id


def content_out_of_place(url: str, names: Names) -> Any:
    """Frames where the channel expects others: the 505 and the ids it names."""
    publish = commands.Basic.Publish(exchange="", routing_key=names("q"))
    header = raw_frame(2, 1, struct.pack(">HHQH", 60, 0, 2, 0))
    body = raw_frame(3, 1, b"xx")
    qos = method_frame(1, commands.Basic.Qos(prefetch_count=1))
    cases = {
        "method while a header is due": [qos],
        "method while a body is due": [header, qos],
        "body while a header is due": [body],
        "header while a body is due": [header, header],
        "channel.close while a header is due": [
            method_frame(
                1, commands.Channel.Close(reply_code=200, reply_text="x", class_id=0, method_id=0)
            )
        ],
    }
    seen = {}
    for case, frames in cases.items():
        with connect(url) as client:
            client.open_channel(1)
            client.send(publish, 1)
            client.send_bytes(b"".join(frames))
            seen[case] = _close_of(client)
    with connect(url) as client:
        client.open_channel(1)
        client.send_bytes(body)
        seen["body with no publish"] = _close_of(client)
    return seen


def update_secret(url: str, names: Names) -> Any:
    seen = {}
    for secret in ("guest", "not-the-password"):
        with connect(url) as client:
            client.send(commands.Connection.UpdateSecret(new_secret=secret, reason="rotation"))
            seen[secret] = type(client.recv_method()).__name__
            client.open_channel(1)  # the connection goes on
    with connect(url) as client:
        client.open_channel(1)
        client.send(commands.Connection.UpdateSecret(new_secret="guest", reason="r"), 1)
        seen["on a channel"] = _close_of(client)
    with connect(url) as client:
        client.send(commands.Connection.UpdateSecretOk())
        seen["unrequested ok"] = _close_of(client)
    with RawClient.for_url(url) as client:
        client.start()
        client.login()
        client.tune_ok()
        client.send(commands.Connection.UpdateSecret(new_secret="guest", reason="r"))
        seen["before open"] = _close_of(client)
    return seen


def out_of_place_before_open(url: str, names: Names) -> Any:
    """After tune-ok, before connection.open: methods and frames out of place."""
    seen = {}
    for name, method, channel in (
        ("tune-ok again", commands.Connection.TuneOk(2047, 131072, 0), 0),
        ("basic.qos on channel 0", commands.Basic.Qos(), 0),
        ("channel.open", commands.Channel.Open(), 1),
    ):
        with RawClient.for_url(url) as client:
            client.start()
            client.login()
            client.tune_ok()
            client.send(method, channel)
            seen[name] = _close_of(client)
    return seen


def bad_protocol_headers(url: str, names: Names) -> Any:
    seen = {}
    for header in (
        b"AMQP\x00\x00\x09\x02",
        b"AMQP\x00\x00\x0a\x00",
        b"AMQP\x00\x00\x08\x00",
        b"AMQP\x01\x01\x00\x0a",
        b"AMQP\x00\x01\x00\x00",
        b"GET / HT",
    ):
        with RawClient.for_url(url) as client:
            client.send_bytes(header)
            seen[repr(header)] = client.recv_bytes(8)
    return seen


def unknown_exchange_type(url: str, names: Names) -> Any:
    with connect(url) as client:
        client.open_channel(1)
        client.send(commands.Exchange.Declare(exchange=names("x"), exchange_type="nosuch"), 1)
        close = client.recv_method()
        return type(close).__name__, close.reply_code, close.reply_text


def long_reply_text(url: str, names: Names) -> Any:
    """A reply text over 255 bytes (a 404 naming a long queue name) is cut."""
    with connect(url) as client:
        client.open_channel(1)
        client.send(commands.Queue.Declare(queue="q" * 250, passive=True), 1)
        close = client.recv_method()
        return close.reply_code, close.reply_text


def header_order(url: str, names: Names) -> Any:
    """The key order of a delivered headers table (and of a nested one)."""
    conn = _blocking(url)
    try:
        ch = conn.channel()
        queue = ch.queue_declare(names("q"), exclusive=True).method.queue
        headers = {"zeta": 1, "Mid": "m", "x-b": 2, "alpha": {"z": 1, "a": 2}, "b": None}
        ch.basic_publish("", queue, b"m", pika.BasicProperties(headers=headers))
        wait_until(conn, lambda: ch.queue_declare(queue, passive=True).method.message_count == 1)
        _method, properties, _body = ch.basic_get(queue, auto_ack=True)
        return list(properties.headers), list(properties.headers["alpha"])
    finally:
        conn.close()


def flow_inactive(url: str, names: Names) -> Any:
    conn = _blocking(url)
    try:
        return conn.channel().flow(True), conn.channel().flow(False)
    finally:
        if conn.is_open:
            conn.close()


def exchange_redeclare_mismatch(url: str, names: Names) -> Any:
    conn = _blocking(url)
    try:
        conn.channel().exchange_declare(names("x"), "direct", auto_delete=True)
        try:
            conn.channel().exchange_declare(names("x"), "topic", auto_delete=True)
        finally:
            conn.channel().exchange_delete(names("x"))
    finally:
        conn.close()


def exchange_deletes(url: str, names: Names) -> Any:
    conn = _blocking(url)
    try:
        ch = conn.channel()
        missing = ch.exchange_delete(names("missing")).method.NAME
        ch.exchange_delete("amq.fanout")
        return missing
    finally:
        if conn.is_open:
            conn.close()


def queue_argument_mismatch(url: str, names: Names) -> Any:
    conn = _blocking(url)
    texts = []
    try:
        conn.channel().queue_declare(names("q"), arguments={"x-message-ttl": 2000})
        for arguments in ({"x-message-ttl": 3000}, {}, {"x-message-ttl": 2000, "x-expires": 9000}):
            try:
                conn.channel().queue_declare(names("q"), arguments=arguments)
            except ChannelClosedByBroker as exc:
                texts.append(exc.reply_text)
        return texts
    finally:
        conn.channel().queue_delete(names("q"))
        conn.close()


def exclusive_queue_elsewhere(url: str, names: Names) -> Any:
    owner, intruder = _blocking(url), _blocking(url)
    try:
        owner.channel().queue_declare(names("mine"), exclusive=True)
        intruder.channel().queue_purge(names("mine"))
    finally:
        owner.close()
        intruder.close()


def missing_things_that_succeed(url: str, names: Names) -> Any:
    conn = _blocking(url)
    try:
        ch = conn.channel()
        return (
            ch.queue_delete(names("missing")).method.message_count,
            ch.queue_unbind(names("missing"), "amq.direct", "k").method.NAME,
            ch.exchange_unbind(names("missing"), "amq.direct", "k").method.NAME,
        )
    finally:
        conn.close()


def empty_queue_name(url: str, names: Names) -> Any:
    conn = _blocking(url)
    try:
        conn.channel().queue_purge("")
    finally:
        if conn.is_open:
            conn.close()


def topic_and_alternate_routing(url: str, names: Names) -> Any:
    conn = _blocking(url)
    ch = conn.channel()
    ch.confirm_delivery()
    try:
        ch.exchange_declare(names("ae"), "fanout", auto_delete=True)
        ch.exchange_declare(
            names("t"), "topic", auto_delete=True, arguments={"alternate-exchange": names("ae")}
        )
        patterns = ("*.a", "#.b", "c.#", "*")
        queues = {}
        for pattern in patterns:
            queues[pattern] = ch.queue_declare("", exclusive=True).method.queue
            ch.queue_bind(queues[pattern], names("t"), pattern)
        fallback = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(fallback, names("ae"))
        for key in ("x.a", "b", "x.y.b", "c", "c.a", "", "zzz.zzz"):
            ch.basic_publish(names("t"), key, key.encode() or b"<empty>", mandatory=True)
        got = {}
        for label, queue in [*queues.items(), ("ae", fallback)]:
            got[label] = []
            while True:
                method, _p, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                got[label].append(body.decode())
        return got
    finally:
        if conn.is_open:
            conn.close()


def cancel_on_queue_delete(url: str, names: Names) -> Any:
    conn, other = _blocking(url), _blocking(url)
    try:
        ch = conn.channel()
        ch.queue_declare(names("q"))
        cancelled: list[Any] = []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        tag = ch.basic_consume(names("q"), lambda *_a: None)
        other.channel().queue_delete(names("q"))
        wait_until(conn, lambda: bool(cancelled))
        return cancelled == [tag], ch.is_open
    finally:
        conn.close()
        other.close()


SCENARIOS = [
    server_properties,
    tune_offer,
    bad_protocol_headers,
    content_out_of_place,
    update_secret,
    out_of_place_before_open,
    unknown_exchange_type,
    header_order,
    long_reply_text,
    bad_password,
    unknown_vhost,
    frame_max_too_large,
    channel_protocol_errors,
    flow_inactive,
    exchange_redeclare_mismatch,
    exchange_deletes,
    queue_argument_mismatch,
    exclusive_queue_elsewhere,
    missing_things_that_succeed,
    empty_queue_name,
    topic_and_alternate_routing,
    cancel_on_queue_delete,
]


@each_version(*REFERENCES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_same_outcome_as_rabbitmq(
    url: str, scenario: Callable[[str, Names], Any], rabbitmq_version: str
) -> None:
    reference = REFERENCES[rabbitmq_version]
    if not LISTENING[rabbitmq_version]:
        pytest.skip(f"no RabbitMQ {rabbitmq_version} reference broker at {reference}")
    expected = observe(reference, scenario)
    assert observe(url, scenario) == expected
