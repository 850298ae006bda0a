"""Faults on demand: aio-pika's robust connection rides out a reset and a restart;
publishers blocked by a memory alarm."""

import asyncio

import aio_pika
import pika


async def robust_consumer(amqp_url, fault):
    connection = await aio_pika.connect_robust(amqp_url, reconnect_interval=0.1)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("orders", durable=True)
        await channel.default_exchange.publish(
            aio_pika.Message(b"order 1", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="orders",
        )
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())

        await asyncio.to_thread(fault)  # the broker acts on its own thread
        await asyncio.wait_for(reconnected.wait(), timeout=10)

        message = await queue.get(timeout=5)  # the restored channel, the same queue
        assert message.body == b"order 1"
        await message.ack()


def test_robust_connection_survives_a_tcp_reset(amqp_url, amqp_faults):
    asyncio.run(robust_consumer(amqp_url, amqp_faults.kill_connections))


def test_robust_connection_survives_a_broker_restart(amqp_url, amqp_faults):
    asyncio.run(robust_consumer(amqp_url, amqp_faults.restart))


def test_publishers_are_blocked_and_consumers_still_served(amqp_url, amqp_faults):
    blocked = []
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        connection.add_on_connection_blocked_callback(
            lambda _connection, frame: blocked.append(frame.method.reason)
        )
        channel = connection.channel()
        channel.confirm_delivery()  # the broker has taken "job": this connection publishes
        channel.queue_declare("work")
        channel.basic_publish(exchange="", routing_key="work", body=b"job")

        amqp_faults.block_publishers()
        while not blocked:  # connection.blocked is on its way (the test's timeout bounds it)
            connection.process_data_events(time_limit=0.1)
        assert blocked == ["low on memory"]
        assert channel.basic_get("work", auto_ack=True)[2] == b"job"  # still served
        amqp_faults.unblock_publishers()
