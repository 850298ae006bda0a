"""What a queue's x-arguments ask for, read once when the queue is created.

RabbitMQ checks a new queue's declare in this order (3.10, every text below was
seen on a real broker):

1. a server-named (empty name) quorum queue: ``Cannot declare a server-named queue
   for type rabbit_quorum_queue``;
2. the type of ``x-dead-letter-exchange`` (``invalid type 'signedint' for arg
   'x-dead-letter-exchange' in queue 'q' in vhost '/'``);
3. the values of the common arguments the queue type accepts
   (``validate_queue_arguments``), in RabbitMQ's order;
4. arguments another queue type owns, in the client's order: ``invalid arg
   'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue``
   (so a quorum queue's ``x-max-priority: 300`` is refused for its type, not for
   its value);
5. quorum only: the values of the quorum arguments, then ``invalid property
   'auto-delete' | 'exclusive-owner' | 'non-durable' for queue 'q' in vhost '/'``.

Streams are a different thing altogether (an append-only log read from an offset);
this broker does not implement them and says so with the 406 RabbitMQ gives for a
queue type it does not know: ``invalid arg 'x-queue-type' for queue 'q' in vhost
'/': "unsupported queue type 'stream'"``, so a client fails at declare, clearly,
instead of getting a queue that behaves like a classic one.

:class:`QueueOptions` is the parsed result.  ``needs_features`` tells
``queue_kinds.make_queue`` whether the queue stays plain (the fast path) or starts
with rules (:class:`~amqpbroker.broker.features.FeatureRules`): that decision is
taken here, once, and never per message.
"""

from __future__ import annotations

from typing import Any

import attrs

from .. import errors
from ..versions import DEFAULT_BEHAVIOUR, Behaviour
from .args_equivalence import amqp_type

CLASSIC = "classic"
QUORUM = "quorum"
STREAM = "stream"

DROP_HEAD = "drop-head"
REJECT_PUBLISH = "reject-publish"
REJECT_PUBLISH_DLX = "reject-publish-dlx"

# The arguments each queue type accepts (rabbit_*_queue:capabilities() in 3.10); an
# argument some type knows but this one does not is refused.  Unknown ones pass.
_CLASSIC_ARGS = frozenset(
    {
        "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
        "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
        "x-single-active-consumer", "x-queue-type", "x-queue-version",
        "x-queue-master-locator",
    }
)  # fmt: skip
_QUORUM_ARGS = frozenset(
    {
        "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy",
        "x-expires", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
        "x-max-in-memory-bytes", "x-overflow", "x-single-active-consumer", "x-queue-type",
        "x-quorum-initial-group-size", "x-delivery-limit", "x-message-ttl",
        "x-queue-leader-locator",
    }
)  # fmt: skip
_STREAM_ARGS = frozenset(
    {
        "x-queue-type", "x-max-length-bytes", "x-max-age", "x-stream-max-segment-size-bytes",
        "x-initial-cluster-size", "x-queue-leader-locator",
    }
)  # fmt: skip
_KNOWN_ARGS = _CLASSIC_ARGS | _QUORUM_ARGS | _STREAM_ARGS
_TYPE_MODULES = {CLASSIC: "rabbit_classic_queue", QUORUM: "rabbit_quorum_queue"}
_DLX_STRATEGIES = frozenset({"at-most-once", "at-least-once"})
_LEADER_LOCATORS = frozenset({"client-local", "random", "least-leaders"})


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


@attrs.frozen
class QueueOptions:
    """The queue features its arguments turn on (None: off)."""

    queue_type: str = CLASSIC
    message_ttl: int | None = None  # ms
    expires: int | None = None  # ms
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: str = DROP_HEAD
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    max_priority: int | None = None
    single_active: bool = False
    delivery_limit: int | None = None
    # Quorum queues as the RabbitMQ release runs them (versions.py): returned messages
    # are served before the rest (4.x) or join the back (3.10); basic.get shows
    # x-delivery-count 0 on a message never returned (3.10) or leaves it out (4.x).
    returns_first: bool = False
    zero_delivery_count: bool = True

    @property
    def quorum(self) -> bool:
        return self.queue_type == QUORUM

    @property
    def needs_features(self) -> bool:
        return self != PLAIN

    @property
    def limited(self) -> bool:
        return self.max_length is not None or self.max_length_bytes is not None


