"""What clients can tell apart between the RabbitMQ releases we mimic: one table.

``--rabbitmq-version`` (``Settings.rabbitmq_version``) picks a row; the broker and
every connection hold that row (``broker.behaviour``, ``session.behaviour``) and the
handlers read its fields as data.  No handler compares version strings: a new
difference is one more field here, one value per row, and the code that reads it.

Where each value comes from (spec/compatibility.toml says the same per row):

* 3.10 and 4.0: observed side by side on RabbitMQ 3.10.8 and 4.0.5 (raw sockets and
  pika), unless a field's comment says "source".
* 4.1, 4.2, 4.3: RabbitMQ's release notes and source (deps/rabbit/src at the
  v4.1.8, v4.2.9 and v4.3.5 tags); no such broker runs here to check them.
"""

from __future__ import annotations

import attrs

from . import errors

# A client's 0-9-1 protocol header, and the one we answer a header we refuse with
# (the spec: "respond with a valid protocol header and then close").
AMQP_091_HEADER = b"AMQP\x00\x00\x09\x01"
# AMQP 1.0's SASL header: what RabbitMQ 4.x answers any other header with, as the
# 1.0 it speaks too requires SASL (rabbit_reader:refuse_connection/2 since 4.0).
AMQP_10_SASL_HEADER = b"AMQP\x03\x01\x00\x00"

MiB = 1024 * 1024


@attrs.frozen
class Behaviour:
    """One RabbitMQ release, as far as clients can tell it apart from the others."""

    # "4.0": what --rabbitmq-version takes.
    name: str
    # The release reported in connection.start's server properties and by the
    # management API (overview, definitions, metrics).
    full_version: str
    # SASL mechanisms in connection.start, in RabbitMQ's order (3.10: PLAIN AMQPLAIN;
    # 4.0.5: its registry's order, which differs between nodes: AMQPLAIN PLAIN
    # ANONYMOUS on the reference here, AMQPLAIN ANONYMOUS PLAIN on another).
    mechanisms: tuple[str, ...]
    # Who SASL ANONYMOUS logs in as: (user, password) checked like a PLAIN login
    # (RabbitMQ 4's anonymous_login_user / _pass defaults, so loopback rules apply).
    anonymous_login: tuple[str, str] | None
    # exchange.declare of a type no module implements: 3.10 closes the connection
    # (503 COMMAND_INVALID), 4.x only the channel (406 PRECONDITION_FAILED).
    unknown_exchange_type_error: type[errors.AMQPError]
    # A protocol header we do not speak: 3.10 answers the 0-9-1 header to any;
    # 4.x only to "AMQP" 0 0 >=9 x, and the AMQP 1.0 SASL header to the rest.
    amqp10_refusal: bool
    # Dead lettering adds x-last-death-reason / -queue / -exchange (4.x; 3.13+).
    last_death_headers: bool
    # x-death, x-first-death-* and x-last-death-* in a message a publisher sent are
    # taken as its history (3.10: counts go on from them) or replaced (4.x: the
    # broker keeps deaths as annotations and rewrites the headers from them).
    publisher_deaths_kept: bool
    # The keys of one x-death entry, in the order the release writes them (3.10:
    # sorted; 4.0: original-expiration first, then as listed).
    x_death_key_order: tuple[str, ...]
    # A delivered message's headers table has its keys sorted bytewise (4.x: the
    # message container re-encodes the headers it parsed; nested tables keep their
    # order).  3.10 forwards the publisher's bytes.
    sorted_header_tables: bool
    # Quorum queues without x-delivery-limit: None = unlimited (3.10); 4.0 sets 20
    # (x-delivery-limit -1 turns it off again).
    quorum_default_delivery_limit: int | None
    # A negative x-delivery-limit: unlimited (4.x) or exceeded at the first return
    # (3.10 delivers once, then drops it).
    quorum_negative_limit_unlimited: bool
    # A quorum queue serves returned (nacked, rejected with requeue, cancelled)
    # messages before the others, in the order they came back (4.x's rabbit_fifo
    # returns queue), or puts them at the back (3.10).
    quorum_returns_first: bool
    # basic.get from a quorum queue adds x-delivery-count 0 to a message never
    # returned (3.10) or adds the header only once it is 1 or more (4.0).
    quorum_zero_delivery_count: bool
    # basic.publish body limit when --max-message-size is not given.
    max_message_size: int
    # Frames before connection.tune-ok may be this big, and tune-ok may not ask
    # for less (rabbit_framing.hrl's FRAME_MIN_SIZE: 4096, 8192 from 4.1; source).
    frame_min_size: int
    # A mandatory publish to an amq.rabbitmq.reply-to.* name counts as routed
    # without looking for the requester (4.2; release notes).
    reply_to_mandatory_routed: bool
    # x-queue-version values a classic queue may ask for (4.3 removed version 1;
    # rabbit_amqqueue:check_queue_version at v4.3.5).
    classic_queue_versions: tuple[int, ...]
    # Non-durable, non-exclusive queues may be declared (4.3: a deprecated feature
    # denied by default: 541 with the deprecation warning; release notes and source).
    transient_nonexclusive_queues: bool
    # basic.qos global=true limits the channel (3.10-4.2), or acts as global=false
    # (4.3: the global_qos deprecated feature is denied by default; rabbit_channel).
    global_qos: bool
    # A passive queue / exchange declare needs some permission (read, write or
    # configure) on the name (4.3; rabbit_channel at v4.3.5), or none before.
    passive_declare_needs_access: bool

    def refusal_header(self, header: bytes) -> bytes:
        """The protocol header to answer an unsupported 8-byte ``header`` with."""
        if not self.amqp10_refusal:
            return AMQP_091_HEADER
        if header[:4] == b"AMQP" and header[4] == 0 and header[5] == 0 and header[6] >= 9:
            return AMQP_091_HEADER
        return AMQP_10_SASL_HEADER


