"""kombu over its py-amqp transport (``amqp://`` URLs), as Celery uses it.

The expectations were first checked against RabbitMQ 3.10.8 with the same kombu.
"""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.message import Message
from kombu.simple import SimpleQueue

from amqpbroker.testing import eventually
from amqpbroker.testing.pytest_plugin import each_version

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0


@pytest.fixture
def connection(url: str) -> Iterator[Connection]:
    with Connection(url, connect_timeout=WAIT, transport_options={"read_timeout": WAIT}) as conn:
        conn.connect()
        yield conn


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Collector:
    """A kombu consumer callback that keeps (body, message) pairs."""

    def __init__(self, ack: bool = True) -> None:
        self.ack = ack
        self.received: list[tuple[Any, Message]] = []

    def __call__(self, body: Any, message: Message) -> None:
        self.received.append((body, message))
        if self.ack:
            message.ack()

    @property
    def bodies(self) -> list[Any]:
        return [body for body, _m in self.received]


def drain_until(connection: Connection, predicate: Callable[[], bool]) -> None:
    """Read deliveries into the callbacks until ``predicate()`` holds (bounded)."""

    def drained() -> bool:
        with contextlib.suppress(TimeoutError):
            connection.drain_events(timeout=0.001)
        return predicate()

    eventually(drained, timeout=WAIT)


def drain_nothing_more(connection: Connection) -> None:
    """A round trip on the connection: py-amqp hands every delivery the broker sent
    before the answer to the callbacks as it reads it, so one that should not have
    happened (as the outcome of what the test did before) has landed there."""
    connection.channel().close()


def ready_count(connection: Connection, queue: Queue) -> int:
    return int(queue(connection.default_channel).queue_declare(passive=True).message_count)


# --------------------------------------------------------------- round trips


@each_version("3.10", "4.0")
def test_kombu_sees_the_qos_semantics_of_the_version(
    connection: Connection, rabbitmq_version: str
) -> None:
    # RabbitMQ 3.3-3.x redefined basic.qos global; kombu (and Celery, which then
    # sends global qos) decide from the server properties' version: for 4.x it
    # assumes global QoS is gone and uses per-consumer prefetch.
    assert connection.qos_semantics_matches_spec is (rabbitmq_version != "3.10")


def test_producer_consumer_round_trip(connection: Connection) -> None:
    exchange = Exchange(unique("tasks"), type="direct", durable=True)
    queue = Queue(unique("celery"), exchange, routing_key="task.run", durable=True)
    headers = {
        "float": 1.1,  # py-amqp sends doubles
        "int": 5,
        "big": 2**40,
        "min64": -(2**63),
        "bytes": b"\x00\xff",
        "decimal": Decimal("1.25"),
        "none": None,
        "bool": True,
        "timestamp": datetime.datetime(2024, 5, 17, 1, 2, 3),
        "array": [1, "a", 2.5, [None], {"x": 1}],
        "nested": {"a": {"b": 1.5}},
    }
    producer = Producer(connection.default_channel)
    producer.publish(
        {"task": "add", "args": [2, 3]},
        exchange=exchange,
        routing_key="task.run",
        declare=[queue],
        serializer="json",
        headers=headers,
        priority=4,
        correlation_id="corr-1",
        reply_to="replies",
        expiration=60,
        delivery_mode=2,
    )
    collector = Collector()
    with Consumer(connection, queues=[queue], callbacks=[collector], accept=["json"]):
        drain_until(connection, lambda: len(collector.received) == 1)
    body, message = collector.received[0]
    assert body == {"task": "add", "args": [2, 3]}
    assert message.content_type == "application/json"
    assert message.content_encoding == "utf-8"
    assert message.headers == headers
    assert message.properties["priority"] == 4
    assert message.properties["correlation_id"] == "corr-1"
    assert message.properties["reply_to"] == "replies"
    assert message.properties["expiration"] == "60000"
    assert message.properties["delivery_mode"] == 2
    assert message.delivery_info["exchange"] == exchange.name
    assert message.delivery_info["routing_key"] == "task.run"
    assert message.delivery_info["redelivered"] is False
    assert ready_count(connection, queue) == 0


