"""Celery: a real worker (in a thread of this process) runs a task from the broker."""

from celery import Celery
from celery.contrib.testing.worker import start_worker


def test_task_round_trip(amqp_url):
    app = Celery(
        "example",
        broker=amqp_url,
        backend="rpc://",
        broker_heartbeat=0,  # lets the worker stop in ~1 s instead of ~10 s
    )

    @app.task
    def add(x, y):
        return x + y

    with start_worker(app, perform_ping_check=False):
        assert add.delay(2, 3).get(timeout=10) == 5
