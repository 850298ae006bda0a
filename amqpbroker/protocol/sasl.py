"""SASL responses of the PLAIN and AMQPLAIN mechanisms, parsed into credentials.

Used by the broker's authentication and, for the log line of a refused login, by
the connection.  Both return None for a response that does not parse.
"""

from __future__ import annotations

import struct

from pamqp import decode

__all__ = ["parse_amqplain", "parse_plain"]


def parse_amqplain(response: bytes) -> tuple[str, str] | None:
    """AMQPLAIN's response is a field table without its length prefix."""
    try:
        _, table = decode.field_table(struct.pack(">I", len(response)) + response)
    except (ValueError, struct.error, IndexError, UnicodeDecodeError, TypeError):
        return None
    login, password = table.get("LOGIN"), table.get("PASSWORD")
    if isinstance(login, bytes):
        login = login.decode("utf-8", "replace")
    if isinstance(password, bytes):
        password = password.decode("utf-8", "replace")
    if not isinstance(login, str) or not isinstance(password, str):
        return None
    return login, password


def parse_plain(response: bytes) -> tuple[str, str] | None:
    """PLAIN is ``authzid NUL authcid NUL passwd`` (RFC 4616)."""
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return None
    try:
        return parts[1].decode("utf-8"), parts[2].decode("utf-8")
    except UnicodeDecodeError:
        return None
