"""Broker time the test controls: a 30-minute TTL, dead-lettered, in milliseconds."""

import pika


def test_unpaid_order_expires_after_30_minutes(amqp_url, amqp_clock):
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare("expired", exchange_type="fanout")
        channel.queue_declare("expired-orders")
        channel.queue_bind("expired-orders", "expired")
        channel.queue_declare(
            "awaiting-payment",
            arguments={"x-message-ttl": 30 * 60 * 1000, "x-dead-letter-exchange": "expired"},
        )
        channel.basic_publish(exchange="", routing_key="awaiting-payment", body=b"order 42")

        amqp_clock.advance(29 * 60)  # broker time moves; the TTLs due run before it returns
        assert channel.basic_get("expired-orders")[0] is None

        amqp_clock.advance(60)
        _method, properties, body = channel.basic_get("expired-orders", auto_ack=True)
        assert body == b"order 42"
        assert properties.headers["x-death"][0]["reason"] == "expired"
