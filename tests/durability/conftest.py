"""Fixtures for the durability tests: brokers in their own processes, always cleaned up."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from brokerproc import BrokerProcesses

# The client tests' raw socket client (tests/clients/rawamqp.py), shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients"))


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[BrokerProcesses]:
    """Start ``amqpbroker`` processes; whatever is still running at teardown is killed."""
    procs = BrokerProcesses(tmp_path)
    try:
        yield procs
    finally:
        procs.cleanup()
