"""The request plumbing every route shares: authentication, path decoding, JSON
bodies, list queries (columns, sort, pagination) and RabbitMQ's error bodies.

A route is ``async def handler(api: Api) -> result``; the result is a Starlette
``Response``, ``None`` (204 No Content, RabbitMQ's answer to a successful
change), :data:`CREATED` (201), or anything JSON-serialisable (200).  Handlers
are ``async`` on purpose: Starlette runs plain functions in a worker thread, and
broker state may only be touched on the broker's thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import errors
from ..broker.vhost import VirtualHost
from . import users
from .context import ManagementContext

log = logging.getLogger("amqpbroker.management")

REALM = 'Basic realm="RabbitMQ Management"'
# Sentinel result: 201 Created with an empty body.
CREATED = object()


class ApiError(Exception):
    """An HTTP error in RabbitMQ's shape: ``{"error": ..., "reason": ...}``."""

    def __init__(self, status: int, error: str, reason: Any) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason

    def response(self) -> Response:
        return JSONResponse({"error": self.error, "reason": self.reason}, status_code=self.status)


def not_found() -> ApiError:
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: Any) -> ApiError:
    return ApiError(400, "bad_request", reason)


def from_amqp(exc: errors.AMQPError) -> ApiError:
    """How RabbitMQ's management plugin reports a refused AMQP operation."""
    if exc.reply_code == errors.ACCESS_REFUSED:
        return ApiError(401, "not_authorised", "Access refused.")
    if exc.reply_code == errors.NOT_FOUND:
        return ApiError(404, "not_found", exc.text)
    return bad_request(exc.text)


class Api:
    """One authenticated request: its parameters, body and the broker context."""

    def __init__(self, request: Request, ctx: ManagementContext, user: str) -> None:
        self.request = request
        self.ctx = ctx
        self.user = user
        self.broker = ctx.broker
        self.tags = frozenset(users.tags(ctx.broker, user))
        self.admin = users.ADMINISTRATOR in self.tags
        # monitoring and administrator users see every vhost in lists (RabbitMQ's rule).
        self.sees_all = self.admin or users.MONITORING in self.tags

    def may_read(self, vhost: str) -> bool:
        return self.sees_all or users.may_access(self.broker, self.user, vhost)

    def owner_or(self, owner: str | None) -> None:
        """is_authorized_user, for a connection or channel (``owner`` None: no such
        object): its own user may read and close it; others need monitoring to read
        it and administrator to close it (RabbitMQ's rule)."""
        allowed = self.admin if self.request.method == "DELETE" else self.sees_all
        if not allowed and owner != self.user:
            raise ApiError(401, "not_authorised", "User not authorised to access object")

    def param(self, name: str) -> str:
        """A path segment, percent-decoded (so ``%2F`` is the vhost ``/``)."""
        return unquote(str(self.request.path_params[name]))

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.request.query_params.get(name, default)

    def vhost(self, name: str = "vhost", *, check_access: bool = True) -> VirtualHost:
        """The vhost a path names (404), if this user may use it (401), as RabbitMQ
        3.10 decides: administrators may, others need a permission there.  What an
        administrator may then change is up to the permissions (:meth:`authorize`)."""
        found = self.broker.vhosts.get(self.param(name))
        if found is None:
            raise not_found()
        if check_access and not (
            self.admin or users.may_access(self.broker, self.user, found.name)
        ):
            raise ApiError(401, "not_authorised", "User not authorised to access virtual host")
        return found

    def authorize(self, host: VirtualHost, method: Any) -> None:
        """403 unless the user's permissions allow ``method`` (a pamqp method) in
        ``host``: the same checks, in the same order, as for an AMQP client."""
        from .messages import authorize

        authorize(self.ctx, host, self.user, method)

    def commit(self) -> None:
        """Durable changes go to disk with the next group commit."""
        store = self.broker.store
        if store is not None and store.has_pending():
            self.broker.request_commit()

    async def raw_body(self, *, json_only: bool = False) -> bytes:
        """The request body, read only if it is JSON and not too large.

        415 (empty, as RabbitMQ) for a body whose Content-Type is not JSON, so a
        browser's cross-site form post (always form-encoded, multipart or
        text/plain) cannot change anything; ``json_only`` also refuses a body
        without a Content-Type (RabbitMQ's rule for /api/definitions).  400 when
        the body passes ``ctx.max_body_size``: by its Content-Length before any of
        it is read, else as soon as the bytes read pass it."""
        limit = self.ctx.max_body_size
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large()
            if chunk and not chunks:
                _check_content_type(self.request.headers.get("content-type"), json_only)
            chunks.append(chunk)
        if not size:
            return b""
        return b"".join(chunks)

    async def body(self) -> dict[str, Any]:
        """The JSON object body; an empty body counts as ``{}`` (RabbitMQ's PUTs)."""
        raw = await self.raw_body()
        if not raw.strip():
            return {}
        data = parse_json(raw, "not_json")
        if not isinstance(data, dict):
            raise bad_request("not_json")
        return data


