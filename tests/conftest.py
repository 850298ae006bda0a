"""Shared fixtures: one in-process broker per session, a fresh vhost per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

import amqpbroker

_vhost_ids = itertools.count(1)

# A pytest project of its own (its pytest.ini), run in a subprocess by
# test_example_project.py; collecting it here too would run it twice.
collect_ignore = ["example_project"]


@pytest.fixture
def broker(_amqp_test_broker: object) -> amqpbroker.Broker:
    """The plugin's embedded broker of the release the test is marked with
    (``@pytest.mark.rabbitmq_version("3.10")``), else of the session's (4.0, or
    ``--amqp-rabbitmq-version``); ``amqp_clock`` drives that same broker."""
    assert isinstance(_amqp_test_broker, amqpbroker.Broker), "the suite runs on its own broker"
    return _amqp_test_broker


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
