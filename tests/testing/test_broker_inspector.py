"""BrokerInspector: what a test can see of the embedded broker, and the waits.

Driven with pika through the plugin's own fixtures, as a user's test would be.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pika
import pytest

from amqpbroker.testing import BrokerInspector, WaitTimeout


@pytest.fixture
def channel(amqp_url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    params = pika.URLParameters(amqp_url)
    params.socket_timeout = params.blocked_connection_timeout = 10
    with pika.BlockingConnection(params) as connection:
        yield connection.channel()


def test_queues_exchanges_and_bindings(channel, amqp_inspector: BrokerInspector) -> None:
    channel.exchange_declare("events", exchange_type="topic", durable=True)
    channel.queue_declare("audit", durable=True, arguments={"x-max-length": 10})
    channel.queue_bind("audit", "events", routing_key="user.#")
    channel.queue_declare("", exclusive=True)

    queues = amqp_inspector.queues()
    assert next(iter(queues)) == "audit"
    audit = queues["audit"]
    assert (audit.durable, audit.exclusive, audit.arguments) == (True, False, {"x-max-length": 10})
    [generated] = [q for name, q in queues.items() if name != "audit"]
    assert generated.name.startswith("amq.gen-") and generated.exclusive

    events = amqp_inspector.exchanges()["events"]
    assert (events.type, events.durable) == ("topic", True)
    assert "amq.topic" not in amqp_inspector.exchanges()
    assert "amq.topic" in amqp_inspector.exchanges(predeclared=True)

    [binding] = amqp_inspector.bindings(queue="audit")
    assert (binding.source, binding.destination, binding.destination_type) == (
        "events",
        "audit",
        "queue",
    )
    assert binding.routing_key == "user.#"
    assert amqp_inspector.bindings(exchange="amq.direct") == []


def test_messages_are_listed_without_being_consumed(channel, amqp_inspector) -> None:
    channel.queue_declare("work")
    for n in range(3):
        channel.basic_publish(
            "",
            "work",
            f"job {n}".encode(),
            pika.BasicProperties(headers={"n": n}, message_id=f"m{n}", delivery_mode=2),
        )
    listed = amqp_inspector.wait_for_messages("work", 3)
    assert [m.text for m in listed] == ["job 0", "job 1", "job 2"]
    assert listed[1].headers == {"n": 1}
    assert listed[1].properties["message_id"] == "m1"
    assert listed[1].properties["delivery_mode"] == 2
    assert not listed[0].redelivered
    assert amqp_inspector.messages("work") == listed  # looking twice changes nothing

    # The consumer still gets every message, first time, in order.
    method, _props, body = channel.basic_get("work")
    assert (body, method.redelivered, method.message_count) == (b"job 0", False, 2)
    channel.basic_nack(method.delivery_tag, requeue=True)
    head = amqp_inspector.wait_for_messages("work", 3)[0]
    assert (head.text, head.redelivered) == ("job 0", True)


def test_published_messages_per_exchange(channel, amqp_inspector) -> None:
    channel.exchange_declare("fan", exchange_type="fanout")
    channel.queue_declare("a")
    channel.queue_declare("b")
    channel.queue_bind("a", "fan")
    channel.queue_bind("b", "fan")
    channel.exchange_declare("void", exchange_type="direct")

    channel.basic_publish("fan", "", b"to both")
    channel.basic_publish("void", "nowhere", b"unroutable")
    channel.basic_publish("", "a", b"direct to a")

    amqp_inspector.wait_for_published("")  # the last one: all three are in
    [fanned] = amqp_inspector.published("fan")
    assert sorted(fanned.queues) == ["a", "b"]
    [lost] = amqp_inspector.published("void")
    assert (lost.routing_key, lost.queues) == ("nowhere", ())
    assert [m.body for m in amqp_inspector.published()] == [
        b"to both",
        b"unroutable",
        b"direct to a",
    ]
    assert amqp_inspector.published("")[0].queues == ("a",)


def test_published_records_only_its_own_vhost(amqp_broker, amqp_url, amqp_inspector) -> None:
    other = "inspector-other-vhost"
    amqp_broker.add_vhost(other)
    try:
        with pika.BlockingConnection(pika.URLParameters(amqp_broker.url_for(other))) as c:
            c.channel().basic_publish("", "nowhere", b"elsewhere")
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as c:
            c.channel().basic_publish("", "nowhere", b"here")
        assert [m.body for m in amqp_inspector.wait_for_published("")] == [b"here"]
    finally:
        amqp_broker.delete_vhost(other)


def test_wait_for_consumers_and_acked(amqp_url, amqp_inspector) -> None:
    received: list[bytes] = []

    def worker() -> None:
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            ch = connection.channel()
            ch.queue_declare("tasks")
            for method, _props, body in ch.consume("tasks", inactivity_timeout=5):
                if method is None:
                    return
                received.append(body)
                ch.basic_ack(method.delivery_tag)
                if len(received) == 2:
                    ch.cancel()
                    return

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        info = amqp_inspector.wait_for_consumers("tasks")
        assert info.consumers == 1 and len(info.consumer_tags) == 1
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            ch = connection.channel()
            ch.basic_publish("", "tasks", b"one")
            ch.basic_publish("", "tasks", b"two")
        settled = amqp_inspector.wait_for_acked("tasks", 2)
        assert (settled.enqueued, settled.messages, settled.unacked) == (2, 0, 0)
        amqp_inspector.wait_for_consumers("tasks", 0)
    finally:
        thread.join(10)
    assert received == [b"one", b"two"]


def test_wait_for_acked_waits_for_the_ack(channel, amqp_inspector) -> None:
    channel.queue_declare("jobs")
    channel.basic_publish("", "jobs", b"job")
    method, _props, _body = channel.basic_get("jobs")
    with pytest.raises(WaitTimeout, match="1 unacked"):
        amqp_inspector.wait_for_acked("jobs", timeout=0.05)
    channel.basic_ack(method.delivery_tag)
    assert amqp_inspector.wait_for_acked("jobs").unacked == 0


def test_a_failed_wait_shows_the_state(channel, amqp_inspector) -> None:
    channel.exchange_declare("orders", exchange_type="direct")
    channel.queue_declare("billing")
    channel.queue_bind("billing", "orders", routing_key="new")
    channel.basic_publish("orders", "new", b"order 1")
    amqp_inspector.wait_for_messages("billing", 1)

    with pytest.raises(WaitTimeout) as failure:
        amqp_inspector.wait_for_messages("billing", 2, timeout=0.1)
    text = str(failure.value)
    assert "timed out after 0.1 s waiting for queue 'billing' to hold exactly 2" in text
    assert "queue 'billing': 1 ready, 0 unacked, 0 consumers" in text
    assert "head b'order 1'" in text
    assert "'orders' -> queue 'billing' key 'new'" in text
    assert "published since the inspector started: 1" in text
    assert isinstance(failure.value, AssertionError)


def test_a_missing_queue(amqp_inspector) -> None:
    with pytest.raises(KeyError, match="no queue 'ghost'"):
        amqp_inspector.queue("ghost")
    with pytest.raises(WaitTimeout, match=r"last lookup failed: .*no queue 'ghost'"):
        amqp_inspector.wait_for_queue("ghost", timeout=0.05)


def test_recording_stops_at_close(amqp_broker, amqp_vhost) -> None:
    observers = amqp_broker.core.publish_observers
    before = len(observers)
    with BrokerInspector(amqp_broker, amqp_vhost) as inspector:
        assert len(observers) == before + 1
    assert len(observers) == before
    inspector.close()  # idempotent


def test_inspecting_a_missing_vhost(amqp_broker) -> None:
    with pytest.raises(KeyError, match="no vhost 'nope'"):
        BrokerInspector(amqp_broker, "nope")
