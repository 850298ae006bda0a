"""What the API refuses to read: non-JSON bodies (415), bodies over the size cap and
JSON too malformed or too deep to parse (400), all before anything changes."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import amqpbroker
from amqpbroker.cli import build_parser, settings_from_args
from amqpbroker.config import Settings

from .conftest import Http

CAP = 4096
FORGED_ADMIN = {"users": [{"name": "intruder", "password": "x", "tags": "administrator"}]}


@pytest.fixture(scope="module")
def capped() -> Iterator[amqpbroker.Broker]:
    with amqpbroker.Broker(management=True, management_max_body_size=CAP) as running:
        yield running


def send(
    base: str, method: str, path: str, data: bytes | Iterable[bytes], content_type: str | None
) -> tuple[int, Any]:
    """A request with exactly this body and Content-Type, none if None (http.client:
    urllib would add a form Content-Type); an iterable body goes out chunked."""
    url = urllib.parse.urlsplit(base)
    headers = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    if content_type is not None:
        headers["Content-Type"] = content_type
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        chunked = not isinstance(data, bytes)
        conn.request(method, path, body=data, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        status, raw = response.status, response.read()
    finally:
        conn.close()
    return status, json.loads(raw) if raw.strip() else None


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
)
def test_cross_site_form_cannot_import_definitions(
    mgmt: amqpbroker.Broker, http: Http, content_type: str
) -> None:
    body = json.dumps(FORGED_ADMIN).encode()
    assert send(mgmt.management_url, "POST", "/api/definitions", body, content_type) == (415, None)
    assert http.request("GET", "/api/users/intruder")[0] == 404


def test_definitions_need_a_json_content_type(mgmt: amqpbroker.Broker, http: Http) -> None:
    body = json.dumps(FORGED_ADMIN).encode()
    assert send(mgmt.management_url, "POST", "/api/definitions", body, None) == (415, None)
    assert http.request("GET", "/api/users/intruder")[0] == 404


def test_non_json_body_changes_nothing(mgmt: amqpbroker.Broker, http: Http) -> None:
    status, _ = send(mgmt.management_url, "PUT", "/api/queues/%2F/form-q", b"{}", "text/plain")
    assert status == 415
    assert http.request("GET", "/api/queues/%2F/form-q")[0] == 404


def test_json_bodies_with_or_without_content_type(mgmt: amqpbroker.Broker, http: Http) -> None:
    for name, content_type in (
        ("ct-json", "application/json; charset=utf-8"),
        ("ct-vendor", "application/vnd.api+json"),
        ("ct-none", None),  # e.g. requests.put(url, data=json.dumps(...))
    ):
        status, _ = send(mgmt.management_url, "PUT", f"/api/queues/%2F/{name}", b"{}", content_type)
        assert status == 201, name
        assert http.request("DELETE", f"/api/queues/%2F/{name}")[0] == 204


def test_body_over_the_cap_is_refused(capped: amqpbroker.Broker) -> None:
    http = Http(capped.management_url)
    big = json.dumps({"arguments": {"x-pad": "p" * CAP}}).encode()
    refused = (400, {"error": "bad_request", "reason": "Exceeded HTTP request body size limit"})
    base = capped.management_url
    assert send(base, "PUT", "/api/queues/%2F/big", big, "application/json") == refused
    chunks = [big[i : i + 1000] for i in range(0, len(big), 1000)]
    assert send(base, "PUT", "/api/queues/%2F/big", iter(chunks), "application/json") == refused
    assert send(base, "POST", "/api/definitions", big, "application/json") == refused
    assert http.request("GET", "/api/queues/%2F/big")[0] == 404
    fits = json.dumps({"arguments": {"x-pad": "p" * (CAP // 2)}}).encode()
    assert send(base, "PUT", "/api/queues/%2F/big", fits, "application/json")[0] == 201


def test_cap_defaults_to_rabbitmqs_and_has_a_flag() -> None:
    assert Settings().management_max_body_size == 20_000_000
    args = build_parser().parse_args(["--management-max-body-size", "1MB"])
    assert settings_from_args(args).management_max_body_size == 1_000_000


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/api/queues/%2F/deep", "not_json"), ("/api/definitions", "failed_to_parse_json")],
)
@pytest.mark.parametrize("body", [b"{bad", b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_malformed_or_too_deep_json_is_400(
    mgmt: amqpbroker.Broker, path: str, reason: str, body: bytes
) -> None:
    method = "POST" if "definitions" in path else "PUT"
    got = send(mgmt.management_url, method, path, body, "application/json")
    assert got == (400, {"error": "bad_request", "reason": reason})
