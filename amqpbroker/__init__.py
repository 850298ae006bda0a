"""amqpbroker: an AMQP 0-9-1 broker that stock RabbitMQ clients can use as RabbitMQ."""

__version__ = "0.1.0"

