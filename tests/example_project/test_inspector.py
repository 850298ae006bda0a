"""Looking inside the broker: what was published, what waits in a queue."""

import json

import pika


def test_order_reaches_billing(amqp_url, amqp_inspector):
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.exchange_declare("orders", exchange_type="topic")
        channel.queue_declare("billing")
        channel.queue_bind("billing", "orders", routing_key="order.*")

        channel.basic_publish(
            exchange="orders",
            routing_key="order.created",
            body=json.dumps({"id": 42}).encode(),
            properties=pika.BasicProperties(content_type="application/json"),
        )

    # Nothing is consumed: the message stays in the queue for the code under test.
    [message] = amqp_inspector.wait_for_messages("billing", 1)
    assert json.loads(message.body) == {"id": 42}
    assert message.properties["content_type"] == "application/json"

    [published] = amqp_inspector.published("orders")
    assert published.routing_key == "order.created"
    assert published.queues == ("billing",)


def test_worker_acks_its_message(amqp_url, amqp_inspector):
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_declare("jobs")
        channel.basic_publish(exchange="", routing_key="jobs", body=b"job 1")

        method, _properties, _body = channel.basic_get("jobs")
        assert amqp_inspector.queue("jobs").unacked == 1
        channel.basic_ack(method.delivery_tag)

        amqp_inspector.wait_for_acked("jobs")
