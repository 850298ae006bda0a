"""``amqpbroker ctl --data-dir DIR VERB ...``: users, permissions and vhosts of a stopped
broker, changed in its data dir (rabbitmqctl's verbs and output).

The data dir lock tells whether a broker runs on the directory: this module takes it
like a broker does (an *admin* open, which leaves the run's clean-shutdown flag and
transient entities alone), so it never writes under a running broker.  When the lock
is held it says so and exits 69; a running broker is managed through its management
API instead (``amqpbroker.management.ctl``, used for ``ctl`` without ``--data-dir``).

A data dir a broker never ran on gets what a broker's first start would create (the
"/" vhost, the default user with full access to it) before the verb runs, so a user
added here is there, next to guest, when the broker starts.

Passwords may be left out of the command line (``add_user NAME``): they are then read
from stdin, without echo on a terminal, so they stay out of shell history and ``ps``.

Exit codes as rabbitmqctl: 0 ok, 64 usage, 65 invalid data, 67 no such user, 69 no
such vhost or broker running, 70 already exists; 66 when the data dir does not exist
(it is never created here: a mistyped path must not become a new, empty broker).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .auth.users import AdminError, NoSuchVhost, UserDB
from .config import Settings
from .store import DataDirLocked, Definitions, SQLiteStore, StoreError, default_data_dir

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"amqpbroker ctl: error: {message} (see amqpbroker ctl --help)\n")
        sys.exit(EX_USAGE)


class Admin:
    """One offline session on a data dir: the user database over its store."""

    def __init__(self, store: SQLiteStore, definitions: Definitions, out: TextIO) -> None:
        self.store = store
        self.out = out
        self.vhosts = set(definitions.vhosts)
        self.users = UserDB(store)
        settings = Settings()
        first_boot = definitions.users is None
        if first_boot and "/" not in self.vhosts:
            # The broker creates "/" at every start; its first start also grants it.
            store.put_vhost("/")
            self.vhosts.add("/")
        self.users.restore(
            definitions,
            default_user=settings.default_user,
            default_pass=settings.default_pass,
            vhosts=sorted(self.vhosts),
        )

    def say(self, line: str) -> None:
        self.out.write(line + "\n")

    def require_vhost(self, vhost: str) -> None:
        if vhost not in self.vhosts:
            raise NoSuchVhost(f"Virtual host '{vhost}' does not exist")


# ----------------------------------------------------------------------- verbs
# Each verb: (admin, args, quiet). The "...ing" line is rabbitmqctl's, unless -q.


def _add_user(a: Admin, args: argparse.Namespace) -> None:
    a.users.add_user(args.name, _password(args))


def _delete_user(a: Admin, args: argparse.Namespace) -> None:
    a.users.delete_user(args.name)


def _change_password(a: Admin, args: argparse.Namespace) -> None:
    a.users.change_password(args.name, _password(args))


def _clear_password(a: Admin, args: argparse.Namespace) -> None:
    a.users.change_password(args.name, None)


def _authenticate_user(a: Admin, args: argparse.Namespace) -> None:
    if not a.users.check_password(args.name, _password(args)):
        raise AdminError(f'Error: failed to authenticate user "{args.name}"')
    a.say("Success")


def _set_user_tags(a: Admin, args: argparse.Namespace) -> None:
    a.users.set_tags(args.name, args.tags)


def _list_users(a: Admin, args: argparse.Namespace) -> None:
    a.say("user\ttags")
    for rec in a.users.list_users():
        a.say(f"{rec.name}\t[{', '.join(rec.tags)}]")


def _set_permissions(a: Admin, args: argparse.Namespace) -> None:
    a.require_vhost(args.vhost)
    a.users.set_permissions(args.user, args.vhost, args.conf, args.write, args.read)


def _clear_permissions(a: Admin, args: argparse.Namespace) -> None:
    a.require_vhost(args.vhost)
    a.users.clear_permissions(args.user, args.vhost)


def _list_permissions(a: Admin, args: argparse.Namespace) -> None:
    a.require_vhost(args.vhost)
    a.say("user\tconfigure\twrite\tread")
    for rec in a.users.list_permissions(vhost=args.vhost):
        a.say(f"{rec.user}\t{rec.configure}\t{rec.write}\t{rec.read}")


def _list_user_permissions(a: Admin, args: argparse.Namespace) -> None:
    if a.users.get(args.user) is None:
        a.users.delete_user(args.user)  # raises NoSuchUser with rabbitmqctl's text
    a.say("vhost\tconfigure\twrite\tread")
    for rec in a.users.list_permissions(user=args.user):
        a.say(f"{rec.vhost}\t{rec.configure}\t{rec.write}\t{rec.read}")


def _add_vhost(a: Admin, args: argparse.Namespace) -> None:
    a.store.put_vhost(args.name)
    a.vhosts.add(args.name)


def _delete_vhost(a: Admin, args: argparse.Namespace) -> None:
    a.require_vhost(args.name)
    # One store transaction: exchanges, queues, messages, bindings, permissions.
    a.store.delete_vhost(args.name)
    a.vhosts.discard(args.name)


def _list_vhosts(a: Admin, args: argparse.Namespace) -> None:
    a.say("name")
    for name in sorted(a.vhosts):
        a.say(name)


_Verb = Callable[[Admin, argparse.Namespace], None]
# verb -> (function, the line rabbitmqctl prints first, from the parsed args)
VERBS: dict[str, tuple[_Verb, Callable[[argparse.Namespace], str]]] = {
    "add_user": (_add_user, lambda a: f'Adding user "{a.name}" ...'),
    "delete_user": (_delete_user, lambda a: f'Deleting user "{a.name}" ...'),
    "change_password": (_change_password, lambda a: f'Changing password for user "{a.name}" ...'),
    "clear_password": (_clear_password, lambda a: f'Clearing password for user "{a.name}" ...'),
    "authenticate_user": (_authenticate_user, lambda a: f'Authenticating user "{a.name}" ...'),
    "set_user_tags": (
        _set_user_tags,
        lambda a: f'Setting tags for user "{a.name}" to [{", ".join(a.tags)}] ...',
    ),
    "list_users": (_list_users, lambda a: "Listing users ..."),
    "set_permissions": (
        _set_permissions,
        lambda a: f'Setting permissions for user "{a.user}" in vhost "{a.vhost}" ...',
    ),
    "clear_permissions": (
        _clear_permissions,
        lambda a: f'Clearing permissions for user "{a.user}" in vhost "{a.vhost}" ...',
    ),
    "list_permissions": (
        _list_permissions,
        lambda a: f'Listing permissions for vhost "{a.vhost}" ...',
    ),
    "list_user_permissions": (
        _list_user_permissions,
        lambda a: f'Listing permissions for user "{a.user}" ...',
    ),
    "add_vhost": (_add_vhost, lambda a: f'Adding vhost "{a.name}" ...'),
    "delete_vhost": (_delete_vhost, lambda a: f'Deleting vhost "{a.name}" ...'),
    "list_vhosts": (_list_vhosts, lambda a: "Listing vhosts ..."),
}


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="amqpbroker ctl",
        description="Manage users, permissions and vhosts in a stopped broker's data dir.",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"the broker's data dir (default {default_data_dir()})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print results only")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=help_text)

    def with_password(p: argparse.ArgumentParser) -> None:
        p.add_argument("password", nargs="?", help="read from stdin when left out")

    for name, text in (
        ("add_user", "create a user"),
        ("change_password", "set a user's password"),
        ("authenticate_user", "check a user's password"),
    ):
        p = verb(name, text)
        p.add_argument("name")
        with_password(p)
    for name, text in (
        ("delete_user", "delete a user and its permissions"),
        ("clear_password", "remove a user's password (certificate logins only)"),
    ):
        verb(name, text).add_argument("name")
    p = verb("set_user_tags", "replace a user's tags")
    p.add_argument("name")
    p.add_argument("tags", nargs="*")
    verb("list_users", "list users and their tags")
    p = verb("set_permissions", "set a user's configure / write / read patterns in a vhost")
    p.add_argument("-p", "--vhost", default="/")
    p.add_argument("user")
    p.add_argument("conf")
    p.add_argument("write")
    p.add_argument("read")
    p = verb("clear_permissions", "remove a user's permissions in a vhost")
    p.add_argument("-p", "--vhost", default="/")
    p.add_argument("user")
    verb("list_permissions", "list permissions in a vhost").add_argument(
        "-p", "--vhost", default="/"
    )
    verb("list_user_permissions", "list a user's permissions").add_argument("user")
    verb("add_vhost", "create a vhost").add_argument("name")
    verb("delete_vhost", "delete a vhost and everything in it").add_argument("name")
    verb("list_vhosts", "list vhosts")
    return parser


def run(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one verb; returns the exit code (see the module docstring)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    function, announce = VERBS[args.verb]
    if not data_dir.is_dir():
        # Not created here: a mistyped path would otherwise get a new, empty broker.
        err.write(f"Error: no data dir at {data_dir} (create it, or start the broker once)\n")
        return EX_NOINPUT
    if not args.quiet:
        out.write(announce(args) + "\n")
    store = SQLiteStore(data_dir)
    try:
        definitions = store.open(admin=True)
    except DataDirLocked as exc:
        err.write(
            f"Error: a broker is running on {data_dir} (pid {exc.pid}); stop it first: "
            "ctl --data-dir changes the data of a stopped broker only (manage a running "
            "one through its management API)\n"
        )
        return EX_UNAVAILABLE
    except StoreError as exc:
        err.write(f"Error: {exc}\n")
        return EX_SOFTWARE
    try:
        function(Admin(store, definitions, out), args)
    except AdminError as exc:
        err.write(f"Error:\n{exc}\n")
        return exc.exit_code
    except StoreError as exc:
        err.write(f"Error: {exc}\n")
        return EX_SOFTWARE
    finally:
        store.close()
    return EX_OK


def main(argv: list[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv)
