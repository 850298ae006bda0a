"""Shared fixtures: one in-process broker per session, a fresh vhost per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

import amqpbroker

_vhost_ids = itertools.count(1)


@pytest.fixture(scope="session")
def broker() -> Iterator[amqpbroker.Broker]:
    with amqpbroker.Broker() as running:
        yield running


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
