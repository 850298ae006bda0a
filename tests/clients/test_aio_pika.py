"""aio-pika (over aiormq / pamqp) against the broker: the asyncio client most services use.

Each test runs its own event loop with a hard deadline.  The expectations were
first checked against RabbitMQ 3.10.8 with the same client.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aio_pika
import aiormq
import pamqp.commands
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.patterns import RPC

from amqpbroker.testing import eventually_async

pytestmark = pytest.mark.timeout(30)

# Deadline for a whole test body, and for any single wait inside it.
TEST_DEADLINE = 20.0
WAIT = 5.0


def run(url: str, body: Callable[[AbstractRobustConnection], Awaitable[None]]) -> None:
    """Open a robust connection, run ``body`` with it, close it; bounded in time."""

    async def main() -> None:
        connection = await aio_pika.connect_robust(url, reconnect_interval=0.1)
        async with connection:
            await body(connection)

    asyncio.run(asyncio.wait_for(main(), TEST_DEADLINE))


async def ready_count(queue: aio_pika.abc.AbstractQueue) -> int:
    """Declare the queue again and read the ready count from declare-ok."""
    result = await queue.declare()
    return int(result.message_count or 0)


# ------------------------------------------------------------- publish / get


def test_declare_publish_with_confirms_and_get(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange("orders", aio_pika.ExchangeType.TOPIC)
        queue = await channel.declare_queue("orders.eu", durable=True)
        await queue.bind(exchange, "order.eu.*")
        confirmation = await exchange.publish(
            aio_pika.Message(
                b"{}",
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id="m-1",
            ),
            routing_key="order.eu.created",
        )
        assert isinstance(confirmation, pamqp.commands.Basic.Ack)
        assert queue.declaration_result.message_count == 0

        message = await queue.get(timeout=WAIT)
        assert message.body == b"{}"
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id == "m-1"
        assert (message.exchange, message.routing_key) == ("orders", "order.eu.created")
        assert message.redelivered is False
        await message.ack()
        assert await queue.get(fail=False, timeout=WAIT) is None

    run(url, body)


def test_confirms_for_unroutable_publishes(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel(publisher_confirms=True)
        # Mandatory (aio-pika's default): the broker returns the message first.
        returned = await channel.default_exchange.publish(
            aio_pika.Message(b"lost"), routing_key="no-such-queue"
        )
        assert isinstance(returned, aiormq.abc.DeliveredMessage)
        assert isinstance(returned.delivery, pamqp.commands.Basic.Return)
        assert (returned.delivery.reply_code, returned.delivery.reply_text) == (312, "NO_ROUTE")
        assert returned.body == b"lost"
        # Not mandatory: silently dropped, and acked.
        dropped = await channel.default_exchange.publish(
            aio_pika.Message(b"dropped"), routing_key="no-such-queue", mandatory=False
        )
        assert isinstance(dropped, pamqp.commands.Basic.Ack)

    run(url, body)


def test_many_confirmed_publishes(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("", exclusive=True)
        results = await asyncio.gather(
            *(
                channel.default_exchange.publish(aio_pika.Message(b"%d" % i), queue.name)
                for i in range(200)
            )
        )
        assert all(isinstance(r, pamqp.commands.Basic.Ack) for r in results)
        assert await ready_count(queue) == 200

    run(url, body)


# ------------------------------------------------------------------ consume


def test_consume_with_the_iterator(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        for i in range(5):
            await channel.default_exchange.publish(aio_pika.Message(b"%d" % i), queue.name)
        received = []
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    received.append(message.body)
                if len(received) == 5:
                    break
        assert received == [b"0", b"1", b"2", b"3", b"4"]
        assert await ready_count(queue) == 0

    run(url, body)


def test_consume_with_a_callback(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        received: list[tuple[bytes, int]] = []

        async def on_message(message: AbstractIncomingMessage) -> None:
            received.append((message.body, message.delivery_tag))
            await message.ack()

        tag = await queue.consume(on_message)
        assert tag
        for i in range(3):
            await channel.default_exchange.publish(aio_pika.Message(b"%d" % i), queue.name)
        await eventually_async(lambda: len(received) == 3)
        assert received == [(b"0", 1), (b"1", 2), (b"2", 3)]
        await queue.cancel(tag)
        await channel.default_exchange.publish(aio_pika.Message(b"later"), queue.name)
        assert await ready_count(queue) == 1
        assert len(received) == 3

    run(url, body)


def test_rpc_request_reply(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        server_channel = await connection.channel()
        requests = await server_channel.declare_queue("rpc.requests", auto_delete=True)

        async def serve(message: AbstractIncomingMessage) -> None:
            async with message.process():
                assert message.reply_to is not None
                await server_channel.default_exchange.publish(
                    aio_pika.Message(message.body.upper(), correlation_id=message.correlation_id),
                    routing_key=message.reply_to,
                )

        await requests.consume(serve)

        client_channel = await connection.channel()
        replies = await client_channel.declare_queue("", exclusive=True)
        pending: dict[str, asyncio.Future[bytes]] = {}

        async def on_reply(message: AbstractIncomingMessage) -> None:
            assert message.correlation_id is not None
            pending[message.correlation_id].set_result(message.body)

        await replies.consume(on_reply, no_ack=True)
        loop = asyncio.get_running_loop()
        for word in ("alpha", "beta", "gamma"):
            pending[word] = loop.create_future()
            await client_channel.default_exchange.publish(
                aio_pika.Message(word.encode(), correlation_id=word, reply_to=replies.name),
                routing_key="rpc.requests",
            )
        answers = {w: await asyncio.wait_for(f, WAIT) for w, f in pending.items()}
        assert answers == {"alpha": b"ALPHA", "beta": b"BETA", "gamma": b"GAMMA"}

    run(url, body)


def test_rpc_pattern(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        rpc = await RPC.create(channel)

        async def multiply(*, x: int, y: int) -> int:
            return x * y

        await rpc.register("multiply", multiply, auto_delete=True)
        assert await asyncio.wait_for(rpc.proxy.multiply(x=6, y=7), WAIT) == 42
        await rpc.close()

    run(url, body)


# ---------------------------------------------------------- settle and qos


def test_nack_requeue_redelivers_and_reject_drops(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        for text in (b"a", b"b"):
            await channel.default_exchange.publish(aio_pika.Message(text), queue.name)

        first = await queue.get(timeout=WAIT)
        assert (first.body, first.redelivered) == (b"a", False)
        await first.nack(requeue=True)
        again = await queue.get(timeout=WAIT)
        assert (again.body, again.redelivered) == (b"a", True)
        await again.reject(requeue=False)

        second = await queue.get(timeout=WAIT)
        assert (second.body, second.redelivered) == (b"b", False)
        async with second.process(requeue=True):
            pass  # leaving the block cleanly acks
        assert await queue.get(fail=False, timeout=WAIT) is None

    run(url, body)


def test_process_context_requeues_on_exception(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"job"), queue.name)
        message = await queue.get(timeout=WAIT)
        with pytest.raises(RuntimeError):
            async with message.process(requeue=True):
                raise RuntimeError("handler failed")
        again = await queue.get(timeout=WAIT)
        assert (again.body, again.redelivered) == (b"job", True)
        await again.ack()

    run(url, body)


def test_qos_limits_unacked_deliveries(url: str) -> None:
    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2)
        queue = await channel.declare_queue("", exclusive=True)
        for i in range(5):
            await channel.default_exchange.publish(aio_pika.Message(b"%d" % i), queue.name)
        received: list[AbstractIncomingMessage] = []

        async def on_message(message: AbstractIncomingMessage) -> None:
            received.append(message)

        await queue.consume(on_message)
        await eventually_async(lambda: len(received) == 2)
        assert await ready_count(queue) == 3  # two out of five handed out, no more
        assert [m.body for m in received] == [b"0", b"1"]

        await received[0].ack()
        await eventually_async(lambda: len(received) == 3)
        await received[2].ack(multiple=True)
        await eventually_async(lambda: len(received) == 5)
        assert [m.body for m in received] == [b"0", b"1", b"2", b"3", b"4"]

    run(url, body)


# ------------------------------------------------------------------ content


def test_headers_of_every_pamqp_type_round_trip(url: str) -> None:
    # pamqp picks the narrowest integer type (b, s, I, l) and sends floats as 'f';
    # 1.5 and -0.25 are exact in 32 bits.
    headers: dict[str, Any] = {
        "byte": 5,
        "short": -300,
        "long": 70000,
        "longlong": 2**40,
        "min64": -(2**63),
        "float": 1.5,
        "negative_float": -0.25,
        "decimal": Decimal("3.14"),
        "none": None,
        "bool": True,
        "str": "h\u00e9llo",
        "timestamp": datetime.datetime(2024, 5, 17, 12, 34, 56, tzinfo=datetime.UTC),
        "array": [1, 2.5, "x", [True, None], {"a": "b"}],
        "nested": {"x": {"y": [1, {"z": -0.5}]}},
    }

    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        sent = aio_pika.Message(
            b"payload",
            headers=headers,
            user_id="guest",
            app_id="aio",
            correlation_id="c",
            expiration=60,
            priority=3,
            type="t",
            timestamp=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        )
        await channel.default_exchange.publish(sent, queue.name)
        got = await queue.get(timeout=WAIT, no_ack=True)
        assert got.body == b"payload"
        assert got.headers == headers
        assert (got.user_id, got.app_id, got.correlation_id) == ("guest", "aio", "c")
        assert (got.expiration, got.priority, got.type) == (60.0, 3, "t")
        assert got.timestamp == datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)

    run(url, body)


# ----------------------------------------------------------------- robustness


def test_robust_connection_recovers_after_the_broker_closes_it(broker: Any, url: str) -> None:
    """An operator closing the connection (320 CONNECTION_FORCED): connect_robust
    reconnects, restores its channel, queue and consumer, and carries on."""

    def close_client_connections() -> None:
        for session in list(broker.core.sessions):
            if session.vhost is not None and session.vhost.name == vhost_name:
                session.force_close("closed by the test")

    vhost_name = aio_pika.connection.URL(url).path[1:]

    async def body(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue("work", auto_delete=False)
        received: list[bytes] = []

        async def on_message(message: AbstractIncomingMessage) -> None:
            received.append(message.body)

        await queue.consume(on_message, no_ack=True)
        await channel.default_exchange.publish(aio_pika.Message(b"before"), "work")
        await eventually_async(lambda: received == [b"before"])

        reconnected = asyncio.Event()

        async def on_reconnect(*_: Any) -> None:
            reconnected.set()

        connection.reconnect_callbacks.add(on_reconnect)
        broker.call(close_client_connections)
        await asyncio.wait_for(reconnected.wait(), WAIT)

        async def publish_after() -> bool:
            try:
                await channel.default_exchange.publish(aio_pika.Message(b"after"), "work")
            except aio_pika.exceptions.ChannelInvalidStateError:
                return False  # the channel is still being restored
            return True

        await eventually_async(publish_after)
        await eventually_async(lambda: received == [b"before", b"after"])

    run(url, body)
