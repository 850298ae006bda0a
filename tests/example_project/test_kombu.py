"""kombu: a SimpleQueue round trip with JSON serialisation."""

from kombu import Connection


def test_simple_queue_round_trip(amqp_url):
    with Connection(amqp_url) as connection:
        queue = connection.SimpleQueue("greetings")
        queue.put({"text": "hello"})

        message = queue.get(block=True, timeout=10)
        message.ack()
        queue.close()

    assert message.payload == {"text": "hello"}