# No features: what a queue declared without arguments has, and what a plain queue
# gains when a message with its own TTL reaches it (features.enable_rules).
PLAIN = QueueOptions()


def queue_type_of(arguments: dict[str, Any]) -> str:
    value = arguments.get("x-queue-type")
    return _text(value) if isinstance(value, str | bytes | bytearray) else CLASSIC


def _delivery_limit(value: Any, behaviour: Behaviour) -> int | None:
    limit = _int(value)
    if limit is None:
        return behaviour.quorum_default_delivery_limit
    if limit < 0 and behaviour.quorum_negative_limit_unlimited:
        return None
    return limit


def options_from(
    arguments: dict[str, Any], behaviour: Behaviour = DEFAULT_BEHAVIOUR
) -> QueueOptions:
    """The features of a queue with these (already validated) arguments, under the
    delivery-limit rules of ``behaviour``'s RabbitMQ release.

    Also used when recovering durable queues, whose arguments were valid when
    declared.  Values of the wrong type are ignored, as RabbitMQ ignores an
    ``x-delivery-limit`` it cannot read.
    """
    if not arguments:
        return PLAIN
    queue_type = queue_type_of(arguments)
    dlx = arguments.get("x-dead-letter-exchange")
    dlrk = arguments.get("x-dead-letter-routing-key")
    overflow = arguments.get("x-overflow")
    overflow = _text(overflow) if isinstance(overflow, str | bytes | bytearray) else DROP_HEAD
    if queue_type == QUORUM and overflow == REJECT_PUBLISH_DLX:
        overflow = DROP_HEAD  # RabbitMQ 3.10's quorum queues drop the head instead
    return QueueOptions(
        queue_type=queue_type,
        message_ttl=_int(arguments.get("x-message-ttl")),
        expires=_int(arguments.get("x-expires")),
        max_length=_int(arguments.get("x-max-length")),
        max_length_bytes=_int(arguments.get("x-max-length-bytes")),
        overflow=overflow,
        dead_letter_exchange=_text(dlx) if isinstance(dlx, str | bytes | bytearray) else None,
        dead_letter_routing_key=(
            _text(dlrk) if isinstance(dlrk, str | bytes | bytearray) else None
        ),
        max_priority=_int(arguments.get("x-max-priority")) if queue_type == CLASSIC else None,
        single_active=arguments.get("x-single-active-consumer") is True,
        delivery_limit=(
            _delivery_limit(arguments.get("x-delivery-limit"), behaviour)
            if queue_type == QUORUM
            else None
        ),
        returns_first=queue_type == QUORUM and behaviour.quorum_returns_first,
        zero_delivery_count=queue_type != QUORUM or behaviour.quorum_zero_delivery_count,
    )


# ------------------------------------------------------------------ validation


# ------------------------------------------ the common arguments' values (step 3)

