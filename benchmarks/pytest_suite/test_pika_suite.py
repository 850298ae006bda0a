"""100 small pika tests, each on its own vhost: what a typical messaging suite does.

Each test connects, declares a queue, publishes ten messages and gets them back
with acks, the way a unit test of a producer or a consumer would.
"""

import pika
import pytest

MESSAGES = 10


@pytest.mark.parametrize("n", range(100))
def test_round_trip(amqp_url, n):
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_declare(f"work-{n % 7}")
        for i in range(MESSAGES):
            channel.basic_publish("", f"work-{n % 7}", f"{n}:{i}".encode())
        got = []
        while len(got) < MESSAGES:
            method, _properties, body = channel.basic_get(f"work-{n % 7}")
            if method is None:
                continue
            channel.basic_ack(method.delivery_tag)
            got.append(body)
        assert got == [f"{n}:{i}".encode() for i in range(MESSAGES)]
