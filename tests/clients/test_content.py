"""Message content through pika: bodies of every awkward size, every basic property,
and header tables of every type pika can encode, all coming out as they went in.

The expected values were checked against what the same pika receives from RabbitMQ
3.10.8 (for instance: timestamps in headers come back as aware UTC datetimes, and
RabbitMQ refuses a user_id that is not the login user).
"""

from __future__ import annotations

import datetime
import random
from decimal import Decimal
from typing import Any

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pikakit import Inbox, new_queue, wait_until
from wirekit import record_wire, sent_wire, wire

from amqpbroker.testing.pytest_plugin import each_version

pytestmark = pytest.mark.timeout(60)

FRAME_MAX = 131072  # what the broker offers and pika accepts
SMALL_FRAME_MAX = 4096  # the smallest a peer may ask for
FRAME_OVERHEAD = 8  # type, channel, size and frame-end octets around a body frame

PROPERTIES = {
    "content_type": "application/json",
    "content_encoding": "gzip",
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-\u00e9-1",
    "reply_to": "reply.queue",
    "expiration": "60000",
    "message_id": "msg-1",
    "timestamp": 1700000000,
    "type": "order.created",
    "user_id": "guest",  # must be the login user
    "app_id": "amqpbroker-tests",
    "cluster_id": "cluster-1",
}

# Every field-table type pika can encode (pika has no floats), nested.
HEADERS: dict[str, Any] = {
    "str": "hello",
    "empty_str": "",
    "unicode": "h\u00e9llo \u2603 \U0001f600",
    "int_zero": 0,
    "int_small": 1,
    "int_negative": -5,
    "int_16": 40000,
    "int_32_max": 2**31 - 1,
    "int_32_min": -(2**31),
    "int_64": 2**40,
    "int_64_min": -(2**63),
    "int_64_max": 2**63 - 1,
    "true": True,
    "false": False,
    "decimal": Decimal("3.14"),
    "decimal_negative": Decimal("-12.345"),
    "bytes": b"\x00\x01\xfe\xff",
    "none": None,
    "timestamp": datetime.datetime(2024, 5, 17, 12, 34, 56),
    "array": [1, "two", True, None, Decimal("1.5"), b"\x00", [4, [5]], {"k": "v"}],
    "empty_array": [],
    "empty_table": {},
    "nested": {"a": {"b": {"c": [1, 2, {"d": "deep"}]}}, "n": 7},
}


