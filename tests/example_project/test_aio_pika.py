"""aio-pika, the asyncio client: consume one message with an async iterator."""

import asyncio

import aio_pika


def test_publish_and_consume(amqp_url):
    async def round_trip():
        async with await aio_pika.connect(amqp_url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("greetings")
            await channel.default_exchange.publish(
                aio_pika.Message(b"hello"), routing_key="greetings"
            )
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():  # acks on leaving the block
                        return message.body

    assert asyncio.run(asyncio.wait_for(round_trip(), timeout=10)) == b"hello"
