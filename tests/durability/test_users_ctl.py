"""Users and permissions survive restarts, and ``amqpbroker ctl --data-dir`` changes them
in a stopped broker's data dir (and refuses while a broker holds it)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pika
import pytest
from pika.exceptions import ProbableAccessDeniedError, ProbableAuthenticationError

import amqpbroker
from amqpbroker import admin
from amqpbroker.store import SQLiteStore


def ctl(data_dir: Path, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        old, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        code = admin.run(["--data-dir", str(data_dir), *argv], out, err)
    finally:
        if stdin is not None:
            sys.stdin = old
    return code, out.getvalue(), err.getvalue()


def login(broker: amqpbroker.Broker, user: str, password: str, vhost: str = "/") -> Any:
    params = pika.ConnectionParameters(
        broker.host,
        broker.port,
        vhost,
        pika.PlainCredentials(user, password),
        heartbeat=0,
        socket_timeout=5,
    )
    return pika.BlockingConnection(params)


def test_ctl_on_a_new_data_dir_then_the_broker_starts_with_it(tmp_path: Path) -> None:
    assert ctl(tmp_path, "add_user", "alice", "s3cret")[0] == 0
    assert ctl(tmp_path, "add_vhost", "orders")[0] == 0
    code, out, _ = ctl(tmp_path, "set_permissions", "-p", "orders", "alice", "^a-", ".*", ".*")
    assert code == 0
    assert out == 'Setting permissions for user "alice" in vhost "orders" ...\n'
    code, out, _ = ctl(tmp_path, "-q", "list_users")
    # The first start's defaults are there too: guest, administrator.
    assert out == "user\ttags\nalice\t[]\nguest\t[administrator]\n"
    with amqpbroker.Broker(data_dir=str(tmp_path)) as broker:
        conn = login(broker, "alice", "s3cret", "orders")
        conn.channel().queue_declare("a-work")
        conn.close()
        login(broker, "guest", "guest").close()
        with pytest.raises(ProbableAccessDeniedError):
            login(broker, "alice", "s3cret", "/")  # no permissions there


def test_ctl_is_refused_while_a_broker_holds_the_data_dir(tmp_path: Path) -> None:
    with amqpbroker.Broker(data_dir=str(tmp_path)):
        code, _, err = ctl(tmp_path, "add_user", "alice", "pw")
    assert code == admin.EX_UNAVAILABLE
    assert f"a broker is running on {tmp_path} (pid " in err
    assert "stop it first" in err


def test_users_and_permissions_made_at_runtime_survive_a_restart(tmp_path: Path) -> None:
    with amqpbroker.Broker(data_dir=str(tmp_path)) as broker:
        assert broker.core is not None
        db = broker.core.users
        broker.call(db.add_user, "bob", "pw", ["monitoring"])
        broker.call(db.set_permissions, "bob", "/", "", "^x$", "")
        broker.call(db.change_password, "guest", "changed")
    with amqpbroker.Broker(data_dir=str(tmp_path)) as broker:
        login(broker, "bob", "pw").close()
        login(broker, "guest", "changed").close()
        with pytest.raises(ProbableAuthenticationError):
            login(broker, "guest", "guest")
    out = ctl(tmp_path, "-q", "list_permissions")[1]
    assert out == "user\tconfigure\twrite\tread\nbob\t\t^x$\t\nguest\t.*\t.*\t.*\n"
    out = ctl(tmp_path, "-q", "list_users")[1]
    assert "bob\t[monitoring]\n" in out


def test_deleted_default_user_is_not_recreated(tmp_path: Path) -> None:
    assert ctl(tmp_path, "add_user", "admin", "pw")[0] == 0
    assert ctl(tmp_path, "delete_user", "guest")[0] == 0
    with (
        amqpbroker.Broker(data_dir=str(tmp_path)) as broker,
        pytest.raises(ProbableAuthenticationError),
    ):
        login(broker, "guest", "guest")
    assert ctl(tmp_path, "-q", "list_users")[1] == "user\ttags\nadmin\t[]\n"


def test_ctl_errors_use_rabbitmqctl_exit_codes(tmp_path: Path) -> None:
    assert ctl(tmp_path, "add_user", "alice", "pw")[0] == 0
    code, _, err = ctl(tmp_path, "add_user", "alice", "pw")
    assert (code, err) == (70, 'Error:\nUser "alice" already exists\n')
    code, _, err = ctl(tmp_path, "delete_user", "nobody")
    assert (code, err) == (67, 'Error:\nUser "nobody" does not exist\n')
    code, _, err = ctl(tmp_path, "set_permissions", "-p", "nowhere", "alice", "", "", "")
    assert (code, err) == (69, "Error:\nVirtual host 'nowhere' does not exist\n")
    code, _, err = ctl(tmp_path, "set_permissions", "alice", "(", ".*", ".*")
    assert code == 65 and "configure pattern '(' is not a valid regular expression" in err
    code, out, _ = ctl(tmp_path, "authenticate_user", "alice", "pw")
    assert (code, out.splitlines()[-1]) == (0, "Success")
    assert ctl(tmp_path, "authenticate_user", "alice", "nope")[0] == 70


def test_a_missing_data_dir_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    code, out, err = ctl(missing, "add_user", "alice", "pw")
    assert (code, out) == (66, "")
    assert err == f"Error: no data dir at {missing} (create it, or start the broker once)\n"
    assert not missing.exists()


def test_password_from_stdin_stays_off_the_command_line(tmp_path: Path) -> None:
    assert ctl(tmp_path, "add_user", "carol", stdin="from stdin\n")[0] == 0
    assert ctl(tmp_path, "authenticate_user", "carol", "from stdin")[0] == 0


def test_delete_vhost_offline_takes_its_permissions(tmp_path: Path) -> None:
    ctl(tmp_path, "add_user", "dave", "pw")
    ctl(tmp_path, "add_vhost", "v")
    ctl(tmp_path, "set_permissions", "-p", "v", "dave", ".*", ".*", ".*")
    assert ctl(tmp_path, "delete_vhost", "v")[0] == 0
    ctl(tmp_path, "add_vhost", "v")
    assert ctl(tmp_path, "-q", "list_permissions", "-p", "v")[1] == "user\tconfigure\twrite\tread\n"


def test_ctl_keeps_the_last_run_unclean(tmp_path: Path) -> None:
    # A crashed broker's data: the next start must still mark recovered messages
    # redelivered, even after ctl opened and closed the data dir in between.
    store = SQLiteStore(tmp_path)
    store.open()
    store.simulate_crash()
    assert ctl(tmp_path, "add_user", "erin", "pw")[0] == 0
    again = SQLiteStore(tmp_path)
    assert not again.open().clean_shutdown
    again.close()


def test_the_console_script_dispatches_ctl_with_a_data_dir(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "amqpbroker", "ctl", "--data-dir", str(tmp_path), "list_vhosts"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Listing vhosts ...\nname\n/\n"