_X_DEATH_SORTED = (
    "count",
    "exchange",
    "original-expiration",
    "queue",
    "reason",
    "routing-keys",
    "time",
)
_X_DEATH_4 = ("original-expiration", "count", "reason", "queue", "time", "exchange", "routing-keys")

V3_10 = Behaviour(
    name="3.10",
    full_version="3.10.8",
    mechanisms=("PLAIN", "AMQPLAIN"),
    anonymous_login=None,
    unknown_exchange_type_error=errors.CommandInvalid,
    amqp10_refusal=False,
    last_death_headers=False,
    publisher_deaths_kept=True,
    x_death_key_order=_X_DEATH_SORTED,
    sorted_header_tables=False,
    quorum_default_delivery_limit=None,
    quorum_negative_limit_unlimited=False,
    quorum_returns_first=False,
    quorum_zero_delivery_count=True,
    max_message_size=128 * MiB,
    frame_min_size=4096,
    reply_to_mandatory_routed=False,
    classic_queue_versions=(1, 2),
    transient_nonexclusive_queues=True,
    global_qos=True,
    passive_declare_needs_access=False,
)
V4_0 = attrs.evolve(
    V3_10,
    name="4.0",
    full_version="4.0.5",
    mechanisms=("AMQPLAIN", "PLAIN", "ANONYMOUS"),
    anonymous_login=("guest", "guest"),
    unknown_exchange_type_error=errors.PreconditionFailed,
    amqp10_refusal=True,
    last_death_headers=True,
    publisher_deaths_kept=False,
    x_death_key_order=_X_DEATH_4,
    sorted_header_tables=True,
    quorum_default_delivery_limit=20,
    quorum_negative_limit_unlimited=True,
    quorum_returns_first=True,
    quorum_zero_delivery_count=False,
    max_message_size=16 * MiB,
)
V4_1 = attrs.evolve(V4_0, name="4.1", full_version="4.1.8", frame_min_size=8192)
V4_2 = attrs.evolve(V4_1, name="4.2", full_version="4.2.9", reply_to_mandatory_routed=True)
V4_3 = attrs.evolve(
    V4_2,
    name="4.3",
    full_version="4.3.5",
    classic_queue_versions=(2,),
    transient_nonexclusive_queues=False,
    global_qos=False,
    passive_declare_needs_access=True,
)

VERSIONS: dict[str, Behaviour] = {v.name: v for v in (V3_10, V4_0, V4_1, V4_2, V4_3)}
# The newest release a real broker here can be compared with side by side.
DEFAULT_VERSION = "4.0"
DEFAULT_BEHAVIOUR = VERSIONS[DEFAULT_VERSION]


def behaviour(version: str) -> Behaviour:
    """The row for ``version`` ("4.0", or a full "4.0.5" of that series).

    Error handling: an unknown version raises ValueError naming the known ones.
    """
    row = VERSIONS.get(version) or VERSIONS.get(".".join(version.split(".")[:2]))
    if row is None:
        raise ValueError(
            f"unknown RabbitMQ version {version!r}; choose one of {', '.join(VERSIONS)}"
        )
    return row
