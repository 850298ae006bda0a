"""Command line: ``amqpbroker [--host H] [--port P] [--data-dir D] [--log-level L]``.

Prints exactly one line ``amqpbroker: listening on amqp://HOST:PORT`` on stdout once
it accepts connections (scripts wait for it).  SIGINT / SIGTERM: stop accepting,
close connections with 320 CONNECTION_FORCED, exit 0.  Bad flags or a port in use:
one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import signal
import socket
import sys
from typing import TYPE_CHECKING

import trio

from . import __version__, cli_security
from .broker import queue as queue_module
from .broker.broker import Broker
from .cli_security import port_number
from .config import (
    DEFAULT_CONSUMER_TIMEOUT,
    DEFAULT_MANAGEMENT_MAX_BODY_SIZE,
    DEFAULT_MANAGEMENT_PORT,
    DEFAULT_PORT,
    Settings,
)
from .server.server import Server
from .store import StoreError
from .versions import DEFAULT_VERSION, VERSIONS

if TYPE_CHECKING:
    from .management.context import ManagementContext

EXIT_FAILURE = 1
EXIT_USAGE = 2
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One readable line, not argparse's usage block.
        sys.stderr.write(f"amqpbroker: error: {message} (see amqpbroker --help)\n")
        sys.exit(EXIT_USAGE)


class ListenError(OSError):
    """A listener could not be bound; says which address and why in one line."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        if cause.errno == errno.EADDRINUSE:
            reason = f"port {port} on {host} is already in use"
        else:
            reason = cause.strerror or str(cause)
        super().__init__(cause.errno, f"cannot listen on {host}:{port}: {reason}")

    def __str__(self) -> str:
        return str(self.strerror)


def bind_management(settings: Settings, required: bool = True) -> socket.socket | None:
    """The management API's socket (bound, not yet listening).  Raises ListenError;
    when not ``required`` (the default port, not asked for), a port in use costs only
    the API: a warning, and None (so several brokers can run side by side)."""
    from .management.server import bind

    host, port = settings.management_host, settings.management_port
    try:
        return bind(host, port)
    except OSError as exc:
        if required or exc.errno != errno.EADDRINUSE:
            raise ListenError(host, port, exc) from None
        logging.getLogger("amqpbroker").warning(
            "management API not started: port %d on %s is in use "
            "(--management-port 0 picks a free port)",
            port,
            host,
        )
        return None


async def start_management(
    nursery: trio.Nursery, ctx: ManagementContext, sock: socket.socket, amqp: tuple[str, int]
) -> int:
    """Serve the management API from ``nursery`` on ``sock``; returns its port."""
    from .management.server import serve_management

    ctx.amqp_host, ctx.amqp_port = amqp
    port: int = await nursery.start(serve_management, ctx, sock)
    return port


def _milliseconds(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid milliseconds {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} ms is negative")
    return number


def _window(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid message count {value!r}") from None
    if number < 2:
        raise argparse.ArgumentTypeError(f"a paging window of {number} is below 2 messages")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="amqpbroker", description="An AMQP 0-9-1 broker for RabbitMQ clients.")
    parser.add_argument("--version", action="version", version=f"amqpbroker {__version__}")
    parser.add_argument(
        "--host",
        action="append",
        help="address to listen on (127.0.0.1); may be given more than once; "
        "localhost is both 127.0.0.1 and ::1",
    )
    parser.add_argument(
        "--rabbitmq-version",
        choices=tuple(VERSIONS),
        default=DEFAULT_VERSION,
        help=f"behave as this RabbitMQ release where clients can tell ({DEFAULT_VERSION})",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help=f"AMQP port ({DEFAULT_PORT}); 0 picks a free port",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where durable state lives; ':memory:' keeps nothing on disk",
    )
    parser.add_argument(
        "--transient",
        action="store_true",
        help="keep everything in memory (same as --data-dir :memory:)",
    )
    parser.add_argument(
        "--sync",
        choices=("full", "normal", "off"),
        default="full",
        help="fsync policy of the data store (full)",
    )
    parser.add_argument(
        "--paging-window",
        type=_window,
        default=queue_module.PAGE_OUT_AT,
        metavar="N",
        help="ready messages a durable queue keeps in memory; the rest of a longer queue"
        f" lives only on disk ({queue_module.PAGE_OUT_AT})",
    )
    parser.add_argument(
        "--store-check",
        choices=("auto", "full"),
        default="auto",
        help="startup integrity check of the data store: auto reads the whole file when"
        " it is under 256 MB and otherwise everything but the message rows (checked as"
        " they are read); full always reads the whole file (auto)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        help="heartbeat interval offered to clients, seconds (60)",
    )
    parser.add_argument(
        "--consumer-timeout",
        type=_milliseconds,
        default=DEFAULT_CONSUMER_TIMEOUT,
        metavar="MS",
        help="close a channel that leaves a delivery unacknowledged this long, in ms "
        f"({DEFAULT_CONSUMER_TIMEOUT}, 30 minutes); 0 turns the timeout off",
    )
    parser.add_argument(
        "--memory-high-watermark",
        type=_fraction,
        default=0.4,
        help="block publishers above this fraction of RAM (0.4)",
    )
    parser.add_argument(
        "--disk-free-limit",
        type=_size,
        default=50_000_000,
        help="block publishers below this many free bytes on the data "
        "partition; suffixes kB MB GB (50MB)",
    )
    parser.add_argument(
        "--management-port",
        type=port_number,
        default=None,
        help=f"management HTTP API port ({DEFAULT_MANAGEMENT_PORT}, skipped with a warning "
        "when in use); 0 picks a free port",
    )
    parser.add_argument(
        "--management-host",
        default="127.0.0.1",
        help="address the management API listens on (127.0.0.1)",
    )
    parser.add_argument(
        "--no-management", action="store_true", help="do not serve the management API"
    )
    parser.add_argument(
        "--management-max-body-size",
        type=_size,
        default=DEFAULT_MANAGEMENT_MAX_BODY_SIZE,
        metavar="SIZE",
        help="refuse management API request bodies larger than this (20MB, as RabbitMQ's "
        "management.http.max_body_size)",
    )
    parser.add_argument(
        "--load-definitions",
        metavar="FILE",
        default=None,
        help="apply a RabbitMQ definitions file (JSON) at start",
    )
    cli_security.add_arguments(parser)
    return parser


_SIZE_UNITS = {
    "": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def _size(value: str) -> int:
    text = value.strip().lower()
    digits = text.rstrip("kmgib")
    unit = text[len(digits) :]
    if not digits.isdigit() or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"invalid size {value!r} (e.g. 50MB, 1GiB, 1000000)")
    return int(digits) * _SIZE_UNITS[unit]


def _fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid fraction {value!r}") from None
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"fraction {value} is not in (0, 1]")
    return number


