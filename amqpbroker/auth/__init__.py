"""Users, passwords and permissions (RabbitMQ's rabbit_auth_backend_internal).

``passwords``: RabbitMQ's salted password hashes, so definitions move between the two
brokers; ``users``: the user database the broker and ``amqpbroker ctl`` share, kept in
the durable store.
"""