def as_received(value: Any) -> Any:
    """What pika gives back for a header value it sent: timestamps become aware UTC."""
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=datetime.UTC)
    if isinstance(value, dict):
        return {k: as_received(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_received(v) for v in value]
    return value


def body_of(size: int) -> bytes:
    return random.Random(size).randbytes(size)


# -------------------------------------------------------------------- bodies

BODY_SIZES = [
    0,
    1,
    FRAME_MAX - FRAME_OVERHEAD,  # exactly one full body frame
    FRAME_MAX - FRAME_OVERHEAD + 1,  # one byte into a second frame
    2 * (FRAME_MAX - FRAME_OVERHEAD),
    1 << 20,
    16 << 20,
]


@pytest.mark.parametrize("size", BODY_SIZES)
def test_body_comes_out_byte_identical(
    connection: BlockingConnection, channel: BlockingChannel, size: int
) -> None:
    assert connection._impl.params.frame_max == FRAME_MAX  # negotiated as expected
    queue = new_queue(channel)
    body = body_of(size)
    channel.basic_publish("", queue, body)
    method, _props, got = channel.basic_get(queue, auto_ack=True)
    assert method is not None
    assert len(got) == size
    assert got == body


@pytest.mark.parametrize(
    "size",
    [
        SMALL_FRAME_MAX - FRAME_OVERHEAD,
        SMALL_FRAME_MAX - FRAME_OVERHEAD + 1,
        1 << 20,  # 257 body frames each way
    ],
)
def test_body_split_into_small_frames(url: str, size: int) -> None:
    conn = pika.BlockingConnection(
        pika.URLParameters(url + f"?heartbeat=0&frame_max={SMALL_FRAME_MAX}")
    )
    try:
        assert conn._impl.params.frame_max == SMALL_FRAME_MAX
        ch = conn.channel()
        queue = new_queue(ch)
        body = body_of(size)
        ch.basic_publish("", queue, body)
        inbox = Inbox()
        ch.basic_consume(queue, inbox, auto_ack=True)
        wait_until(conn, lambda: len(inbox) == 1)
        assert inbox.bodies == [body]
    finally:
        conn.close()


def test_bodies_stay_separate_when_pipelined(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    bodies = [body_of(n) for n in (0, 5, FRAME_MAX, 0, 3 * FRAME_MAX + 17, 1)]
    for body in bodies:
        channel.basic_publish("", queue, body)
    inbox = Inbox()
    channel.basic_consume(queue, inbox, auto_ack=True)
    wait_until(connection, lambda: len(inbox) == len(bodies))
    assert inbox.bodies == bodies


# ---------------------------------------------------------------- properties


def test_every_basic_property_comes_out_as_sent(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"body", pika.BasicProperties(headers=HEADERS, **PROPERTIES))
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    wait_until(connection, lambda: len(inbox) == 1)
    _method, props, body = inbox.deliveries[0]
    assert body == b"body"
    assert {name: getattr(props, name) for name in PROPERTIES} == PROPERTIES
    assert props.headers == as_received(HEADERS)


@each_version("3.10", "4.0")
def test_headers_table_order_follows_the_version(
    connection: BlockingConnection,
    channel: BlockingChannel,
    monkeypatch: pytest.MonkeyPatch,
    rabbitmq_version: str,
) -> None:
    # RabbitMQ 3.10.8 forwards the publisher's table; 4.0.5 sorts its keys bytewise
    # (nested tables keep their order), entries and types unchanged.
    record_wire(monkeypatch)
    headers = {"zeta": 1, "Mid": "m", **HEADERS, "alpha": {"z": 1, "a": [2, {"y": 3, "b": 4}]}}
    sent = pika.BasicProperties(headers=headers, content_type="text/plain", priority=2)
    expected = sent_wire(sent)
    if rabbitmq_version != "3.10":
        expected = sorted(expected, key=lambda item: item[0].encode())
    queue = new_queue(channel)
    # Pipelined with the same header (the reader's repeats), one of them over a frame.
    bodies = [b"one", body_of(FRAME_MAX * 2), b"three"]
    for body in bodies:
        channel.basic_publish("", queue, body, sent)
    inbox = Inbox()
    channel.basic_consume(queue, inbox)
    wait_until(connection, lambda: len(inbox) == 3)
    assert inbox.bodies == bodies
    for _method, properties, _body in inbox.deliveries:
        assert wire(properties) == expected
        assert (properties.content_type, properties.priority) == ("text/plain", 2)
    # basic.get shows the same order.
    other = new_queue(channel)
    channel.basic_publish("", other, b"got", sent)
    method, properties, _body = channel.basic_get(other, auto_ack=True)
    assert method is not None and wire(properties) == expected


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_each_property_alone(channel: BlockingChannel, name: str) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"", pika.BasicProperties(**{name: PROPERTIES[name]}))
    _method, props, _body = channel.basic_get(queue, auto_ack=True)
    received = {k: v for k, v in vars(props).items() if v is not None}
    assert received == {name: PROPERTIES[name]}


def test_message_without_properties_has_none(channel: BlockingChannel) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"")
    _method, props, body = channel.basic_get(queue, auto_ack=True)
    assert body == b""
    assert {k: v for k, v in vars(props).items() if v is not None} == {}