def parse_json(raw: bytes, reason: str) -> Any:
    """JSON, or 400 with ``reason``: nesting too deep for the parser counts as
    malformed (a client error), not as our failure."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request(reason) from None


# Content types a JSON body may carry: application/json, and application/*+json.
def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _check_content_type(content_type: str | None, json_only: bool) -> None:
    if content_type is None:
        if json_only:
            raise UnsupportedMediaType()
        return
    if not _is_json(content_type):
        raise UnsupportedMediaType()


class UnsupportedMediaType(Exception):
    """415 with an empty body, as RabbitMQ's web framework (cowboy) answers."""


def _too_large() -> ApiError:
    return bad_request("Exceeded HTTP request body size limit")


Handler = Callable[[Api], Awaitable[Any]]


def flag(body: dict[str, Any], key: str, default: bool) -> bool:
    """A boolean field of a request body ("true"/"false" strings accepted)."""
    value = body.get(key, default)
    if isinstance(value, str):
        return value == "true"
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be a boolean")
    return value


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None
    return (user, password) if sep else None


def authenticate(request: Request, ctx: ManagementContext) -> str:
    creds = _credentials(request)
    if creds is None:
        raise _Unauthenticated()
    peer = request.client.host if request.client is not None else ""
    if not users.authenticate(ctx.broker, creds[0], creds[1], peer):
        raise ApiError(401, "not_authorized", "Login failed")
    return creds[0]


class _Unauthenticated(Exception):
    """No credentials at all: RabbitMQ answers 401 with an empty body."""


def _unauthorised(error: ApiError | None = None) -> Response:
    response = error.response() if error is not None else Response(status_code=401)
    response.headers["www-authenticate"] = REALM
    return response


def _check_tags(api: Api) -> None:
    if not api.tags & users.MANAGEMENT_TAGS:
        raise ApiError(401, "not_authorised", "Not management user")


# ------------------------------------------------------------- route rules
#
# Who may call a route beyond the management tag every route needs: RabbitMQ's
# rabbit_mgmt_util:is_authorized* variants, one function each (the vhost rule,
# is_authorized_vhost, is Api.vhost; the owner rule for connections and channels,
# is_authorized_user, is Api.owner_or).  tests/management/test_route_rules.py holds
# every route against a recording of RabbitMQ 3.10.
Rule = Callable[[Api], None]


def any_user(api: Api) -> None:
    """is_authorized: any user with a management tag."""


def administrator(api: Api) -> None:
    """is_authorized_admin: users, permissions, vhosts, definitions."""
    if not api.admin:
        raise ApiError(401, "not_authorised", "Not administrator user")


def monitor(api: Api) -> None:
    """is_authorized_monitor: node details."""
    if not api.sees_all:
        raise ApiError(401, "not_authorised", "Not monitor user")


def policymaker(api: Api) -> None:
    """is_authorized_policies / _global_parameters (no vhost in the path)."""
    if not api.tags & users.POLICYMAKER_TAGS:
        raise ApiError(401, "not_authorised", "User not authorised to access object")


