"""``amqpbroker ctl VERB``: rabbitmqctl's verbs and output, for a running broker,
over its management API (``--url``, default http://127.0.0.1:15672).

Output follows rabbitmqctl 3.10: an info line ("Listing queues for vhost / ...")
unless ``-q``, then a tab-separated table with a header row (unless
``--no-table-headers``), booleans as true/false and arguments as Erlang-ish
lists.  Exit codes as rabbitmqctl: 0 ok, 64 usage, 65 bad data, 69 not found or
broker unreachable, 70 internal error.

Only the standard library is used (urllib), so ``ctl`` starts fast and needs
nothing the broker itself does not.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
DEFAULT_URL = "http://127.0.0.1:15672"
TIMEOUT = 60.0

# rabbitmqctl column -> how to read it from the API's object.
QUEUE_COLUMNS: dict[str, str] = {
    "name": "name",
    "vhost": "vhost",
    "durable": "durable",
    "auto_delete": "auto_delete",
    "exclusive": "exclusive",
    "arguments": "arguments",
    "messages": "messages",
    "messages_ready": "messages_ready",
    "messages_unacknowledged": "messages_unacknowledged",
    "message_bytes": "message_bytes",
    "consumers": "consumers",
    "memory": "memory",
    "state": "state",
    "type": "type",
    "policy": "policy",
}
EXCHANGE_COLUMNS = {k: k for k in ("name", "type", "durable", "auto_delete", "internal",
                                   "arguments", "vhost")}  # fmt: skip
BINDING_COLUMNS = {
    "source_name": "source",
    "source_kind": "source_kind",
    "destination_name": "destination",
    "destination_kind": "destination_type",
    "routing_key": "routing_key",
    "arguments": "arguments",
    "vhost": "vhost",
}
CONNECTION_COLUMNS = {k: k for k in ("name", "user", "vhost", "peer_host", "peer_port", "state",
                                     "channels", "protocol", "auth_mechanism", "timeout",
                                     "frame_max", "channel_max", "recv_oct", "send_oct",
                                     "connected_at", "client_properties")}  # fmt: skip
CONSUMER_COLUMNS = {
    "queue_name": "queue.name",
    "channel_pid": "channel_details.name",
    "consumer_tag": "consumer_tag",
    "ack_required": "ack_required",
    "prefetch_count": "prefetch_count",
    "active": "active",
    "activity_status": "activity_status",
    "exclusive": "exclusive",
    "arguments": "arguments",
}


class CtlError(Exception):
    def __init__(self, message: str, code: int = EX_SOFTWARE) -> None:
        super().__init__(message)
        self.code = code


class Client:
    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CtlError(
                f"unable to reach the broker's management API at {self.url}: {reason}",
                EX_UNAVAILABLE,
            ) from None
        return json.loads(raw) if raw.strip() else None


def _http_error(exc: urllib.error.HTTPError) -> CtlError:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    reason = body.get("reason", exc.reason) if isinstance(body, dict) else exc.reason
    if exc.code == 404:
        return CtlError(str(reason if reason != "Not Found" else "not_found"), EX_UNAVAILABLE)
    if exc.code == 401:
        return CtlError(f"authentication failed: {reason}", EX_UNAVAILABLE)
    if exc.code == 400:
        return CtlError(str(reason), EX_DATAERR)
    return CtlError(f"HTTP {exc.code}: {reason}", EX_SOFTWARE)


# ------------------------------------------------------------------ output


def _value(item: Any, path: str) -> Any:
    for part in path.split("."):
        item = item.get(part) if isinstance(item, dict) else None
    return item


def render(value: Any) -> str:
    """A value as rabbitmqctl prints it in a table cell."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict):
        return "[" + ",".join(f'{{"{k}",{render_term(v)}}}' for k, v in value.items()) + "]"
    if isinstance(value, list):
        return "[" + ",".join(render_term(v) for v in value) + "]"
    return str(value)