# rabbit_misc's ceiling for x-message-ttl / x-expires (ten years in ms).
_MAX_EXPIRY = 315_360_000_000
_MAX_PRIORITY = 255
_OVERFLOW_MODES = frozenset({"drop-head", "reject-publish", "reject-publish-dlx"})
_QUEUE_MODES = frozenset({"default", "lazy"})
_QUEUE_TYPES = frozenset({"classic", "quorum", "stream"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(value: Any) -> str | int:
    """The value as an int, or RabbitMQ's complaint about its type."""
    if not _is_int(value):
        return f'"expected integer, got {amqp_type(value)}"'
    return int(value)


def _check_expiry(value: Any, zero_allowed: bool) -> str | None:
    number = _integer(value)
    if isinstance(number, str):
        return number
    if number == 0 and not zero_allowed:
        return "{value_zero,0}"
    if number < 0:
        return f"{{value_negative,{number}}}"
    if number > _MAX_EXPIRY:
        return f"{{value_too_large,{number}}}"
    return None


def _check_non_negative(value: Any) -> str | None:
    number = _integer(value)
    if isinstance(number, str):
        return number
    return f"{{value_negative,{number}}}" if number < 0 else None


def _check_priority(value: Any) -> str | None:
    problem = _check_non_negative(value)
    if problem is None and int(value) > _MAX_PRIORITY:
        return f"{{max_value_exceeded,{int(value)}}}"
    return problem


def _check_choice(value: Any, choices: frozenset[str], complaint: str) -> str | None:
    if not isinstance(value, str | bytes | bytearray):
        return f"{{unacceptable_type,{amqp_type(value)}}}"
    text = _text(value)
    return None if text in choices else complaint.format(text)


def _check_string(value: Any) -> str | None:
    if isinstance(value, str | bytes | bytearray):
        return None
    return f"{{unacceptable_type,{amqp_type(value)}}}"


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{{unacceptable_type,{amqp_type(value)}}}"


def _check_version(value: Any, versions: tuple[int, ...]) -> str | None:
    number = _integer(value)
    if isinstance(number, str):
        return number
    return None if number in versions else f"\"unsupported queue version '{number}'\""


# In the order RabbitMQ 3.10 checks them (rabbit_amqqueue:declare_args), since only
# the first failure is reported.
_QUEUE_ARGUMENT_CHECKS: tuple[tuple[str, Any], ...] = (
    ("x-expires", lambda v: _check_expiry(v, zero_allowed=False)),
    ("x-message-ttl", lambda v: _check_expiry(v, zero_allowed=True)),
    ("x-dead-letter-exchange", None),  # its own message format, see below
    ("x-dead-letter-routing-key", _check_string),
    ("x-max-length", _check_non_negative),
    ("x-max-length-bytes", _check_non_negative),
    ("x-max-priority", _check_priority),
    ("x-overflow", lambda v: _check_choice(v, _OVERFLOW_MODES, "invalid_overflow")),
    (
        "x-queue-mode",
        lambda v: _check_choice(v, _QUEUE_MODES, "\"unsupported queue mode '{}'\""),
    ),
    ("x-single-active-consumer", _check_bool),
    (
        "x-queue-type",
        lambda v: _check_choice(v, _QUEUE_TYPES, "\"unsupported queue type '{}'\""),
    ),
    ("x-queue-version", _check_version),  # given the release's versions, below
)


def validate_queue_arguments(
    name: str, vhost: str, arguments: dict[str, Any], behaviour: Behaviour = DEFAULT_BEHAVIOUR
) -> None:
    """Refuse the x-arguments RabbitMQ 3.10 refuses when it creates a classic queue
    (406, with its texts, checked against a real broker), and the classic queue
    versions ``behaviour``'s release no longer has.  Unknown arguments pass."""
    dlx = arguments.get("x-dead-letter-exchange")
    for key, check in _QUEUE_ARGUMENT_CHECKS:
        if key not in arguments:
            continue
        if check is None:
            if _check_string(dlx) is not None:
                raise errors.PreconditionFailed(
                    f"invalid type '{amqp_type(dlx)}' for arg 'x-dead-letter-exchange' in "
                    f"queue '{name}' in vhost '{vhost}'"
                )
            continue
        if key == "x-queue-version":
            problem = check(arguments[key], behaviour.classic_queue_versions)
        else:
            problem = check(arguments[key])
        if problem is None and key == "x-dead-letter-routing-key" and dlx is None:
            problem = "routing_key_but_no_dlx_defined"
        if problem is not None:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for queue '{name}' in vhost '{vhost}': {problem}"
            )


# rabbit_deprecated_features' warning for a denied_by_default feature, at v4.3.5.
TRANSIENT_NONEXCLUSIVE_DENIED = (
    "Feature `transient_nonexcl_queues` is deprecated.\n"
    "By default, this feature is not permitted anymore.\n"
    "The feature will be removed from a future major RabbitMQ version, regardless of the "
    "configuration; actual version to be determined.\n"
    "To continue using this feature when it is not permitted by default, set the "
    "following parameter in your configuration:\n"
    '    "deprecated_features.permit.transient_nonexcl_queues = true"'
)


def _where(name: str, vhost: str) -> str:
    return f"queue '{name}' in vhost '{vhost}'"


def check_server_named(arguments: dict[str, Any]) -> None:
    """An empty queue name asks the broker for one; quorum queues cannot have that."""
    if queue_type_of(arguments) == QUORUM:
        raise errors.PreconditionFailed(
            "Cannot declare a server-named queue for type rabbit_quorum_queue"
        )


def _non_negative(value: Any) -> str | None:
    number = _int(value)
    if number is None:
        return f'"expected integer, got {amqp_type(value)}"'
    return f"{{value_negative,{number}}}" if number < 0 else None


def _group_size(value: Any) -> str | None:
    problem = _non_negative(value)
    if problem is None and int(value) == 0:
        return "{value_zero,0}"
    return problem


def _choice(value: Any, choices: frozenset[str], complaint: str) -> str | None:
    if not isinstance(value, str | bytes | bytearray):
        return f"{{unacceptable_type,{amqp_type(value)}}}"
    return None if _text(value) in choices else complaint


_QUORUM_CHECKS = (
    ("x-max-in-memory-length", _non_negative),
    ("x-max-in-memory-bytes", _non_negative),
    ("x-quorum-initial-group-size", _group_size),
    ("x-dead-letter-strategy", lambda v: _choice(v, _DLX_STRATEGIES, "invalid_dlx_strategy")),
    (
        "x-queue-leader-locator",
        lambda v: _choice(v, _LEADER_LOCATORS, "invalid_queue_locator_arg"),
    ),
)


def check_new_queue(
    name: str,
    vhost: str,
    arguments: dict[str, Any],
    *,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    behaviour: Behaviour = DEFAULT_BEHAVIOUR,
) -> QueueOptions:
    """Steps 2 to 5 of the module doc for a queue about to be created; returns its
    options (``behaviour``: the RabbitMQ release's defaults).  Raises
    PreconditionFailed with RabbitMQ's texts."""
    queue_type = queue_type_of(arguments)
    where = _where(name, vhost)
    dlx = arguments.get("x-dead-letter-exchange", "")
    if not isinstance(dlx, str | bytes | bytearray):
        raise errors.PreconditionFailed(
            f"invalid type '{amqp_type(dlx)}' for arg 'x-dead-letter-exchange' in {where}"
        )
    accepted = _QUORUM_ARGS if queue_type == QUORUM else _CLASSIC_ARGS
    validate_queue_arguments(
        name,
        vhost,
        {k: v for k, v in arguments.items() if k in accepted or k not in _KNOWN_ARGS},
        behaviour,
    )
    if queue_type == STREAM:
        raise errors.PreconditionFailed(
            f"invalid arg 'x-queue-type' for {where}: \"unsupported queue type 'stream'\""
        )
    for key in arguments:
        if key in _KNOWN_ARGS and key not in accepted:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for {where} of queue type {_TYPE_MODULES[queue_type]}"
            )
    if queue_type == QUORUM:
        for key, check in _QUORUM_CHECKS:
            if key in arguments:
                problem = check(arguments[key])
                if problem is not None:
                    raise errors.PreconditionFailed(f"invalid arg '{key}' for {where}: {problem}")
        for bad, prop in (
            (auto_delete, "auto-delete"),
            (exclusive, "exclusive-owner"),
            (not durable, "non-durable"),
        ):
            if bad:
                raise errors.PreconditionFailed(f"invalid property '{prop}' for {where}")
    if not (durable or exclusive or behaviour.transient_nonexclusive_queues):
        # 4.3: a deprecated feature denied by default (rabbit_amqqueue:declare answers
        # internal_error with the deprecation warning; the reply text is cut at 255).
        raise errors.InternalError(TRANSIENT_NONEXCLUSIVE_DENIED)
    return options_from(arguments, behaviour)
