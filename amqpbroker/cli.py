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
from .config import DEFAULT_PORT, Settings
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
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    data_dir = ":memory:" if args.transient else args.data_dir
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=data_dir,
        sync=args.sync,
        log_level=args.log_level,
        heartbeat=args.heartbeat,
    )


async def run(broker: Broker) -> None:
    settings = broker.settings
    server = Server(broker)
    await server.listen(settings.host, settings.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        print(f"amqpbroker: listening on amqp://{host}:{server.port}", flush=True)
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
