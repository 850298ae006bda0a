"""The Starlette application: the API routes, /metrics and the dashboard page."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import (
    api_admin,
    api_bindings,
    api_connections,
    api_exchanges,
    api_overview,
    api_queues,
    dashboard,
    metrics,
)
from .context import ManagementContext

ROUTE_TABLES = (
    api_overview.routes,
    api_admin.routes,
    api_queues.routes,
    api_exchanges.routes,
    api_bindings.routes,
    api_connections.routes,
)


class RawPath:
    """Route on the undecoded path.

    Names may contain ``/`` (the default vhost is ``/``, sent as ``%2F``); routing
    on the decoded path would split them, so routes match the raw segments and
    handlers decode each one (``Api.param``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw:
            scope = dict(scope)
            scope["path"] = raw.decode("latin-1").split("?", 1)[0]
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return JSONResponse({"error": "Object Not Found", "reason": "Not Found"}, status_code=404)
    if status == 405:
        return Response(status_code=405)  # RabbitMQ sends no body
    return JSONResponse({"error": "internal_error", "reason": str(exc)}, status_code=status)


def build_app(ctx: ManagementContext) -> ASGIApp:
    routes: list[Any] = []
    for table in ROUTE_TABLES:
        routes.extend(table.build(ctx))

    async def metrics_page(request: Request) -> Response:
        return PlainTextResponse(
            metrics.render(ctx), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def dashboard_page(request: Request) -> Response:
        return HTMLResponse(dashboard.PAGE)

    routes.append(Route("/metrics", metrics_page, methods=["GET"]))
    routes.append(Route("/", dashboard_page, methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return RawPath(app)
