"""Shared fixtures: one in-process broker per session, a fresh vhost per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

import amqpbroker
from amqpbroker.testing.pytest_plugin import EmbeddedBrokers, marked_version

_vhost_ids = itertools.count(1)

# A pytest project of its own (its pytest.ini), run in a subprocess by
# test_example_project.py; collecting it here too would run it twice.
collect_ignore = ["example_project"]


@pytest.fixture(scope="session")
def brokers() -> Iterator[EmbeddedBrokers]:
    """Embedded brokers by RabbitMQ release, started on first use.  Unmarked tests use
    AMQPBROKER_TEST_RABBITMQ_VERSION's release when it is set (to run a module in
    another mode by hand), else the default one."""
    pool = EmbeddedBrokers(os.environ.get("AMQPBROKER_TEST_RABBITMQ_VERSION") or None)
    yield pool
    pool.close()


@pytest.fixture
def broker(brokers: EmbeddedBrokers, request: pytest.FixtureRequest) -> amqpbroker.Broker:
    """The broker of the release the test is marked with
    (``@pytest.mark.rabbitmq_version("3.10")``), else of the default one (4.0)."""
    return brokers.get(marked_version(request.node))


@pytest.fixture
def vhost(broker: amqpbroker.Broker) -> Iterator[str]:
    """A virtual host of its own, so tests never see each other's queues."""
    name = f"test-{os.getpid()}-{next(_vhost_ids)}"
    broker.add_vhost(name)
    yield name
    broker.delete_vhost(name)


@pytest.fixture
def url(broker: amqpbroker.Broker, vhost: str) -> str:
    return broker.url_for(vhost)
