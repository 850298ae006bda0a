"""Command line: ``amqpbroker [--host H] [--port P] [--data-dir D] [--log-level L]``.

Prints exactly one line ``amqpbroker: listening on amqp://HOST:PORT`` on stdout once
it accepts connections (scripts wait for it).  SIGINT / SIGTERM: stop accepting,
close connections with 320 CONNECTION_FORCED, exit 0.  Bad flags or a port in use:
one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys

import trio

from . import __version__
from .broker.broker import Broker
from .config import DEFAULT_CONSUMER_TIMEOUT, DEFAULT_PORT, Settings
from .server.server import Server
from .store import StoreError

EXIT_FAILURE = 1
EXIT_USAGE = 2
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One readable line, not argparse's usage block.
        sys.stderr.write(f"amqpbroker: error: {message} (see amqpbroker --help)\n")
        sys.exit(EXIT_USAGE)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return port


def _milliseconds(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid milliseconds {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} ms is negative")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="amqpbroker", description="An AMQP 0-9-1 broker for RabbitMQ clients.")
    parser.add_argument("--version", action="version", version=f"amqpbroker {__version__}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port",
        type=_port,
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
        host=args.host,
        port=args.port,
        data_dir=data_dir,
        sync=args.sync,
        log_level=args.log_level,
        heartbeat=args.heartbeat,
        consumer_timeout=args.consumer_timeout,
        memory_high_watermark=args.memory_high_watermark,
        disk_free_limit=args.disk_free_limit,
    )


async def run(broker: Broker) -> None:
    settings = broker.settings
    server = Server(broker)
    await server.listen(settings.host, settings.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
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
    try:
        trio.run(run, broker)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = f"port {settings.port} on {settings.host} is already in use"
        else:
            reason = exc.strerror or str(exc)
        sys.stderr.write(
            f"amqpbroker: error: cannot listen on {settings.host}:{settings.port}: {reason}\n"
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0
    finally:
        broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