def endpoint(
    ctx: ManagementContext, handler: Handler, rule: Rule = any_user
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        user = ""
        try:
            user = authenticate(request, ctx)
            api = Api(request, ctx, user)
            _check_tags(api)
            rule(api)
            result = await handler(api)
        except _Unauthenticated:
            return _unauthorised()
        except UnsupportedMediaType:
            log.info("management %s %s by '%s': 415", request.method, request.url.path, user)
            return Response(status_code=415)
        except ApiError as exc:
            _log_error(request, user, exc)
            return _unauthorised(exc) if exc.status == 401 else exc.response()
        except errors.AMQPError as exc:
            error = from_amqp(exc)
            _log_error(request, user, error)
            return error.response()
        except Exception:
            # A bug of ours costs this request only; the broker keeps serving.
            log.exception("management %s %s failed", request.method, request.url.path)
            return ApiError(500, "internal_error", "see the broker log").response()
        return render(request, result)

    run.__name__ = handler.__name__
    return run


def _log_error(request: Request, user: str, error: ApiError) -> None:
    """One line per refused request; 404s are routine (clients probe), so debug."""
    level = logging.DEBUG if error.status == 404 else logging.INFO
    log.log(
        level,
        "management %s %s by '%s': %d %s",
        request.method,
        request.url.path,
        user,
        error.status,
        error.reason,
    )


def render(request: Request, result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    if result is CREATED:
        return Response(status_code=201)
    if isinstance(result, list):
        return JSONResponse(list_query(request, result))
    return JSONResponse(result)


# ------------------------------------------------------------- list queries


def _lookup(item: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(item, dict):
            return None
        item = item.get(part)
    return item


def _select(item: dict[str, Any], columns: list[list[str]]) -> dict[str, Any]:
    picked: dict[str, Any] = {}
    for path in columns:
        value = _lookup(item, path)
        if value is None and not _has(item, path):
            continue
        target = picked
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return picked


def _has(item: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(item, dict) or part not in item:
            return False
        item = item[part]
    return True


def _sort_key(path: list[str]) -> Callable[[Any], tuple[int, Any]]:
    def key(item: Any) -> tuple[int, Any]:
        value = _lookup(item, path)
        if value is None:
            return (0, 0)
        if isinstance(value, bool | int | float):
            return (1, value)
        return (2, str(value))

    return key


def list_query(request: Request, items: list[Any]) -> Any:
    """RabbitMQ's list parameters: ``sort``/``sort_reverse``, ``columns`` (dotted
    paths), and ``page``/``page_size``/``name``(+``use_regex``) pagination, which
    wraps the list in a page object."""
    q = request.query_params
    sort = q.get("sort")
    if sort:
        items = sorted(items, key=_sort_key(sort.split(".")))
    if q.get("sort_reverse") == "true":
        items = list(reversed(items))
    page = q.get("page")
    total = len(items)
    if page is not None:
        return _page(request, items, total)
    return _columns(request, items)


def _columns(request: Request, items: list[Any]) -> list[Any]:
    columns = request.query_params.get("columns")
    if not columns:
        return items
    paths = [c.split(".") for c in columns.split(",") if c]
    return [_select(i, paths) if isinstance(i, dict) else i for i in items]


def _page(request: Request, items: list[Any], total: int) -> dict[str, Any]:
    import re

    q = request.query_params
    name = q.get("name")
    if name:
        if q.get("use_regex") == "true":
            try:
                pattern = re.compile(name)
            except re.error:
                raise bad_request("invalid regex") from None
            items = [i for i in items if pattern.search(str(i.get("name", "")))]
        else:
            items = [i for i in items if name in str(i.get("name", ""))]
    try:
        page = int(q.get("page", "1"))
        size = int(q.get("page_size", "100"))
    except ValueError:
        raise bad_request("page and page_size must be integers") from None
    if page < 1 or not 1 <= size <= 500:
        raise bad_request("invalid page or page_size")
    filtered = len(items)
    chunk = items[(page - 1) * size : page * size]
    return {
        "filtered_count": filtered,
        "item_count": len(chunk),
        "items": _columns(request, chunk),
        "page": page,
        "page_count": max(1, math.ceil(filtered / size)),
        "page_size": size,
        "total_count": total,
    }


class RouteTable:
    """Routes declared next to their handlers: ``@routes.get("/api/x")``."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, list[str], Handler, Rule]] = []

    def add(
        self, path: str, methods: list[str], *, rule: Rule = any_user
    ) -> Callable[[Handler], Handler]:
        """``rule``: who may call it besides needing a management tag (see Rule)."""

        def register(handler: Handler) -> Handler:
            self.entries.append((path, methods, handler, rule))
            return handler

        return register

    def get(self, path: str, *, rule: Rule = any_user) -> Callable[[Handler], Handler]:
        return self.add(path, ["GET"], rule=rule)

    def build(self, ctx: ManagementContext) -> list[Route]:
        return [
            Route(path, endpoint(ctx, handler, rule), methods=methods)
            for path, methods, handler, rule in self.entries
        ]
