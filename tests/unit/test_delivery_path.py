"""The publish -> deliver hot path, in process: whole small publishes taken in one
piece (FrameReader.next_publish) and their content frames forwarded unchanged to
consumers on a channel of the same number must put on the wire exactly what the
general encoder builds."""

from __future__ import annotations

import datetime
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.publish_checks import PublishCache
from amqpbroker.broker.session import Session
from amqpbroker.config import Settings
from amqpbroker.protocol import basic_codec, framing, method_codec
from amqpbroker.protocol.reader import FrameReader


def _method(channel: int, method: object) -> bytes:
    return method_codec.encode_method(channel, method)  # type: ignore[arg-type]


def _open(broker: Broker, port: int, channels: tuple[int, ...], frame_max: int) -> Session:
    session = Session(broker, f"127.0.0.1:{port}")
    session.receive_data(framing.PROTOCOL_HEADER)
    session.receive_data(
        _method(
            0,
            method_codec.make_method(
                commands.Connection.StartOk,
                mechanism="PLAIN",
                response="\0guest\0guest",
                locale="en_US",
            ),
        )
    )
    session.receive_data(
        _method(
            0,
            method_codec.make_method(
                commands.Connection.TuneOk, channel_max=2047, frame_max=frame_max, heartbeat=0
            ),
        )
    )
    session.receive_data(
        _method(0, method_codec.make_method(commands.Connection.Open, virtual_host="/"))
    )
    for channel in channels:
        session.receive_data(_method(channel, method_codec.make_method(commands.Channel.Open)))
    session.proto.take_output()
    return session


def _publish(channel: int, routing_key: str, header: bytes, body: bytes) -> bytes:
    method = struct.pack(">HHH", 60, 40, 0) + b"\x01x" + bytes((len(routing_key),))
    method += routing_key.encode() + b"\x00"
    return (
        framing.encode_frame(framing.FRAME_METHOD, channel, method)
        + framing.encode_frame(framing.FRAME_HEADER, channel, header)
        + framing.encode_frame(framing.FRAME_BODY, channel, body)
    )


def _header(body: bytes, message_id: str) -> bytes:
    # The message-id property only (flag 0x0080).
    value = message_id.encode()
    return struct.pack(">HHQH", 60, 0, len(body), 0x0080) + bytes((len(value),)) + value


@pytest.mark.parametrize("frame_max", [131072, 4096, 0])
@pytest.mark.parametrize("no_ack", [True, False])
def test_deliveries_are_what_the_encoder_builds(frame_max: int, no_ack: bool) -> None:
    # frame_max 0 (no limit) needs a server that offers it.
    broker = Broker(Settings(consumer_timeout=0, frame_max=131072 if frame_max else 0))
    publisher = _open(broker, 1, (1, 3), frame_max and 131072)
    # Consumers on channel 1 (the publisher's channel number) and channel 2 of
    # another connection, each on its own queue bound to one direct exchange.
    consumer = _open(broker, 2, (1, 2), frame_max)
    publisher.receive_data(
        _method(
            1,
            method_codec.make_method(
                commands.Exchange.Declare, exchange="x", exchange_type="direct"
            ),
        )
    )
    for queue, channel in (("q1", 1), ("q2", 2)):
        consumer.receive_data(
            _method(channel, method_codec.make_method(commands.Queue.Declare, queue=queue))
        )
        for key in ("a", "bb"):
            consumer.receive_data(
                _method(
                    channel,
                    method_codec.make_method(
                        commands.Queue.Bind, queue=queue, exchange="x", routing_key=key
                    ),
                )
            )
        consumer.receive_data(
            _method(
                channel,
                method_codec.make_method(
                    commands.Basic.Consume,
                    queue=queue,
                    consumer_tag=f"tag-{channel}",
                    no_ack=no_ack,
                ),
            )
        )
    consumer.proto.take_output()
    publisher.proto.take_output()
    sent = []
    data = b""
    # Routing keys change from one message to the next (the consumers' cached
    # deliver prefixes must follow); bodies up to the 4 KiB the fast path takes,
    # published on channel 1 (forwardable to channel 1) and 3 (never forwarded).
    for index, size in enumerate((1, 16, 4087, 4088, 4096, 7)):
        body = bytes([65 + index]) * size
        header = _header(body, f"m{index}")
        routing_key = "a" if index % 3 else "bb"
        for channel in (1, 3):
            sent.append((routing_key, header, body))
            data += _publish(channel, routing_key, header, body)
    publisher.receive_data(data)
    out = consumer.proto.take_output()
    expected = b""
    for tag, (routing_key, header, body) in enumerate(sent, start=1):
        expected += basic_codec.encode_delivery(
            1, "tag-1", tag, False, "x", routing_key, header, body, frame_max
        )
    for tag, (routing_key, header, body) in enumerate(sent, start=1):
        expected += basic_codec.encode_delivery(
            2, "tag-2", tag, False, "x", routing_key, header, body, frame_max
        )

    # Per channel the deliveries are in order; the two channels interleave per message.
    def per_channel(stream: bytes) -> dict[int, list[bytes]]:
        reader = FrameReader(frame_max=0)
        reader.feed(stream)
        found: dict[int, list[bytes]] = {}
        while (frame := reader.next_frame()) is not None:
            found.setdefault(frame[1], []).append(framing.encode_frame(*frame))
        return found

    assert per_channel(out) == per_channel(expected)
    assert not publisher.proto.closing and not consumer.proto.closing


