"""The management listener: Hypercorn's trio worker serving the Starlette app, as a
task in the broker's own trio run.

Resource handling: the caller binds the socket first (:func:`bind`, which raises
OSError plainly, before any nursery exists, like ``Server.listen``); the task
owns it from then on and runs until cancelled with its nursery.
Starlette and Hypercorn are imported here and nowhere else, and only when this
runs.
"""

from __future__ import annotations

import logging
import socket

import trio

from .context import ManagementContext
from .totals import SAMPLE_INTERVAL, snapshot

log = logging.getLogger("amqpbroker.management")

# Hypercorn waits this long for requests in flight when the broker stops.
GRACEFUL_TIMEOUT = 1.0


def hypercorn_backlog() -> int:
    from hypercorn.config import Config

    return int(Config().backlog)


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket; raises OSError (e.g. EADDRINUSE) plainly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listen here, not in Hypercorn: with SO_REUSEADDR two brokers may both bind
        # the default port, and only listen() tells the second one it is taken (it
        # would then exit instead of running without the API).
        sock.listen(hypercorn_backlog())
    except OSError:
        sock.close()
        raise
    return sock


async def _sample_rates(ctx: ManagementContext) -> None:
    while True:
        ctx.rates.sample(trio.current_time(), snapshot(ctx.broker))
        await trio.sleep(SAMPLE_INTERVAL)


async def serve_management(
    ctx: ManagementContext,
    sock: socket.socket,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API on a socket from :func:`bind`; reports the bound port."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from .app import build_app

    host, port = sock.getsockname()[:2]
    ctx.http_host, ctx.http_port = host, port
    config = Config()
    # Hypercorn adopts the already-bound socket from its descriptor.
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    app = build_app(ctx)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_sample_rates, ctx)
        await nursery.start(serve, app, config)
        log.info("management API on http://%s:%d/", host, ctx.http_port)
        task_status.started(ctx.http_port)
