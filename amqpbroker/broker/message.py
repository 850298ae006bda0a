"""Messages as the broker holds them: the publisher's bytes, kept as they came.

RabbitMQ keeps a message's encoded properties and re-sends them unchanged; so do
we.  ``header`` is the content-header frame payload exactly as the publisher sent
it (class id, weight, body size, property flags and values), and it is forwarded
byte for byte in every basic.deliver / basic.get-ok.  Properties are parsed only
when something reads them (persistence, priority, expiration, headers routing),
and at most once per message.
"""

from __future__ import annotations

from typing import Any

from ..protocol import properties as props
from ..protocol import reader


class Message:
    """One published message; shared by every queue it was routed to."""

    __slots__ = (
        "_body",
        "_view",
        "content",
        "content_channel",
        "exchange",
        "header",
        "routing_key",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        header: bytes,
        body: bytes | None,
        content: bytes | None = None,
        content_channel: int = 0,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.header = header
        # None when ``content`` holds the body: it is sliced out of it only if
        # something asks for it (a message in a backlog is 64 bytes smaller; each
        # new page of memory costs a ~13 us page fault on this VM).
        self._body = body
        # The content header and body frames exactly as the publisher sent them on
        # channel ``content_channel`` (one body frame of at most 4 KiB), or None: a
        # delivery on a channel of that number appends them to its method frame as
        # they are instead of encoding both frames again.
        self.content = content
        self.content_channel = content_channel
        self._view: props.PropertyView | None = None

    @property
    def body(self) -> bytes:
        body = self._body
        if body is None:
            assert self.content is not None
            body = self._body = reader.content_body(self.header, self.content)
        return body

    @property
    def footprint(self) -> int:
        """The bytes of this message's header, content frames and body (when sliced
        out of them, a copy): what the memory alarm weighs (broker/memory.py)."""
        size = len(self.header)
        if self.content is not None:
            size += len(self.content)
        if self._body is not None:
            size += len(self._body)
        return size

    @property
    def properties(self) -> props.PropertyView:
        view = self._view
        if view is None:
            view = self._view = props.scan_properties(self.header)
        return view

    @property
    def persistent(self) -> bool:
        view = self._view
        if view is None:
            try:
                return props.delivery_mode(self.header) == 2
            except IndexError:
                view = self.properties  # raises the malformed-header error
        return view.delivery_mode == 2

    @property
    def headers(self) -> dict[str, Any] | None:
        view = self.properties
        return view.headers if view.has_headers else None


class QueuedMessage:
    """A message's place in one queue: its sequence number and delivery state."""

    __slots__ = ("message", "persisted", "redelivered", "seq")

    def __init__(
        self, seq: int, message: Message, redelivered: bool = False, persisted: bool = False
    ) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = redelivered
        self.persisted = persisted  # written to the queue's store
