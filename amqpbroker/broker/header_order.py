"""Headers tables in key order, as RabbitMQ 4.x delivers them.

RabbitMQ 4's message container parses a publish's headers table and encodes it
again for consumers with its keys sorted bytewise (nested tables keep their order;
entries, types and values are unchanged; checked on 4.0.5).  3.10 forwards the
publisher's bytes, as this broker does everywhere else (broker/message.py).

Most publishers send their headers in one order, often already sorted, and repeat
the same property bytes: :class:`HeaderOrder` remembers the verdict for the last
property bytes it saw on a connection, so the publish path pays one identity test
(or a slice compare) per message, and re-encodes only headers that are out of order.
"""

from __future__ import annotations

from ..protocol import properties as props

# The headers property's flag (0x2000) in the high byte of the property flags, which
# is byte 12 of a content header payload (class, weight, body size come first).
HEADERS_FLAG = 0x20


def _byte_key(item: tuple[str, object]) -> bytes:
    return item[0].encode("utf-8")


def sorted_properties(header: bytes) -> bytes | None:
    """The property bytes (``header[12:]``) of ``header`` with its headers table's keys
    in order, or None when they already are (or the table does not decode: the
    publish-time checks answer for that)."""
    try:
        headers = props.scan_properties(header).headers
    except Exception:
        return None
    if not headers:
        return None
    keys = [key.encode("utf-8") for key in headers]
    if keys == sorted(keys):
        return None
    properties = props.decode_properties(header)
    properties.headers = dict(sorted(headers.items(), key=_byte_key))
    return props.encode_header_payload(properties, 0)[12:]


class HeaderOrder:
    """One connection's memory of the last headers it checked for order."""

    __slots__ = ("_header", "_properties", "_sorted")

    def __init__(self) -> None:
        self._header: bytes | None = None
        self._properties = b""
        self._sorted: bytes | None = None

    def resorted(self, header: bytes) -> bytes | None:
        """``header`` with its headers table in key order, or None when it is already.

        Hot path (every 4.x publish with headers): the reader hands out the same
        header object while a publisher repeats it, so an identity test usually
        decides; equal property bytes in a new object cost a slice compare."""
        if header is not self._header:
            properties = header[12:]
            if properties != self._properties:
                self._properties = properties
                self._sorted = sorted_properties(header)
            self._header = header
        resorted = self._sorted
        return None if resorted is None else header[:12] + resorted