def settings_from_args(args: argparse.Namespace) -> Settings:
    data_dir = ":memory:" if args.transient else args.data_dir
    return Settings(
        rabbitmq_version=args.rabbitmq_version,
        host=(args.host or ["127.0.0.1"])[0],
        more_hosts=tuple(args.host[1:]) if args.host else (),
        port=args.port,
        data_dir=data_dir,
        sync=args.sync,
        store_check=args.store_check,
        log_level=args.log_level,
        heartbeat=args.heartbeat,
        consumer_timeout=args.consumer_timeout,
        memory_high_watermark=args.memory_high_watermark,
        disk_free_limit=args.disk_free_limit,
        management=not args.no_management,
        management_host=args.management_host,
        management_max_body_size=args.management_max_body_size,
        management_port=(
            DEFAULT_MANAGEMENT_PORT if args.management_port is None else args.management_port
        ),
        load_definitions=args.load_definitions,
        **cli_security.settings_from(args),
    )


async def run(
    broker: Broker, management: ManagementContext | None = None, management_required: bool = True
) -> None:
    settings = broker.settings
    server = Server(broker)
    await server.listen(settings.host, settings.port, settings.more_hosts)
    sock = bind_management(settings, management_required) if management is not None else None
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        if management is not None and sock is not None:
            await start_management(nursery, management, sock, (settings.host, server.port))
        # Most of what exists now (modules, the management app) lives as long as the
        # process: frozen, the cyclic GC stops rescanning it on every full collection
        # (the imported web stack cost ~3% CPU under load otherwise); refcounting
        # still frees anything that goes.
        gc.freeze()
        # Each message is two GC-tracked objects (Message, QueuedMessage), so under
        # load the default gen-0 threshold (700) collects every ~350 messages and the
        # older generations follow, walking the queued backlog (refcounting frees the
        # rest anyway). 20,000 cut the ack benchmark's broker CPU by ~7% (GC was ~10%).
        gc.set_threshold(20_000, 10, 10)
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        print(f"amqpbroker: listening on amqp://{host}:{server.port}", flush=True)
        # The receiver stays open through the shutdown, so a second signal does not
        # kill the process half-way through closing connections and the store.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                logging.getLogger("amqpbroker").info(
                    "received %s, shutting down", signal.Signals(signum).name
                )
                break
            await server.shutdown()
        nursery.cancel_scope.cancel()


def ctl_main(argv: list[str]) -> int:
    """``amqpbroker ctl``: with ``--data-dir``, users / permissions / vhosts of a stopped
    broker, changed in its data dir (admin.py); without, the management API client for a
    running broker (management/ctl.py), or the default data dir when there is none."""
    if any(arg == "--data-dir" or arg.startswith("--data-dir=") for arg in argv):
        from . import admin

        return admin.main(argv)
    try:
        from .management import ctl
    except ImportError:
        from . import admin

        return admin.main(argv)
    return int(ctl.main(argv))


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["ctl"]:
        return ctl_main(argv[1:])
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    # Process-wide (read on every publish, so a module constant): this process is
    # the one broker it was started for.
    queue_module.PAGE_OUT_AT = args.paging_window
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("amqpbroker")
    try:
        broker = Broker.open(settings)
    except StoreError as exc:
        sys.stderr.write(f"amqpbroker: error: {exc}\n")
        return EXIT_FAILURE
    if broker.store is None:
        log.info("transient: nothing is kept on disk")
    else:
        stats = broker.recovered
        log.info(
            "data in %s (sync=%s); recovered %s",
            getattr(broker.store, "data_dir", "?"),
            settings.sync,
            stats,
        )
    management = None
    if settings.management or settings.load_definitions:
        from .management.context import ManagementContext
        from .management.definitions import DefinitionsError, load_file

        management = ManagementContext(broker, max_body_size=settings.management_max_body_size)
        if settings.load_definitions:
            try:
                load_file(management, settings.load_definitions)
            except (OSError, ValueError, DefinitionsError) as exc:
                sys.stderr.write(
                    f"amqpbroker: error: cannot load definitions from "
                    f"{settings.load_definitions}: {exc}\n"
                )
                broker.close()
                return EXIT_FAILURE
        if not settings.management:
            management = None
    try:
        trio.run(run, broker, management, args.management_port is not None)
    except ListenError as exc:
        sys.stderr.write(f"amqpbroker: error: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"amqpbroker: error: {ListenError(settings.host, settings.port, exc)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0
    finally:
        broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
