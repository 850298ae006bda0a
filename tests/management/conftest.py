"""An embedded broker with the management API on, shared by this directory's tests."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import amqpbroker


@pytest.fixture(scope="session")
def mgmt() -> Iterator[amqpbroker.Broker]:
    with amqpbroker.Broker(management=True) as running:
        yield running


class Http:
    """A tiny management API client (urllib: no extra dependency)."""

    def __init__(self, base: str, user: str = "guest", password: str = "guest") -> None:
        self.base = base
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        all_headers = {"Authorization": self.auth, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers=all_headers
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                status, raw, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, raw, got = exc.code, exc.read(), dict(exc.headers)
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = raw.decode()
        return status, parsed, {k.lower(): v for k, v in got.items()}

    def get(self, path: str) -> Any:
        status, body, _ = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body


@pytest.fixture
def http(mgmt: amqpbroker.Broker) -> Http:
    return Http(mgmt.management_url)