def test_multiple_ack_settles_runs_of_queues_and_consumers() -> None:
    broker = Broker(Settings(consumer_timeout=0))
    publisher = _open(broker, 1, (1,), 131072)
    consumer = _open(broker, 2, (1,), 131072)
    publisher.receive_data(
        _method(
            1,
            method_codec.make_method(
                commands.Exchange.Declare, exchange="x", exchange_type="direct"
            ),
        )
    )
    # Two consumers of q1 and one of q2 on one channel; q1 round-robins, so the
    # unacked deliveries alternate between queues and consumers in runs of 1 and 2.
    for queue in ("q1", "q2"):
        consumer.receive_data(
            _method(1, method_codec.make_method(commands.Queue.Declare, queue=queue))
        )
        consumer.receive_data(
            _method(
                1,
                method_codec.make_method(
                    commands.Queue.Bind, queue=queue, exchange="x", routing_key=queue
                ),
            )
        )
    for tag, queue in (("a", "q1"), ("b", "q1"), ("c", "q2")):
        consumer.receive_data(
            _method(
                1, method_codec.make_method(commands.Basic.Consume, queue=queue, consumer_tag=tag)
            )
        )
    header = _header(b"m", "id")
    keys = ["q1", "q1", "q2", "q2", "q1", "q2", "q1", "q1"]
    publisher.receive_data(b"".join(_publish(1, key, header, b"m") for key in keys))
    channel = consumer.channels[1]
    queues = broker.vhosts["/"].queues
    consumers = channel.consumers
    assert len(channel.unacked) == 8 and queues["q1"].unacked == 5 and queues["q2"].unacked == 3
    # Tag 6 (the third q2 delivery): five deliveries before it and it.
    consumer.receive_data(struct.pack(">BHIHHQBB", 1, 1, 13, 60, 80, 6, 1, 0xCE))
    assert list(channel.unacked) == [7, 8]
    assert (queues["q1"].unacked, queues["q2"].unacked) == (2, 0)
    assert (consumers["a"].unacked, consumers["b"].unacked, consumers["c"].unacked) == (1, 1, 0)
    assert channel.consumer_unacked == 2 and channel.acked == 6
    consumer.receive_data(struct.pack(">BHIHHQBB", 1, 1, 13, 60, 80, 8, 1, 0xCE))
    assert not channel.unacked and channel.consumer_unacked == 0 and channel.acked == 8
    assert queues["q1"].unacked == 0 and consumers["a"].unacked == consumers["b"].unacked == 0
    assert not consumer.proto.closing


def _deliveries(stream: bytes) -> list[tuple[int, bytes]]:
    """(delivery tag, body) of each basic.deliver in ``stream``."""
    reader = FrameReader(frame_max=0)
    reader.feed(stream)
    found: list[tuple[int, bytes]] = []
    tag = 0
    while (frame := reader.next_frame()) is not None:
        frame_type, _channel, payload = frame
        if frame_type == framing.FRAME_METHOD and payload[:4] == b"\x00\x3c\x00\x3c":
            tag = struct.unpack_from(">Q", payload, 5 + payload[4])[0]
        elif frame_type == framing.FRAME_BODY:
            found.append((tag, payload))
    return found


def _burst_setup(*methods: object) -> tuple[Broker, Session, Session]:
    broker = Broker(Settings(consumer_timeout=0))
    publisher = _open(broker, 1, (1,), 131072)
    consumer = _open(broker, 2, (1,), 131072)
    publisher.receive_data(
        _method(
            1,
            method_codec.make_method(
                commands.Exchange.Declare, exchange="x", exchange_type="direct"
            ),
        )
    )
    consumer.receive_data(_method(1, method_codec.make_method(commands.Queue.Declare, queue="q")))
    consumer.receive_data(
        _method(
            1,
            method_codec.make_method(commands.Queue.Bind, queue="q", exchange="x", routing_key="k"),
        )
    )
    consumer.receive_data(
        _method(
            1,
            method_codec.make_method(
                commands.Basic.Consume, queue="q", consumer_tag="c", no_ack=True
            ),
        )
    )
    for method in methods:
        publisher.receive_data(_method(1, method))
    publisher.proto.take_output()
    consumer.proto.take_output()
    return broker, publisher, consumer


