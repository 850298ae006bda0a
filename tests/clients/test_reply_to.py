"""Direct reply-to (amq.rabbitmq.reply-to) through pika and aio-pika, with RabbitMQ
3.10's error texts (seen on a real broker first)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aio_pika
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker
from pikakit import Inbox, new_queue, wait_until

from amqpbroker.testing.pytest_plugin import each_version

pytestmark = pytest.mark.timeout(60)

REPLY_TO = "amq.rabbitmq.reply-to"


@pytest.fixture
def ch(conn: BlockingConnection) -> BlockingChannel:
    return conn.channel()


def channel_error(conn: BlockingConnection, action: Any) -> tuple[int, str]:
    channel = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        action(channel)
        channel.queue_declare("", exclusive=True)  # a round trip, to see the error
    return info.value.reply_code, info.value.reply_text


def test_rpc_round_trip(conn: BlockingConnection, ch: BlockingChannel) -> None:
    server = new_queue(ch)
    replies = Inbox()
    ch.basic_consume(REPLY_TO, replies, auto_ack=True)
    ch.basic_publish(
        "", server, b"request", pika.BasicProperties(reply_to=REPLY_TO, correlation_id="c1")
    )
    responder = conn.channel()
    method, request, body = responder.basic_get(server, auto_ack=True)
    assert body == b"request"
    assert re.fullmatch(re.escape(REPLY_TO) + r"\.\S+", request.reply_to)
    assert request.correlation_id == "c1"
    responder.basic_publish(
        "", request.reply_to, b"response", pika.BasicProperties(correlation_id="c1")
    )
    wait_until(conn, lambda: len(replies) == 1)
    [(method, properties, body)] = replies.deliveries
    assert (method.exchange, method.routing_key, method.redelivered, body) == (
        "",
        request.reply_to,
        False,
        b"response",
    )
    assert properties.correlation_id == "c1"


def test_the_reply_consumer_cannot_acknowledge(conn: BlockingConnection) -> None:
    assert channel_error(conn, lambda c: c.basic_consume(REPLY_TO, Inbox())) == (
        406,
        "PRECONDITION_FAILED - reply consumer cannot acknowledge",
    )


def test_one_reply_consumer_per_channel(conn: BlockingConnection, ch: BlockingChannel) -> None:
    ch.basic_consume(REPLY_TO, Inbox(), auto_ack=True)
    assert channel_error(
        conn,
        lambda c: (
            c.basic_consume(REPLY_TO, Inbox(), auto_ack=True),
            c.basic_consume(REPLY_TO, Inbox(), auto_ack=True),
        ),
    ) == (406, "PRECONDITION_FAILED - reply consumer already set")


def test_a_request_needs_a_reply_consumer_on_its_channel(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    server = new_queue(ch)
    ch.basic_consume(REPLY_TO, Inbox(), auto_ack=True)  # on another channel: no help
    assert channel_error(
        conn, lambda c: c.basic_publish("", server, b"x", pika.BasicProperties(reply_to=REPLY_TO))
    ) == (406, "PRECONDITION_FAILED - fast reply consumer does not exist")
    assert ch.queue_declare(server, passive=True).method.message_count == 0


def test_only_the_exact_name_is_rewritten(ch: BlockingChannel) -> None:
    server = new_queue(ch)
    ch.basic_consume(REPLY_TO, Inbox(), auto_ack=True)
    ch.basic_publish("", server, b"x", pika.BasicProperties(reply_to=REPLY_TO + ".foo"))
    _m, properties, _b = ch.basic_get(server, auto_ack=True)
    assert properties.reply_to == REPLY_TO + ".foo"


def test_replies_to_a_gone_consumer_are_unroutable(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    server = new_queue(ch)
    tag = ch.basic_consume(REPLY_TO, Inbox(), auto_ack=True)
    ch.basic_publish("", server, b"x", pika.BasicProperties(reply_to=REPLY_TO))
    name = ch.basic_get(server, auto_ack=True)[1].reply_to
    ch.basic_cancel(tag)
    returned: list[Any] = []
    responder = conn.channel()
    responder.add_on_return_callback(lambda _c, method, _p, _b: returned.append(method))
    responder.basic_publish("", name, b"late")
    responder.basic_publish("", name, b"late", mandatory=True)
    wait_until(conn, lambda: len(returned) == 1)
    assert (returned[0].reply_code, returned[0].reply_text) == (312, "NO_ROUTE")
    assert responder.is_open
    assert channel_error(
        conn, lambda c: c.basic_publish("", server, b"x", pika.BasicProperties(reply_to=REPLY_TO))
    ) == (406, "PRECONDITION_FAILED - fast reply consumer does not exist")


@each_version("4.0", "4.2")
def test_mandatory_replies_to_a_gone_consumer_by_version(
    conn: BlockingConnection, ch: BlockingChannel, rabbitmq_version: str
) -> None:
    # 4.2 treats amq.rabbitmq.reply-to.* as a queue that exists: routed, no return
    # (its release notes); before, a gone consumer's name is unroutable.
    server = new_queue(ch)
    tag = ch.basic_consume(REPLY_TO, Inbox(), auto_ack=True)
    ch.basic_publish("", server, b"x", pika.BasicProperties(reply_to=REPLY_TO))
    name = ch.basic_get(server, auto_ack=True)[1].reply_to
    ch.basic_cancel(tag)
    responder = conn.channel()
    responder.confirm_delivery()  # a mandatory publish then fails when returned
    if rabbitmq_version == "4.0":
        with pytest.raises(pika.exceptions.UnroutableError):
            responder.basic_publish("", name, b"late", mandatory=True)
    else:
        responder.basic_publish("", name, b"late", mandatory=True)
    # Any other unroutable key is still returned.
    with pytest.raises(pika.exceptions.UnroutableError):
        responder.basic_publish("", "no-such-queue", b"late", mandatory=True)


def test_declaring_the_pseudo_queue(
    conn: BlockingConnection, ch: BlockingChannel, vhost: str
) -> None:
    for passive in (True, False):
        ok = conn.channel().queue_declare(REPLY_TO, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)
    server = new_queue(ch)
    ch.basic_consume(REPLY_TO, Inbox(), auto_ack=True)
    ch.basic_publish("", server, b"x", pika.BasicProperties(reply_to=REPLY_TO))
    name = ch.basic_get(server, auto_ack=True)[1].reply_to
    ok = conn.channel().queue_declare(name, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 1)
    dead = REPLY_TO + ".g1h2AA"
    assert channel_error(conn, lambda c: c.queue_declare(dead, passive=True)) == (
        404,
        f"NOT_FOUND - no queue '{dead}' in vhost '{vhost}'",
    )


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.queue_bind(REPLY_TO, "amq.direct", "k"),
        lambda c: c.basic_get(REPLY_TO),
    ],
    ids=["bind", "get"],
)
def test_the_pseudo_queue_is_not_a_queue(conn: BlockingConnection, vhost: str, action: Any) -> None:
    assert channel_error(conn, action) == (
        404,
        f"NOT_FOUND - no queue '{REPLY_TO}' in vhost '{vhost}'",
    )


def test_aio_pika_rpc_with_direct_reply_to(url: str, ch: BlockingChannel) -> None:
    server = new_queue(ch)

    async def run() -> tuple[bytes, str]:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
            reply_queue = await channel.get_queue(REPLY_TO, ensure=False)
            await reply_queue.consume(replies.put, no_ack=True)
            await channel.default_exchange.publish(
                aio_pika.Message(b"ping", reply_to=REPLY_TO, correlation_id="42"),
                routing_key=server,
            )
            requests = await channel.get_queue(server)
            request = await requests.get(timeout=5)
            await request.ack()
            assert request.reply_to is not None
            await channel.default_exchange.publish(
                aio_pika.Message(b"pong", correlation_id=request.correlation_id),
                routing_key=request.reply_to,
            )
            reply = await asyncio.wait_for(replies.get(), 5)
            return reply.body, str(reply.correlation_id)

    assert asyncio.run(run()) == (b"pong", "42")