def render_term(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return render(value)


class Output:
    def __init__(self, out: TextIO, quiet: bool, headers: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.headers = headers

    def info(self, line: str) -> None:
        if not self.quiet:
            self.out.write(line + "\n")

    def table(self, columns: list[str], rows: list[list[str]]) -> None:
        if self.headers:
            self.out.write("\t".join(columns) + "\n")
        for row in rows:
            self.out.write("\t".join(row) + "\n")


# ------------------------------------------------------------------- verbs


def _vpath(vhost: str) -> str:
    return urllib.parse.quote(vhost, safe="")


def _columns(wanted: list[str], default: list[str], known: dict[str, str]) -> list[tuple[str, str]]:
    names = wanted or default
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CtlError(
            f"Info key(s) {','.join(unknown)} are not supported. "
            f"Supported keys: {', '.join(known)}",
            EX_USAGE,
        )
    return [(n, known[n]) for n in names]


def _list(
    client: Client,
    out: Output,
    path: str,
    columns: list[tuple[str, str]],
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    items = client.call("GET", path) or []
    rows = []
    for item in items:
        if prepare is not None:
            item = prepare(item)
        rows.append([render(_value(item, api)) for _, api in columns])
    out.table([name for name, _ in columns], rows)


def list_queues(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info("Timeout: 60.0 seconds ...")
    out.info(f"Listing queues for vhost {args.vhost} ...")
    columns = _columns(args.columns, ["name", "messages"], QUEUE_COLUMNS)
    _list(client, out, f"/api/queues/{_vpath(args.vhost)}", columns)
    return EX_OK


def list_exchanges(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info("Timeout: 60.0 seconds ...")
    out.info(f"Listing exchanges for vhost {args.vhost} ...")
    columns = _columns(args.columns, ["name", "type"], EXCHANGE_COLUMNS)
    _list(client, out, f"/api/exchanges/{_vpath(args.vhost)}", columns)
    return EX_OK


def list_bindings(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info(f"Listing bindings for vhost {args.vhost}...")
    default = ["source_name", "source_kind", "destination_name", "destination_kind",
               "routing_key", "arguments"]  # fmt: skip
    columns = _columns(args.columns, default, BINDING_COLUMNS)
    _list(
        client,
        out,
        f"/api/bindings/{_vpath(args.vhost)}",
        columns,
        lambda b: {**b, "source_kind": "exchange"},
    )
    return EX_OK


def list_connections(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info("Listing connections ...")
    columns = _columns(
        args.columns, ["user", "peer_host", "peer_port", "state"], CONNECTION_COLUMNS
    )
    _list(client, out, "/api/connections", columns)
    return EX_OK


def list_consumers(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info(f"Listing consumers in vhost {args.vhost} ...")
    default = ["queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count",
               "active", "arguments"]  # fmt: skip
    columns = _columns(args.columns, default, CONSUMER_COLUMNS)
    _list(client, out, f"/api/consumers/{_vpath(args.vhost)}", columns)
    return EX_OK


def list_vhosts(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info("Listing vhosts ...")
    known = {k: k for k in ("name", "description", "tags", "tracing", "messages")}
    _list(client, out, "/api/vhosts", _columns(args.columns, ["name"], known))
    return EX_OK


def list_users(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info("Listing users ...")
    _list(client, out, "/api/users", [("user", "name"), ("tags", "tags")])
    return EX_OK


def purge_queue(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info(f"Purging queue '{args.name}' in vhost '{args.vhost}' ...")
    client.call("DELETE", f"/api/queues/{_vpath(args.vhost)}/{_vpath(args.name)}/contents")
    return EX_OK


def delete_queue(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info(f"Deleting queue '{args.name}' on vhost '{args.vhost}' ...")
    path = f"/api/queues/{_vpath(args.vhost)}/{_vpath(args.name)}"
    ready = client.call("GET", path).get("messages_ready", 0)
    flags = [f for f, on in (("if-empty", args.if_empty), ("if-unused", args.if_unused)) if on]
    query = "?" + "&".join(f"{f}=true" for f in flags) if flags else ""
    client.call("DELETE", path + query)
    out.info(f"Queue was successfully deleted with {ready} ready messages")
    return EX_OK


def add_vhost(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info(f'Adding vhost "{args.name}" ...')
    body: dict[str, Any] = {}
    if args.description:
        body["description"] = args.description
    client.call("PUT", f"/api/vhosts/{_vpath(args.name)}", body)
    return EX_OK


def delete_vhost(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info(f'Deleting vhost "{args.name}" ...')
    client.call("DELETE", f"/api/vhosts/{_vpath(args.name)}")
    return EX_OK


def export_definitions(client: Client, out: Output, args: argparse.Namespace) -> int:
    data = client.call("GET", "/api/definitions")
    text = json.dumps(data, indent=2) + "\n"
    if args.path == "-":
        out.out.write(text)
        return EX_OK
    out.info(f'Exporting definitions in JSON to a file at "{args.path}" ...')
    with open(args.path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return EX_OK


def import_definitions(client: Client, out: Output, args: argparse.Namespace) -> int:
    out.info(f'Importing definitions in JSON from a file at "{args.path}" ...')
    try:
        if args.path == "-":
            data = json.load(sys.stdin)
        else:
            with open(args.path, encoding="utf-8") as fh:
                data = json.load(fh)
    except OSError as exc:
        raise CtlError(f"cannot read {args.path}: {exc.strerror}", EX_DATAERR) from None
    except ValueError as exc:
        raise CtlError(f"{args.path} is not valid JSON: {exc}", EX_DATAERR) from None
    client.call("POST", "/api/definitions", data)
    out.info("Successfully started definition import.")
    return EX_OK


VERBS: dict[str, tuple[Callable[[Client, Output, argparse.Namespace], int], str]] = {
    "list_queues": (list_queues, "columns"),
    "list_exchanges": (list_exchanges, "columns"),
    "list_bindings": (list_bindings, "columns"),
    "list_connections": (list_connections, "columns"),
    "list_consumers": (list_consumers, "columns"),
    "list_vhosts": (list_vhosts, "columns"),
    "list_users": (list_users, ""),
    "purge_queue": (purge_queue, "name"),
    "delete_queue": (delete_queue, "name"),
    "add_vhost": (add_vhost, "name"),
    "delete_vhost": (delete_vhost, "name"),
    "export_definitions": (export_definitions, "path"),
    "import_definitions": (import_definitions, "path"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"amqpbroker ctl: error: {message} (see amqpbroker ctl --help)\n")
        sys.exit(EX_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="amqpbroker ctl",
        description="rabbitmqctl-like verbs for a running amqpbroker, over its management API.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("AMQPBROKER_MANAGEMENT_URL", DEFAULT_URL),
        help=f"management API base URL ({DEFAULT_URL}; env AMQPBROKER_MANAGEMENT_URL)",
    )
    parser.add_argument("--username", "-u", default="guest")
    parser.add_argument("--password", default="guest")
    parser.add_argument("--vhost", "-p", default="/")
    parser.add_argument("--quiet", "-q", action="store_true", help="no info lines")
    parser.add_argument("--no-table-headers", action="store_true")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, (_func, takes) in VERBS.items():
        sub = verbs.add_parser(verb)
        if takes == "columns":
            sub.add_argument("columns", nargs="*", metavar="column")
        elif takes == "name":
            sub.add_argument("name")
        elif takes == "path":
            sub.add_argument("path", help="a file, or - for stdout / stdin")
        if verb == "delete_queue":
            sub.add_argument("--if-empty", "-e", action="store_true")
            sub.add_argument("--if-unused", "-u", action="store_true")
        if verb == "add_vhost":
            sub.add_argument("--description", default="")
    return parser


def main(argv: list[str], out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = Output(out or sys.stdout, args.quiet, not args.no_table_headers)
    func, _takes = VERBS[args.verb]
    try:
        return func(Client(args.url, args.username, args.password), output, args)
    except CtlError as exc:
        sys.stderr.write(f"Error:\n{exc}\n")
        return exc.code