def test_publish_with_confirms(url: str) -> None:
    with Connection(url, connect_timeout=WAIT, transport_options={"confirm_publish": True}) as conn:
        queue = Queue(unique("confirmed"), routing_key=None)
        producer = conn.Producer()
        for i in range(20):
            producer.publish({"n": i}, routing_key=queue.name, declare=[queue])
        assert ready_count(conn, queue) == 20


def test_simple_queue_put_and_get(connection: Connection) -> None:
    name = unique("simple")
    simple: SimpleQueue = connection.SimpleQueue(name)
    try:
        with pytest.raises(SimpleQueue.Empty):
            simple.get(block=False)
        for i in range(3):
            simple.put({"n": i})
        eventually(lambda: simple.qsize() == 3, timeout=WAIT)
        # get_nowait is a basic.get; a blocking get starts a consumer.
        first = simple.get_nowait()
        assert first.payload == {"n": 0}
        first.ack()
        second = simple.get(block=True, timeout=WAIT)
        assert second.payload == {"n": 1}
        second.ack()
        third = simple.get(block=True, timeout=WAIT)
        assert (third.payload, third.delivery_info["redelivered"]) == ({"n": 2}, False)
        third.requeue()
        again = simple.get(block=True, timeout=WAIT)
        assert (again.payload, again.delivery_info["redelivered"]) == ({"n": 2}, True)
        again.ack()
        with pytest.raises(SimpleQueue.Empty):
            simple.get_nowait()  # basic.get: get-empty
    finally:
        simple.close()


# ----------------------------------------------------------------- exchanges

# (exchange type, [(queue suffix, binding routing key, binding arguments)],
#  [(routing key, headers)], {queue suffix: routing keys it receives}).
EXCHANGE_CASES = {
    "direct": (
        [("a", "red", None), ("b", "blue", None), ("c", "red", None)],
        [("red", None), ("blue", None), ("green", None)],
        {"a": ["red"], "b": ["blue"], "c": ["red"]},
    ),
    "fanout": (
        [("a", "ignored", None), ("b", "", None)],
        [("x", None), ("y", None)],
        {"a": ["x", "y"], "b": ["x", "y"]},
    ),
    "topic": (
        [("a", "stock.*.nyse", None), ("b", "stock.#", None), ("c", "*.eur.*", None)],
        [
            ("stock.usd.nyse", None),
            ("stock.eur.nyse", None),
            ("stock", None),
            ("fx.eur.spot", None),
        ],
        {
            "a": ["stock.usd.nyse", "stock.eur.nyse"],
            "b": ["stock.usd.nyse", "stock.eur.nyse", "stock"],
            "c": ["stock.eur.nyse", "fx.eur.spot"],
        },
    ),
    "headers": (
        [
            ("all", "", {"x-match": "all", "format": "pdf", "type": "report"}),
            ("any", "", {"x-match": "any", "format": "pdf", "type": "log"}),
        ],
        [
            ("1", {"format": "pdf", "type": "report"}),
            ("2", {"format": "pdf"}),
            ("3", {"type": "log"}),
            ("4", {"format": "zip", "type": "report"}),
        ],
        {"all": ["1"], "any": ["1", "2", "3"]},
    ),
}


