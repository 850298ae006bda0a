"""pytest plugin: an AMQP broker for every test, isolated per test, no setup.

Installed with amqpbroker (entry point ``pytest11``), so these fixtures are there
in any suite of the environment:

``amqp_url``
    An ``amqp://`` URL to a virtual host made for this test and deleted after it:
    tests never see each other's queues, exchanges or messages.  Hand it to pika,
    aio-pika, kombu or Celery as the broker URL.
``amqp_vhost``
    The name of that virtual host.
``amqp_broker`` (session)
    The broker: an embedded :class:`amqpbroker.Broker` (started on first use,
    ~2 ms), or an :class:`~amqpbroker.testing.external.ExternalBroker`.
``amqp_inspector``
    A :class:`~amqpbroker.testing.BrokerInspector` on the test's vhost: queues,
    bindings and messages without consuming them, the messages published to an
    exchange, and ``wait_for_*``.  Needs the embedded broker; the test is skipped
    when the suite runs against an external one.
``amqp_clock``
    The broker's clock, frozen for this test: ``amqp_clock.advance(seconds)``
    moves broker time and runs what falls due (message and queue TTLs,
    ``x-expires``, consumer timeouts), in order, before it returns.  Heartbeats
    stay on real time.  After the test the clock follows real time again, ahead by
    what the test advanced (broker time never goes back).  Needs the embedded
    broker (skipped against an external one).
``amqp_faults``
    Faults on demand (:class:`~amqpbroker.testing.faults.Faults`):
    ``close_connections()`` (320 CONNECTION_FORCED, as RabbitMQ's force-close),
    ``kill_connections()`` (TCP reset, no close frame), ``restart()`` (same port,
    durable state kept), ``block_publishers()`` / ``unblock_publishers()`` (a
    memory alarm).  When any collected test uses it, the session's embedded broker
    keeps its durable state in a temporary data dir, so that restarts keep it.

The embedded broker's settings (``amqpbroker.config.Settings``: limits, consumer
timeout, ...) come from the ini option ``amqp_broker_settings``, one
``name = value`` a line, and ``--amqp-setting name=value`` on the command line::

    [tool.pytest.ini_options]
    amqp_broker_settings = [
        "consumer_timeout = 60000",
        "max_connections = 100",
    ]

The embedded broker behaves as RabbitMQ 4.0 unless told otherwise: pick another
release for the whole suite with ``--amqp-rabbitmq-version 3.10`` (or the ini option
``amqp_rabbitmq_version``), and for one test or module with the marker
``@pytest.mark.rabbitmq_version("3.10")`` (its ``amqp_*`` fixtures then use an
embedded broker of that release, started once per session; the marker does not
change an external broker).

Run the same tests against another broker, e.g. a real RabbitMQ::

    pytest --amqp-url amqp://guest:guest@localhost:5672/ \\
           --amqp-management-url http://guest:guest@localhost:15672/

(or the environment variables ``AMQPBROKER_TEST_URL`` and
``AMQPBROKER_TEST_MANAGEMENT_URL``; a command-line option wins over its variable).
With a management URL every test gets a fresh vhost there, created and deleted
through the management API, just as with the embedded broker.  Without one,
every test shares the URL's vhost, and ``amqp_url`` leads through a loopback
relay that notes the queues and exchanges the test declares: after the test its
connections are cut and those are deleted (so do not point it at a vhost that
holds queues you want to keep).  Over ``amqps://`` without a management URL
nothing is cleaned up.

Import cost: this module imports nothing beyond the standard library and pytest;
the broker (trio, pamqp) is imported only when a fixture is first used.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Union

import pytest

if TYPE_CHECKING:
    from ..broker.timers import ManualClock
    from ..embed import Broker
    from .external import ExternalBroker
    from .faults import Faults
    from .helpers import BrokerInspector

    AnyBroker = Union[Broker, ExternalBroker]  # noqa: UP007 (a runtime-free alias)

URL_ENV = "AMQPBROKER_TEST_URL"
VERSION_OPTION = "--amqp-rabbitmq-version"
VERSION_INI = "amqp_rabbitmq_version"
VERSION_MARKER = "rabbitmq_version"
MANAGEMENT_URL_ENV = "AMQPBROKER_TEST_MANAGEMENT_URL"
# Vhost names carry the test's name, cut to this length, to make a broker's logs
# and errors ("no queue 'x' in vhost '...'") point at the test.
VHOST_NAME_MAX = 60

_vhost_numbers = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("amqpbroker", "AMQP broker fixtures (amqpbroker)")
    group.addoption(
        "--amqp-url",
        default=None,
        metavar="URL",
        help=(
            "run the amqp_* fixtures against the broker at URL (e.g. a real RabbitMQ) "
            f"instead of an embedded amqpbroker [env {URL_ENV}]"
        ),
    )
    group.addoption(
        "--amqp-management-url",
        default=None,
        metavar="URL",
        help=(
            "RabbitMQ management API of the --amqp-url broker, e.g. "
            "http://guest:guest@localhost:15672; gives each test a vhost of its own "
            f"there [env {MANAGEMENT_URL_ENV}]"
        ),
    )
    group.addoption(
        VERSION_OPTION,
        default=None,
        metavar="VERSION",
        help="the RabbitMQ release the embedded broker behaves as: 3.10, 4.0 (default), "
        f"4.1, 4.2 or 4.3 [ini {VERSION_INI}]",
    )
    parser.addini(VERSION_INI, "RabbitMQ release the embedded broker behaves as (4.0)")
    group.addoption(
        "--amqp-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the embedded broker, e.g. consumer_timeout=60000 (repeatable; "
        "wins over the ini's amqp_broker_settings)",
    )
    parser.addini(
        "amqp_broker_settings",
        type="linelist",
        default=[],
        help="settings of the embedded amqpbroker, one 'name = value' a line "
        "(fields of amqpbroker.config.Settings, e.g. consumer_timeout = 60000)",
    )


# Settings the plugin decides itself: where the broker listens and what it stores.
_NOT_SETTABLE = frozenset({"host", "port"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _convert(name: str, kind: str, text: str) -> Any:
    optional = kind.endswith("| None")
    if optional and text.lower() in ("", "none"):
        return None
    base = kind.removesuffix("| None").strip()
    if base == "bool":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError("true or false")
    if base == "int":
        return int(text)
    if base == "float":
        return float(text)
    if base.startswith("tuple"):
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text


def embedded_settings(config: pytest.Config) -> dict[str, Any]:
    """The embedded broker's settings from the ini file and the command line.

    Error handling: an unknown name or a value of the wrong type is a usage error
    naming the setting."""
    lines = [*config.getini("amqp_broker_settings"), *config.getoption("--amqp-setting")]
    if not lines:
        return {}
    import attrs

    from ..config import Settings

    fields = {f.name: str(f.type) for f in attrs.fields(Settings) if f.name not in _NOT_SETTABLE}
    settings: dict[str, Any] = {}
    for line in lines:
        name, sep, text = (part.strip() for part in line.partition("="))
        if not sep or name not in fields:
            raise pytest.UsageError(
                f"amqp broker setting {line!r}: expected 'name = value' with a name among "
                + ", ".join(sorted(fields))
            )
        try:
            settings[name] = _convert(name, fields[name], text)
        except ValueError as exc:
            raise pytest.UsageError(
                f"amqp broker setting {name}: {text!r} is not a valid {fields[name]} ({exc})"
            ) from None
    return settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{VERSION_MARKER}(version): the test's amqp_* fixtures use an embedded broker "
        "behaving as that RabbitMQ release (e.g. '3.10')",
    )


def configured_version(config: pytest.Config) -> str | None:
    """The release chosen for the session (option, else ini), or None: the default."""
    value = config.getoption(VERSION_OPTION) or config.getini(VERSION_INI)
    return str(value) if value else None


def marked_version(node: pytest.Item | pytest.Collector) -> str | None:
    """The release a ``rabbitmq_version`` marker on the test (or its module) asks for."""
    marker = node.get_closest_marker(VERSION_MARKER)
    return str(marker.args[0]) if marker is not None else None


def each_version(*versions: str) -> pytest.MarkDecorator:
    """Run a test once per RabbitMQ release, each time with that release's embedded
    broker behind its fixtures; the test may take the release as ``rabbitmq_version``::

        @each_version("3.10", "4.0")
        def test_something(amqp_url, rabbitmq_version): ...
    """
    marker = getattr(pytest.mark, VERSION_MARKER)
    return pytest.mark.parametrize(
        "rabbitmq_version", [pytest.param(v, marks=marker(v), id=f"rabbitmq{v}") for v in versions]
    )


class EmbeddedBrokers:
    """Embedded brokers by RabbitMQ release, each started on first use and all
    stopped by :meth:`close` (320 CONNECTION_FORCED to clients still connected).

    ``settings`` are given to every broker (e.g. ``management=True``).

    Error handling: an unknown release raises ValueError when asked for.
    """

    def __init__(self, default: str | None = None, **settings: Any) -> None:
        self.default = default
        self._settings = settings
        self._brokers: dict[str | None, Broker] = {}
        self._stack = ExitStack()

    def get(self, version: str | None = None) -> Broker:
        key = version or self.default
        broker = self._brokers.get(key)
        if broker is None:
            from ..broker.timers import ManualClock
            from ..embed import Broker

            settings = dict(self._settings)
            data_dir = settings.get("data_dir")
            if key != self.default and isinstance(data_dir, str) and data_dir != ":memory:":
                # Another release's broker: a data dir of its own (one broker per dir).
                settings["data_dir"] = f"{data_dir}-{key}"
            # Real time until a test takes amqp_clock (see there).
            settings.setdefault("clock", ManualClock(frozen=False))
            if key is not None:
                settings["rabbitmq_version"] = key
            broker = self._stack.enter_context(Broker(**settings))
            self._brokers[key] = broker
        return broker

    def close(self) -> None:
        self._brokers.clear()
        self._stack.close()


def _external_urls(config: pytest.Config) -> tuple[str | None, str | None]:
    url = config.getoption("--amqp-url") or os.environ.get(URL_ENV) or None
    management = (
        config.getoption("--amqp-management-url") or os.environ.get(MANAGEMENT_URL_ENV) or None
    )
    return url, management


def pytest_report_header(config: pytest.Config) -> str | None:
    # Only when tests will leave the process: the embedded default needs no line
    # in every suite of the environment.
    url, management = _external_urls(config)
    if url is None:
        settings = embedded_settings(config)
        if not settings:
            return None
        shown = ", ".join(f"{name}={value!r}" for name, value in settings.items())
        return f"amqpbroker fixtures: embedded broker with {shown}"
    from .external import ExternalBroker

    return f"amqpbroker fixtures: external broker {ExternalBroker(url, management).describe()}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:VHOST_NAME_MAX]


def _wants_restarts(session: pytest.Session) -> bool:
    return any("amqp_faults" in getattr(item, "fixturenames", ()) for item in session.items)


@pytest.fixture(scope="session")
def amqp_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AnyBroker]:
    """The broker behind ``amqp_url``: one per session.

    Error handling: an embedded broker that cannot start, or an external one that
    cannot be reached, errors every test that uses it with the reason.
    Resource handling: the embedded broker stops (connections closed with 320
    CONNECTION_FORCED) when the session ends.
    """
    url, management = _external_urls(request.config)
    if url is None:
        brokers: EmbeddedBrokers = request.getfixturevalue("_amqp_embedded_brokers")
        yield brokers.get()
        return
    from .external import ExternalBroker

    external = ExternalBroker(url, management)
    external.check()
    yield external


@pytest.fixture(scope="session")
def _amqp_embedded_brokers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedBrokers]:
    settings = embedded_settings(request.config)
    if _wants_restarts(request.session) and "data_dir" not in settings:
        # amqp_faults.restart() keeps durable state, as RabbitMQ's does. No fsync:
        # the data only has to outlive a clean restart within this session.
        settings["data_dir"] = str(tmp_path_factory.mktemp("amqpbroker-data"))
        settings.setdefault("sync", "off")
    brokers = EmbeddedBrokers(configured_version(request.config), **settings)
    try:
        yield brokers
    finally:
        brokers.close()


@pytest.fixture
def _amqp_test_broker(amqp_broker: AnyBroker, request: pytest.FixtureRequest) -> AnyBroker:
    """``amqp_broker``, or the embedded broker of the release the test is marked with."""
    from .external import ExternalBroker

    version = marked_version(request.node)
    if version is None or isinstance(amqp_broker, ExternalBroker):
        return amqp_broker
    brokers: EmbeddedBrokers = request.getfixturevalue("_amqp_embedded_brokers")
    return brokers.get(version)


@pytest.fixture
def amqp_vhost(_amqp_test_broker: AnyBroker, request: pytest.FixtureRequest) -> Iterator[str]:
    """A vhost for this test alone, deleted (with its connections) after the test.

    Against an external broker without a management URL this is the URL's own vhost,
    shared by all tests and left as the tests leave it.

    Error handling: failing to create or delete the vhost errors the test.
    Resource handling: deleting the vhost closes connections still open to it.
    """
    from .external import ExternalBroker

    amqp_broker = _amqp_test_broker
    number = next(_vhost_numbers)
    if isinstance(amqp_broker, ExternalBroker):
        if not amqp_broker.isolated:
            yield amqp_broker.vhost
            return
        # Unique across processes and machines sharing one RabbitMQ.
        name = f"amqpbroker-test-{os.getpid()}-{os.urandom(3).hex()}-{number}"
    else:
        name = f"test-{number}"
    name = f"{name}-{_slug(request.node.name)}"
    amqp_broker.add_vhost(name)
    try:
        yield name
    finally:
        amqp_broker.delete_vhost(name)


@pytest.fixture
def amqp_url(_amqp_test_broker: AnyBroker, amqp_vhost: str) -> Iterator[str]:
    """``amqp://guest:guest@127.0.0.1:PORT/VHOST``: this test's own vhost (see
    ``amqp_vhost``).

    On an external broker without a management URL the URL leads to a loopback
    relay that notes what the test declares; after the test its connections are
    cut and those queues and exchanges deleted (:mod:`amqpbroker.testing.cleanup`).

    Error handling: a failed cleanup errors the test at teardown.
    Resource handling: the relay and its threads end with the test.
    """
    from .external import ExternalBroker

    amqp_broker = _amqp_test_broker
    if not isinstance(amqp_broker, ExternalBroker) or amqp_broker.isolation != "cleanup":
        yield amqp_broker.url_for(amqp_vhost)
        return
    from .cleanup import DeclarationTracker

    tracker = DeclarationTracker(amqp_broker.host, amqp_broker.port)
    try:
        yield amqp_broker.url_via("127.0.0.1", tracker.port)
    finally:
        tracker.cleanup(amqp_broker.user, amqp_broker.password, amqp_vhost)


@pytest.fixture
def amqp_inspector(_amqp_test_broker: AnyBroker, amqp_vhost: str) -> Iterator[BrokerInspector]:
    """A :class:`~amqpbroker.testing.BrokerInspector` on this test's vhost, recording
    published messages from the start of the test.

    Error handling: skips the test when the fixtures run against an external broker.
    Resource handling: recording stops when the test ends.
    """
    from .external import ExternalBroker

    amqp_broker = _amqp_test_broker
    if isinstance(amqp_broker, ExternalBroker):
        pytest.skip("amqp_inspector looks inside the embedded broker; --amqp-url is set")
    from .helpers import BrokerInspector

    with BrokerInspector(amqp_broker, amqp_vhost) as inspector:
        yield inspector


@pytest.fixture
def amqp_clock(_amqp_test_broker: AnyBroker) -> Iterator[ManualClock]:
    """The embedded broker's :class:`~amqpbroker.ManualClock`, frozen for this test:
    ``advance(seconds)`` moves broker time and runs what falls due before returning.

    Error handling: skips the test against an external broker (RabbitMQ's clock is
    its own); errors it when ``amqp_broker`` was overridden with a broker that has
    no ManualClock.
    Resource handling: the clock follows real time again after the test.
    """
    from ..broker.timers import ManualClock
    from .external import ExternalBroker

    amqp_broker = _amqp_test_broker
    if isinstance(amqp_broker, ExternalBroker):
        pytest.skip("amqp_clock drives the embedded broker's time; --amqp-url is set")
    clock = amqp_broker.clock
    if not isinstance(clock, ManualClock):
        raise pytest.UsageError(
            "amqp_clock needs a broker started with clock=amqpbroker.ManualClock(); "
            f"amqp_broker has {clock!r}"
        )
    clock.freeze()
    try:
        yield clock
    finally:
        clock.unfreeze()


@pytest.fixture
def amqp_faults(amqp_broker: AnyBroker, amqp_vhost: str) -> Iterator[Faults]:
    """Faults on the embedded broker, aimed at this test's vhost (see
    :class:`~amqpbroker.testing.faults.Faults`).

    Error handling: skips the test against an external broker.
    Resource handling: publishers the test blocked are unblocked after it.
    """
    from .external import ExternalBroker

    if isinstance(amqp_broker, ExternalBroker):
        pytest.skip("amqp_faults acts on the embedded broker; --amqp-url is set")
    from .faults import Faults

    faults = Faults(amqp_broker, amqp_vhost)
    try:
        yield faults
    finally:
        faults.close()
