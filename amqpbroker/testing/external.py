"""An external broker (a real RabbitMQ, or an amqpbroker in another process) for the
pytest fixtures, with vhost-per-test isolation through RabbitMQ's management API.

:class:`ExternalBroker` has the same small surface the fixtures use on the embedded
:class:`amqpbroker.Broker`: ``url``, ``url_for(vhost)``, ``add_vhost``,
``delete_vhost``.  Without a management URL it cannot create vhosts
(``isolated`` is False) and the fixtures hand every test the URL's own vhost.

Only the standard library is used (urllib), so pointing a suite at RabbitMQ needs
no extra package.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from urllib.parse import quote, unquote, urlsplit, urlunsplit

# How long one management API request or the reachability probe may take.
HTTP_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
# Full rights on a test's vhost for the user the tests connect as.
FULL_PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}


class ManagementError(RuntimeError):
    """The management API refused or failed a request; carries the HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def mask_password(url: str) -> str:
    """``url`` with the password replaced by ``***`` (for headers and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


class ExternalBroker:
    """A broker reached over the network at ``url`` (``amqp://`` or ``amqps://``).

    ``management_url`` (``http://[user:pass@]host:15672``) enables ``add_vhost`` and
    ``delete_vhost``; its credentials default to the AMQP URL's.

    Error handling: :meth:`check` raises ConnectionError when the broker (or its
    management API) cannot be reached or refuses the credentials; vhost operations
    raise :class:`ManagementError`, or RuntimeError when there is no management URL.
    Resource handling: no connection is kept open; each call opens and closes its own.
    """

    def __init__(self, url: str, management_url: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"not an AMQP URL: {mask_password(url)!r}")
        self._parts = parts
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        self.user = unquote(parts.username) if parts.username else "guest"
        self.password = unquote(parts.password) if parts.password else "guest"
        # The URL's vhost: an empty path means "/" to every client library.
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        self.vhost = unquote(path) if path else "/"
        self.management_url = management_url.rstrip("/") if management_url else None

    @property
    def isolated(self) -> bool:
        """True when each test can get a vhost of its own (a management URL is set)."""
        return self.management_url is not None

    @property
    def isolation(self) -> str:
        """How the fixtures keep tests apart on this broker:

        ``"vhost"``: a vhost per test, through the management API;
        ``"cleanup"``: the URL's vhost, shared, but each test's connections are cut
        and the queues and exchanges it declared are deleted after it (see
        :mod:`amqpbroker.testing.cleanup`);
        ``"none"``: the URL's vhost, shared, nothing cleaned (``amqps://`` without a
        management URL: the relay cannot read TLS).
        """
        if self.management_url is not None:
            return "vhost"
        return "cleanup" if self._parts.scheme == "amqp" else "none"

    @property
    def url(self) -> str:
        return self.url_for(self.vhost)

    def url_for(self, vhost: str) -> str:
        """The AMQP URL with ``vhost`` as its path; credentials and query kept."""
        return urlunsplit(self._parts._replace(path="/" + quote(vhost, safe="")))

    def url_via(self, host: str, port: int) -> str:
        """The AMQP URL with another address (a relay) in place of the broker's."""
        userinfo = self._parts.netloc.rsplit("@", 1)[0] + "@" if "@" in self._parts.netloc else ""
        return urlunsplit(self._parts._replace(netloc=f"{userinfo}{host}:{port}"))

    def describe(self) -> str:
        where = mask_password(self.url)
        isolation = self.isolation
        if isolation == "vhost":
            assert self.management_url is not None
            return f"{where}, a vhost per test via {mask_password(self.management_url)}"
        if isolation == "cleanup":
            return (
                f"{where}, shared vhost {self.vhost!r}; each test's declared queues and "
                "exchanges are deleted after it (no --amqp-management-url)"
            )
        return f"{where}, shared vhost {self.vhost!r}, no cleanup between tests"

    # ---------------------------------------------------------- checks

    def check(self) -> None:
        """Fail fast, with the URL in the message, if the broker is not there."""
        try:
            socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT).close()
        except OSError as exc:
            raise ConnectionError(
                f"cannot reach the AMQP broker at {mask_password(self.url)}: {exc}"
            ) from exc
        if self.management_url:
            try:
                self._request("GET", "/api/whoami")
            except (ManagementError, OSError) as exc:
                raise ConnectionError(
                    f"cannot use the management API at {mask_password(self.management_url)}: {exc}"
                ) from exc

    # ---------------------------------------------------------- vhosts

    def add_vhost(self, name: str) -> None:
        """Create ``name`` and give the AMQP URL's user full permissions on it."""
        self._request("PUT", f"/api/vhosts/{quote(name, safe='')}", {})
        self._request(
            "PUT",
            f"/api/permissions/{quote(name, safe='')}/{quote(self.user, safe='')}",
            FULL_PERMISSIONS,
        )

    def delete_vhost(self, name: str) -> None:
        """Delete ``name`` with everything in it; a vhost already gone is not an error."""
        try:
            self._request("DELETE", f"/api/vhosts/{quote(name, safe='')}")
        except ManagementError as exc:
            if exc.status != 404:
                raise

    def _request(self, method: str, path: str, body: object = None) -> bytes:
        if self.management_url is None:
            raise RuntimeError(
                "creating vhosts on an external broker needs its management API "
                "(--amqp-management-url / AMQPBROKER_TEST_MANAGEMENT_URL)"
            )
        parts = urlsplit(self.management_url)
        user = unquote(parts.username) if parts.username else self.user
        password = unquote(parts.password) if parts.password else self.password
        netloc = parts.netloc.rsplit("@", 1)[-1]
        base = urlunsplit(parts._replace(netloc=netloc))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base + path, data=data, method=method)
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise ManagementError(
                f"{method} {path} -> HTTP {exc.code}: {detail}", status=exc.code
            ) from None


__all__ = ["ExternalBroker", "ManagementError", "mask_password"]