@pytest.mark.parametrize("kind", sorted(EXCHANGE_CASES))
def test_exchange_types_route_like_rabbitmq(connection: Connection, kind: str) -> None:
    bindings, publishes, expected = EXCHANGE_CASES[kind]
    exchange = Exchange(unique(kind), type=kind, auto_delete=True)
    prefix = unique("q")
    queues = {
        suffix: Queue(
            f"{prefix}-{suffix}",
            exchange,
            routing_key=key,
            binding_arguments=args,
            exclusive=True,
        )
        for suffix, key, args in bindings
    }
    channel = connection.default_channel
    for queue in queues.values():
        queue(channel).declare()
    producer = Producer(channel, exchange=exchange)
    for routing_key, headers in publishes:
        producer.publish(routing_key, routing_key=routing_key, headers=headers, serializer="json")

    received: dict[str, list[str]] = {}
    for suffix, queue in queues.items():
        bound = queue(channel)
        received[suffix] = []
        while (message := bound.get(no_ack=True)) is not None:
            received[suffix].append(message.decode())
    assert received == expected


# -------------------------------------------------------- ack / reject / qos


def test_ack_reject_and_requeue(connection: Connection) -> None:
    queue = Queue(unique("settle"), exclusive=True)
    producer = Producer(connection.default_channel)
    for name in ("ack-me", "reject-me", "requeue-me"):
        producer.publish(name, routing_key=queue.name, declare=[queue], serializer="json")

    collector = Collector(ack=False)
    with Consumer(connection, queues=[queue], callbacks=[collector], accept=["json"]):
        drain_until(connection, lambda: len(collector.received) == 3)
        by_body = {body: message for body, message in collector.received}
        by_body["ack-me"].ack()
        by_body["reject-me"].reject()
        by_body["requeue-me"].requeue()
        drain_until(connection, lambda: len(collector.received) == 4)
        drain_nothing_more(connection)
        body, message = collector.received[3]
        assert body == "requeue-me"
        assert message.delivery_info["redelivered"] is True
        assert [m.delivery_info["redelivered"] for _b, m in collector.received[:3]] == [False] * 3
        message.ack()
        eventually(lambda: ready_count(connection, queue) == 0)
        drain_nothing_more(connection)
        assert len(collector.received) == 4


@pytest.mark.parametrize("apply_global", [True, False], ids=["global", "per-consumer"])
def test_qos_through_kombu(connection: Connection, apply_global: bool) -> None:
    queue = Queue(unique("qos"), exclusive=True)
    producer = Producer(connection.default_channel)
    for i in range(5):
        producer.publish(i, routing_key=queue.name, declare=[queue], serializer="json")

    collector = Collector(ack=False)
    consumer = Consumer(connection, queues=[queue], callbacks=[collector], accept=["json"])
    consumer.qos(prefetch_count=2, apply_global=apply_global)
    with consumer:
        drain_until(connection, lambda: len(collector.received) == 2)
        drain_nothing_more(connection)
        assert collector.bodies == [0, 1]
        eventually(lambda: ready_count(connection, queue) == 3)

        collector.received[0][1].ack()
        drain_until(connection, lambda: len(collector.received) == 3)
        drain_nothing_more(connection)
        assert collector.bodies == [0, 1, 2]

        collector.received[1][1].ack()
        collector.received[2][1].ack()
        drain_until(connection, lambda: len(collector.received) == 5)
    assert collector.bodies == [0, 1, 2, 3, 4]


@pytest.mark.rabbitmq_version("3.10")
def test_celery_style_global_qos_is_shared_by_consumers(connection: Connection) -> None:
    # What Celery does against RabbitMQ >= 3.3: one global prefetch for all its queues.
    apply_global = not connection.qos_semantics_matches_spec
    assert apply_global
    queues = [Queue(unique("celery"), exclusive=True) for _ in range(2)]
    producer = Producer(connection.default_channel)
    for queue in queues:
        for i in range(3):
            producer.publish(i, routing_key=queue.name, declare=[queue], serializer="json")
    collector = Collector(ack=False)
    consumer = Consumer(connection, queues=queues, callbacks=[collector], accept=["json"])
    consumer.qos(prefetch_count=4, apply_global=apply_global)
    with consumer:
        drain_until(connection, lambda: len(collector.received) == 4)
        drain_nothing_more(connection)
        assert len(collector.received) == 4
        eventually(lambda: sum(ready_count(connection, q) for q in queues) == 2)