@pytest.mark.parametrize("key", sorted(HEADERS))
def test_each_header_type_alone(channel: BlockingChannel, key: str) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"", pika.BasicProperties(headers={key: HEADERS[key]}))
    _method, props, _body = channel.basic_get(queue, auto_ack=True)
    assert props.headers == {key: as_received(HEADERS[key])}


def test_empty_headers_table(channel: BlockingChannel) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"", pika.BasicProperties(headers={}))
    _method, props, _body = channel.basic_get(queue, auto_ack=True)
    assert props.headers == {}


def test_user_id_must_be_the_login_user(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"x", pika.BasicProperties(user_id="bob"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(queue, passive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'"
    )
    assert connection.is_open
    assert connection.channel().queue_declare(queue, passive=True).method.message_count == 0


def test_properties_are_checked_on_every_publish_not_only_the_first(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    # The broker skips re-checking property bytes equal to the last ones that passed
    # on the connection; anything different must still be checked.
    queue = new_queue(channel)
    for _ in range(3):
        channel.basic_publish("", queue, b"x", pika.BasicProperties(user_id="guest"))
    channel.basic_publish("", queue, b"x", pika.BasicProperties(user_id="bob"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(queue, passive=True)
    assert info.value.reply_code == 406
    assert "user_id property set to 'bob'" in info.value.reply_text
    other = connection.channel()
    assert other.queue_declare(queue, passive=True).method.message_count == 3
    other.basic_publish("", queue, b"x", pika.BasicProperties(expiration="1000"))
    other.basic_publish("", queue, b"x", pika.BasicProperties(expiration="abc"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        other.queue_declare(queue, passive=True)
    assert info.value.reply_code == 406


def test_user_id_is_checked_in_transactions_too(
    connection: BlockingConnection, channel: BlockingChannel
) -> None:
    queue = new_queue(channel)
    channel.tx_select()
    channel.basic_publish("", queue, b"x", pika.BasicProperties(user_id="bob"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.tx_commit()
    assert info.value.reply_code == 406
    assert "user_id property set to 'bob'" in info.value.reply_text


# Texts as RabbitMQ 3.10.8 words them (Erlang's string:to_integer error terms,
# printed with ~p, which wraps a term that does not fit in 80 columns).
INVALID_EXPIRATIONS = [
    ("abc", "no_integer"),
    ("", "no_integer"),
    (" 5", "no_integer"),
    ("-", "no_integer"),
    ("\u00e9", "no_integer"),
    ("-1", "{value_negative,-1}"),
    ("1.5", '{leftover_string,".5"}'),
    ("5 ", '{leftover_string," "}'),
    ("1e3", '{leftover_string,"e3"}'),
    ("5\u00e9", '{leftover_string,"\u00e9"}'),
    ('5"\\\n', '{leftover_string,"\\"\\\\\\n"}'),
    ("5\x01", "{leftover_string,[1]}"),
    ("315360000001", "{value_too_large,315360000001}"),
    ("99999999999999999999", "{value_too_large,\n" + " " * 44 + "99999999999999999999}"),
]


@pytest.mark.parametrize(("expiration", "reason"), INVALID_EXPIRATIONS)
def test_invalid_expiration_is_406(
    connection: BlockingConnection, channel: BlockingChannel, expiration: str, reason: str
) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"x", pika.BasicProperties(expiration=expiration))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(queue, passive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"
    )
    assert connection.channel().queue_declare(queue, passive=True).method.message_count == 0


@pytest.mark.parametrize("expiration", ["+60000", "-0", "0060000", "315360000000", "60000"])
def test_valid_expiration_is_accepted_as_sent(channel: BlockingChannel, expiration: str) -> None:
    queue = new_queue(channel)
    channel.basic_publish("", queue, b"x", pika.BasicProperties(expiration=expiration))
    channel.queue_declare(queue, passive=True)  # the channel is still open
    if expiration != "-0":  # a zero TTL may expire it at once
        _method, props, _body = channel.basic_get(queue, auto_ack=True)
        assert props.expiration == expiration
