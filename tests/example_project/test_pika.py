"""pika, the synchronous client: publish, then get, on the test's own vhost."""

import pika
import pytest


def test_publish_and_get(amqp_url):
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_declare("greetings")
        channel.basic_publish(exchange="", routing_key="greetings", body=b"hello")

        method, _properties, body = channel.basic_get("greetings", auto_ack=True)

        assert body == b"hello"
        assert method.message_count == 0


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_starts_afresh(amqp_url, run):
    # Both runs leave a message behind; neither finds the other's.
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_declare("leftovers", durable=True)
        method, _properties, _body = channel.basic_get("leftovers")
        assert method is None, "a message from another test"
        channel.basic_publish(exchange="", routing_key="leftovers", body=b"left behind")
