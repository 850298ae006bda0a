"""The amqps listener: TLS around the same connection handling (trio.SSLStream).

As RabbitMQ's ssl listener with ``verify_peer`` when a CA is given: a client may
present a certificate, and if it does it must chain to the CA (a bad one fails the
TLS handshake); ``require_client_cert`` also refuses clients without one
(``fail_if_no_peer_cert``).  A verified certificate names a user for the EXTERNAL
mechanism (rabbitmq_auth_mechanism_ssl): its subject's common name by default, or its
whole distinguished name in RFC 4514 form (``--tls-login-from distinguished_name``,
which is RabbitMQ's own default).

Error handling: a failed or slow (``HANDSHAKE_TIMEOUT``) TLS handshake costs only that
connection, logged at info level; nothing reaches the AMQP layer.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, Final

import trio

log = logging.getLogger("amqpbroker.tls")

# RabbitMQ's ssl_handshake_timeout (5 s); the AMQP handshake timeout starts after it.
HANDSHAKE_TIMEOUT: Final = 5.0
LOGIN_FROM: Final = ("common_name", "distinguished_name")
# RFC 4514 attribute type names for the subject attributes Python reports.
_SHORT_NAMES: Final = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def server_context(
    cert: str, key: str, ca: str | None = None, *, require_client_cert: bool = False
) -> ssl.SSLContext:
    """The listener's context.  Raises OSError / ssl.SSLError for unusable files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # RabbitMQ 3.10 accepts TLS 1.2 and 1.3 only.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca is not None:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ValueError("requiring client certificates needs a CA to verify them (--tls-ca)")
    return context


def certificate_user(
    peer_cert: dict[str, Any] | None, login_from: str = "common_name"
) -> str | None:
    """The user name a verified peer certificate gives, or None (no certificate, or no
    common name in it).  ``getpeercert()`` only returns a certificate that verified."""
    if not peer_cert:
        return None
    subject = peer_cert.get("subject", ())
    if login_from == "distinguished_name":
        return distinguished_name(subject)
    for rdn in subject:
        for attribute, value in rdn:
            if attribute == "commonName":
                return str(value)
    return None


def distinguished_name(subject: Any) -> str:
    """RFC 4514: the most specific RDN first, "+" inside a multi-valued RDN."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append(
            "+".join(f"{_SHORT_NAMES.get(attr, attr)}={_escape(str(value))}" for attr, value in rdn)
        )
    return ",".join(rdns)


def _escape(value: str) -> str:
    out = []
    for i, char in enumerate(value):
        if char in ',+"\\<>;' or (
            (i == 0 and char in " #") or (i == len(value) - 1 and char == " ")
        ):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


async def accept(
    stream: trio.SSLStream[trio.SocketStream], login_from: str = "common_name"
) -> tuple[bool, str | None]:
    """Run the server side of the TLS handshake: (succeeded, certificate user)."""
    with trio.move_on_after(HANDSHAKE_TIMEOUT):
        try:
            await stream.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            cause = exc.__cause__ or exc
            log.info("TLS handshake with %s failed: %s", _peer(stream), cause)
            return False, None
        return True, certificate_user(stream.getpeercert(), login_from)
    log.info("TLS handshake with %s timed out", _peer(stream))
    return False, None


def _peer(stream: trio.SSLStream[trio.SocketStream]) -> str:
    try:
        host, port = stream.transport_stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"