def test_a_burst_of_equal_publishes_is_routed_and_confirmed_one_by_one() -> None:
    _broker, publisher, consumer = _burst_setup(method_codec.make_method(commands.Confirm.Select))
    header = _header(b"xxxx", "same")
    bodies = [b"%04d" % i for i in range(50)]
    # Equal up to the body: one run; then an unroutable mandatory one, then a run again.
    data = b"".join(_publish(1, "k", header, body) for body in bodies[:30])
    method = struct.pack(">HHH", 60, 40, 0) + b"\x01x\x04none\x01"  # mandatory
    data += (
        framing.encode_frame(framing.FRAME_METHOD, 1, method)
        + framing.encode_frame(framing.FRAME_HEADER, 1, header)
        + framing.encode_frame(framing.FRAME_BODY, 1, b"lost")
    )
    data += b"".join(_publish(1, "k", header, body) for body in bodies[30:])
    publisher.receive_data(data)
    assert _deliveries(consumer.proto.take_output()) == list(enumerate(bodies, start=1))
    out = publisher.proto.take_output()
    # basic.return for the unroutable one, and one multiple ack for all 51.
    assert basic_codec.encode_return(1, 312, "NO_ROUTE", "x", "none") in out
    assert out.endswith(basic_codec.encode_basic_ack(1, 51, True))
    assert publisher.channels[1].published == 51


def test_a_burst_in_a_transaction_waits_for_the_commit() -> None:
    _broker, publisher, consumer = _burst_setup(method_codec.make_method(commands.Tx.Select))
    header = _header(b"xx", "tx")
    bodies = [b"%02d" % i for i in range(20)]
    publisher.receive_data(b"".join(_publish(1, "k", header, body) for body in bodies))
    assert consumer.proto.take_output() == b""
    publisher.receive_data(_method(1, method_codec.make_method(commands.Tx.Commit)))
    assert _deliveries(consumer.proto.take_output()) == list(enumerate(bodies, start=1))


def test_a_burst_to_a_missing_exchange_closes_the_channel_once() -> None:
    _broker, publisher, consumer = _burst_setup()
    header = _header(b"xx", "gone")
    method = struct.pack(">HHH", 60, 40, 0) + b"\x04gone\x01k\x00"
    one = (
        framing.encode_frame(framing.FRAME_METHOD, 1, method)
        + framing.encode_frame(framing.FRAME_HEADER, 1, header)
        + framing.encode_frame(framing.FRAME_BODY, 1, b"xx")
    )
    publisher.receive_data(one * 10 + _publish(1, "k", header, b"yy"))
    out = publisher.proto.take_output()
    close = method_codec.make_method(
        commands.Channel.Close,
        reply_code=404,
        reply_text="NOT_FOUND - no exchange 'gone' in vhost '/'",
        class_id=60,
        method_id=40,
    )
    assert out == method_codec.encode_method(1, close)
    assert consumer.proto.take_output() == b""  # the publish after it was dropped too


def _props_header(body: bytes, **properties: object) -> bytes:
    from pamqp import frame as pamqp_frame
    from pamqp import header as pamqp_header

    encoded = pamqp_frame.marshal(
        pamqp_header.ContentHeader(0, len(body), commands.Basic.Properties(**properties)), 1
    )
    return encoded[7:-1]


def _when(second: int) -> datetime.datetime:
    return datetime.datetime(2026, 11, 30, 0, 0, second, tzinfo=datetime.UTC)


def test_headers_of_one_shape_are_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from amqpbroker.protocol import properties

    _broker, publisher, consumer = _burst_setup()
    scans: list[bytes] = []
    scan = properties.scan_properties

    def counting_scan(header: bytes) -> properties.PropertyView:
        scans.append(header)
        return scan(header)

    monkeypatch.setattr(properties, "scan_properties", counting_scan)
    bodies = [b"%02d" % i for i in range(10)]
    # Same layout, different message ids and timestamps: one scan.
    publisher.receive_data(
        b"".join(
            _publish(
                1, "k", _props_header(body, message_id=f"id-{i:04d}", timestamp=_when(i)), body
            )
            for i, body in enumerate(bodies)
        )
    )
    assert len(scans) == 1
    assert [body for _tag, body in _deliveries(consumer.proto.take_output())] == bodies
    # Another string length: scanned again.
    publisher.receive_data(_publish(1, "k", _props_header(b"xx", message_id="id-12345"), b"xx"))
    assert len(scans) == 2
    assert not publisher.proto.closing


