"""The property-flag layout is spelled out once (protocol.properties.PROPERTY_LAYOUT);
every place that tests a flag bit or walks the properties derives from it.  These tests
hold each derived layout against pamqp's encoding of real content headers."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from pamqp import commands, header

from amqpbroker.broker import (
    publish_checks,
    publish_extras,
    reply_to,
    rule_messages,
    sender_selected,
)
from amqpbroker.management import messages
from amqpbroker.protocol import properties as props
from amqpbroker.testing import helpers

# One value of each kind that pamqp encodes.
_SAMPLE: dict[str, Any] = {
    "shortstr": "abc",
    "octet": 2,
    "timestamp": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    "table": {"k": "v"},
}


def _pamqp_header(**values: Any) -> bytes:
    """A content-header payload as pamqp encodes it.  Set after construction:
    pamqp's validation refuses a cluster_id (deprecated), its encoder does not."""
    properties = commands.Basic.Properties()
    for name, value in values.items():
        setattr(properties, name, value)
    return header.ContentHeader(0, 10, properties).marshal()


def _alone(name: str) -> bytes:
    kind = dict(props.PROPERTY_LAYOUT)[name]
    return _pamqp_header(**{name: _SAMPLE[kind]})


def test_layout_is_pamqps_order_kinds_and_flags() -> None:
    pamqp = commands.Basic.Properties
    assert tuple(pamqp.__slots__) == props.PROPERTY_NAMES
    for name, kind in props.PROPERTY_LAYOUT:
        assert kind == pamqp.amqp_type(name)
        assert props.FLAGS[name] == pamqp.flags[name]


@pytest.mark.parametrize("name", props.PROPERTY_NAMES)
def test_each_flag_is_the_bit_pamqp_writes(name: str) -> None:
    payload = _alone(name)
    assert int.from_bytes(payload[12:14], "big") == props.FLAGS[name]
    # And the scanner, the full decoder and the encoder read and write that bit.
    props.scan_properties(payload)
    decoded = props.decode_properties(payload)
    assert props.encode_header_payload(decoded, 10) == payload


@pytest.mark.parametrize(
    ("high_byte_mask", "names"),
    [
        (sender_selected._HEADERS_FLAG, {"headers"}),
        (reply_to._REPLY_TO_FLAG, {"reply_to"}),
        (rule_messages._EXPIRATION_FLAG, {"expiration"}),
        (publish_extras.SPECIAL_FLAGS, {"headers", "reply_to", "expiration"}),
    ],
)
def test_broker_pre_checks_see_exactly_their_properties(
    high_byte_mask: int, names: set[str]
) -> None:
    for name in props.PROPERTY_NAMES:
        seen = bool(_alone(name)[12] & high_byte_mask)
        assert seen == (name in names), name


def test_publish_shape_layout_skips_each_property_by_its_size() -> None:
    value_checked = {
        name for name in props.PROPERTY_NAMES if props.FLAGS[name] & publish_checks._VALUE_CHECKED
    }
    assert value_checked == {"headers", "reply_to", "expiration", "user_id"}
    by_flag = {props.FLAGS[name]: name for name in props.PROPERTY_NAMES}
    assert [by_flag[flag] for flag, _size in publish_checks._LAYOUT] == [
        name for name in props.PROPERTY_NAMES if name not in value_checked
    ]
    for flag, size in publish_checks._LAYOUT:
        payload = _alone(by_flag[flag])
        # size 0: a short string, skipped by its length octet.
        assert len(payload) - 14 == (size or 1 + payload[14])


def test_property_name_lists_are_the_layout() -> None:
    assert list(messages._API_PROPERTY_NAMES.values()) == list(props.PROPERTY_NAMES)
    assert "type" in messages._API_PROPERTY_NAMES  # the management API's name for it
    assert helpers.PROPERTY_NAMES is props.PROPERTY_NAMES
