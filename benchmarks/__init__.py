"""Side-by-side throughput and latency benchmark of amqpbroker and RabbitMQ.

Run ``python -m benchmarks --help`` from the project root; see benchmarks/README.md.
"""
