"""The example project (tests/example_project) passes as a pytest session of its own.

It uses nothing but the plugin's fixtures, the way a user's project would: once
against the embedded broker, and once against a real RabbitMQ through
``--amqp-url`` (skipped when none answers), with and without its management API.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

EXAMPLE_PROJECT = Path(__file__).parent / "example_project"
# The reference RabbitMQ of the differential tests (.ci/run starts it).
RABBITMQ_URL = os.environ.get("AMQPBROKER_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5673/")
# A RabbitMQ with the management plugin (start-rabbitmq.sh 5674 with PLUGINS=...).
RABBITMQ_MANAGEMENT_AMQP_URL = os.environ.get(
    "AMQPBROKER_REFERENCE_MANAGEMENT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5674/"
)
RABBITMQ_MANAGEMENT_URL = os.environ.get(
    "AMQPBROKER_REFERENCE_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15674/"
)
# A whole session: 12 tests, the Celery one takes ~1.5 s; generous for slow CI.
SESSION_TIMEOUT = 180
# Tests in the example project; those that look inside or act on the embedded broker
# (amqp_inspector x2, amqp_clock x1, amqp_faults x3) skip on an external broker.
EXAMPLE_TESTS = 12
INSPECTOR_TESTS = 6


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 80), timeout=1).close()
    except OSError:
        return False
    return True


def run_example_project(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMQPBROKER_TEST_")}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *args],
        cwd=EXAMPLE_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT,
    )


def assert_outcome(result: subprocess.CompletedProcess[str], passed: int, skipped: int) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}
    assert counts == ({"passed": passed, "skipped": skipped} if skipped else {"passed": passed}), (
        output
    )


def test_example_project_passes_on_the_embedded_broker() -> None:
    assert_outcome(run_example_project(), passed=EXAMPLE_TESTS, skipped=0)


@pytest.mark.skipif(not _answers(RABBITMQ_URL), reason=f"no RabbitMQ at {RABBITMQ_URL}")
def test_example_project_passes_on_rabbitmq() -> None:
    result = run_example_project("--amqp-url", RABBITMQ_URL)
    assert_outcome(result, passed=EXAMPLE_TESTS - INSPECTOR_TESTS, skipped=INSPECTOR_TESTS)
    assert "each test's declared queues and exchanges are deleted" in result.stdout


@pytest.mark.skipif(
    not (_answers(RABBITMQ_MANAGEMENT_AMQP_URL) and _answers(RABBITMQ_MANAGEMENT_URL)),
    reason=f"no RabbitMQ with its management API at {RABBITMQ_MANAGEMENT_URL}",
)
def test_example_project_passes_on_rabbitmq_with_a_vhost_per_test() -> None:
    result = run_example_project(
        "--amqp-url",
        RABBITMQ_MANAGEMENT_AMQP_URL,
        "--amqp-management-url",
        RABBITMQ_MANAGEMENT_URL,
    )
    assert_outcome(result, passed=EXAMPLE_TESTS - INSPECTOR_TESTS, skipped=INSPECTOR_TESTS)
    assert "a vhost per test" in result.stdout


DOCS = Path(__file__).parent.parent / "README.md"


def _without_docstring(source: str) -> str:
    if source.startswith('"""'):
        source = source[source.index('"""', 3) + 3 :]
    return source.strip() + "\n"


def test_every_example_in_the_docs_is_an_example_project_test() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    examples = [block for block in blocks if "def test_" in block]
    assert len(examples) >= 5  # pika, aio-pika, kombu, Celery, the inspector
    files = {
        path.name: _without_docstring(path.read_text())
        for path in EXAMPLE_PROJECT.glob("test_*.py")
    }
    for block in examples:
        assert block in files.values(), f"not an example project file verbatim:\n{block}"
    for client in ("pika", "aio_pika", "kombu", "celery"):
        assert any(f"import {client}" in b or f"from {client}" in b for b in examples), client
