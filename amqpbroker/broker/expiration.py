"""The ``expiration`` message property: a string of milliseconds, checked at publish.

RabbitMQ parses it with Erlang's ``string:to_integer`` and refuses the publish with
406 PRECONDITION_FAILED, quoting the Erlang error term printed by ``~p``::

    invalid expiration 'abc': no_integer
    invalid expiration '1.5': {leftover_string,".5"}
    invalid expiration '-1': {value_negative,-1}
    invalid expiration '315360000001': {value_too_large,315360000001}

The texts below reproduce those, including ``~p``'s line wrap for terms that do
not fit in 80 columns (it matters only for absurdly long values).
"""

from __future__ import annotations

import re

from .. import errors

# rabbit_misc:check_expiry: ten years in milliseconds.
MAX_EXPIRATION = 315_360_000_000
# io_lib:format's ~p line length.
_LINE_LENGTH = 80

_INTEGER = re.compile(rb"[+-]?[0-9]+")
# Characters io_lib:printable_list (latin1) accepts, and ~p's escapes for them.
_ESCAPES = {
    0x22: '\\"',
    0x5C: "\\\\",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
    0x08: "\\b",
    0x0C: "\\f",
    0x1B: "\\e",
}


def _erlang_list(data: bytes) -> str:
    """``~p`` of a byte list: a quoted string when printable, else ``[1,2,...]``."""
    if all(32 <= b <= 126 or 160 <= b <= 255 or b in _ESCAPES for b in data):
        # Bytes go out as they are: ~p of a latin1 list re-emits the raw octets.
        out = "".join(_ESCAPES.get(b) or chr(b) for b in data)
        return '"' + out.encode("latin-1").decode("utf-8", "replace") + '"'
    return "[" + ",".join(str(b) for b in data) + "]"


def _refuse(raw: bytes, tag: str, value: str) -> errors.PreconditionFailed:
    prefix = "invalid expiration '" + raw.decode("utf-8", "replace") + "': "
    if tag == "no_integer":
        return errors.PreconditionFailed(prefix + tag)
    term = "{" + tag + "," + value + "}"
    column = len(raw) + len("invalid expiration '': ")
    if column + len(term) > _LINE_LENGTH:
        term = "{" + tag + ",\n" + " " * (column + 1) + value + "}"
    return errors.PreconditionFailed(prefix + term)


def parse_expiration(raw: bytes) -> int:
    """Milliseconds from an ``expiration`` property, or 406 as RabbitMQ words it."""
    match = _INTEGER.match(raw)
    if match is None:
        raise _refuse(raw, "no_integer", "")
    rest = raw[match.end() :]
    if rest:
        raise _refuse(raw, "leftover_string", _erlang_list(rest))
    value = int(match.group())
    if value < 0:
        raise _refuse(raw, "value_negative", str(value))
    if value > MAX_EXPIRATION:
        raise _refuse(raw, "value_too_large", str(value))
    return value
