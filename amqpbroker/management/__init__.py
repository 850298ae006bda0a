"""Management and observability: an HTTP API that RabbitMQ's management clients and
tools accept, Prometheus metrics, a dashboard page, and the ``amqpbroker ctl`` verbs.

The HTTP side (Starlette served by Hypercorn's trio worker) runs as one more task
in the broker's trio run, on the broker's thread, because every piece of broker
state lives there: handlers read and change it directly, between two frames, with
no lock.  Starlette and Hypercorn are imported only when management is enabled
(:mod:`.server`), so embedding a broker in a test suite does not pay for them.

Layout:
- ``context``     what a request handler sees: the broker, ports, node identity
- ``format``      broker objects -> RabbitMQ's JSON shapes
- ``definitions`` export / import of RabbitMQ definitions (also ``--load-definitions``)
- ``messages``    publish and get through an internal, socket-less session
- ``metrics``     the Prometheus text exposition
- ``api_*``       the routes, one module per resource family
- ``app``         the Starlette application: auth, errors, routes
- ``server``      the listener task
- ``ctl``         the command-line client (urllib only)
"""