@pytest.mark.parametrize(
    ("good", "bad", "reply_code"),
    [
        ({"user_id": "guest"}, {"user_id": "bobby"}, 406),
        ({"expiration": "1000"}, {"expiration": "ab12"}, 406),
        ({"headers": {"a": 1}}, {"headers": {"a": 2}}, None),  # a valid one: passes
    ],
)
def test_value_checked_properties_are_checked_every_time(
    good: dict[str, object], bad: dict[str, object], reply_code: int | None
) -> None:
    _broker, publisher, consumer = _burst_setup()
    first = _props_header(b"xx", **good)
    second = _props_header(b"xx", **bad)
    assert len(first) == len(second)
    publisher.receive_data(_publish(1, "k", first, b"xx") + _publish(1, "k", second, b"yy"))
    out = publisher.proto.take_output()
    delivered = [body for _tag, body in _deliveries(consumer.proto.take_output())]
    if reply_code is None:
        assert out == b"" and delivered == [b"xx", b"yy"]
    else:
        assert delivered == [b"xx"]
        assert out.startswith(struct.pack(">BHIHHH", 1, 1, len(out) - 8, 20, 40, reply_code))


def test_a_malformed_header_of_the_same_length_is_refused() -> None:
    _broker, publisher, consumer = _burst_setup()
    good = _props_header(b"xx", message_id="abcd", app_id="ef")
    # The message_id's length octet says 5: the layout no longer adds up.
    bad = good[:14] + b"\x05" + good[15:]
    publisher.receive_data(_publish(1, "k", good, b"xx") + _publish(1, "k", bad, b"yy"))
    assert [body for _tag, body in _deliveries(consumer.proto.take_output())] == [b"xx"]
    out = publisher.proto.take_output()
    assert struct.unpack_from(">HHH", out, 7) == (10, 50, 541)  # connection.close


# ------------------------------------------------- publish caches vs the general path

# Property sets whose checks pass, fail (406 user_id / expiration, 541 malformed),
# or share a layout with one that passed.
_PROPERTIES: list[dict[str, object]] = [
    {},
    {"message_id": "id-1"},
    {"message_id": "id-2"},
    {"message_id": "id-333", "app_id": "a"},
    {"user_id": "guest"},
    {"user_id": "bobby"},
    {"expiration": "1000"},
    {"expiration": "ab12"},
    {"headers": {"a": 1}},
    {"content_type": "text/plain", "message_id": "id-1"},
]
_MALFORMED = len(_PROPERTIES)  # the message_id's length octet off by one


def _raw_publish(
    channel: int, exchange: str, key: str, mandatory: bool, header: bytes, body: bytes
) -> list[bytes]:
    method = struct.pack(">HHH", 60, 40, 0) + bytes((len(exchange),)) + exchange.encode()
    method += bytes((len(key),)) + key.encode() + bytes((1 if mandatory else 0,))
    return [
        framing.encode_frame(framing.FRAME_METHOD, channel, method),
        framing.encode_frame(framing.FRAME_HEADER, channel, header),
        framing.encode_frame(framing.FRAME_BODY, channel, body),
    ]


def _header_for(which: int, body: bytes) -> bytes:
    if which == _MALFORMED:
        good = _props_header(body, message_id="abcd", app_id="ef")
        return good[:14] + b"\x05" + good[15:]
    return _props_header(body, **_PROPERTIES[which])  # type: ignore[arg-type]


def _run(
    publishes: list[tuple[int, str, str, bool, int, bytes]], general: bool
) -> tuple[bytes, bytes]:
    _broker, publisher, consumer = _burst_setup()
    publisher.receive_data(_method(2, method_codec.make_method(commands.Channel.Open)))
    publisher.proto.take_output()
    frames = [
        frame
        for channel, exchange, key, mandatory, which, body in publishes
        for frame in _raw_publish(channel, exchange, key, mandatory, _header_for(which, body), body)
    ]
    if general:
        # One frame per read: nothing is taken whole (reader.OTHER), and every check
        # starts from an empty cache.
        for frame in frames:
            publisher.publish_cache = PublishCache(publisher.publish_cache.vhost, "guest")
            publisher.receive_data(frame)
    else:
        publisher.receive_data(b"".join(frames))
    return publisher.proto.take_output(), consumer.proto.take_output()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 2]),
            st.sampled_from(["x", "x", "x", "gone"]),
            st.sampled_from(["k", "k", "none"]),
            st.booleans(),
            st.integers(0, _MALFORMED),
            st.sampled_from([b"a", b"bb"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_publish_caches_agree_with_the_general_path(
    publishes: list[tuple[int, str, str, bool, int, bytes]],
) -> None:
    # Decoded methods (PublishCache.fields) are reused while the frame reader says
    # publishes repeat, and property bytes or layouts that passed (properties,
    # shape) while headers match them: what clients see --
    # deliveries, returns, channel and connection closes -- must be what publishes
    # taken one frame at a time and checked from scratch give.
    assert _run(publishes, general=False) == _run(publishes, general=True)
