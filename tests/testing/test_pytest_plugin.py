"""The pytest plugin, run the way users run it: pytest sessions in a subprocess.

Each test writes a tiny project into tmp_path and runs pytest on it, so the
plugin is loaded through its ``pytest11`` entry point exactly as in a user's
environment (the package must be installed: ``pip install -e .``).
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import urllib.parse
from pathlib import Path

import pika

import amqpbroker

# One small pytest session; the broker starts in milliseconds, pika imports dominate.
SESSION_TIMEOUT = 60


def run_pytest(
    project: Path, source: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_it.py").write_text(textwrap.dedent(source))
    base = {k: v for k, v in os.environ.items() if not k.startswith("AMQPBROKER_TEST_")}
    base.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=project,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT,
    )


def passed(result: subprocess.CompletedProcess[str], count: int) -> bool:
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return result.returncode == 0 and f"{count} passed" in last


def test_unused_fixtures_cost_no_broker_import(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        """
        import sys

        def test_nothing_heavy_was_imported():
            loaded = {name.split(".")[0] for name in sys.modules}
            assert "trio" not in loaded and "pamqp" not in loaded
            assert "amqpbroker.testing.pytest_plugin" in sys.modules
        """,
        # anyio (a dependency of the management API's Starlette) has a pytest plugin
        # that imports trio itself whenever trio is installed; this test is about
        # what *our* plugin imports.
        "-p",
        "no:anyio",
    )
    assert passed(result, 1), result.stdout + result.stderr
    assert "amqpbroker fixtures" not in result.stdout  # no header line when embedded


def test_each_test_gets_a_vhost_that_is_deleted_after_it(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        """
        import pika

        seen = []

        def test_first(amqp_broker, amqp_vhost, amqp_url):
            assert amqp_vhost in amqp_url and amqp_vhost.startswith("test-")
            assert "test_first" in amqp_vhost
            with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
                connection.channel().queue_declare("mine")
            assert "mine" in amqp_broker.core.vhosts[amqp_vhost].queues
            seen.append(amqp_vhost)

        def test_second(amqp_broker, amqp_vhost):
            assert amqp_vhost != seen[0]
            assert seen[0] not in amqp_broker.core.vhosts
            assert amqp_broker.core.vhosts[amqp_vhost].queues == {}
        """,
    )
    assert passed(result, 2), result.stdout + result.stderr


VERSION_PROJECT = """
import pika
import pytest

from amqpbroker.testing.pytest_plugin import each_version


def version(url):
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        return connection._impl.server_properties["version"]


def test_session_default(amqp_url, request):
    expected = request.config.getoption("--amqp-rabbitmq-version") or "4.0"
    assert version(amqp_url).startswith(expected + ".")


@pytest.mark.rabbitmq_version("3.10")
def test_marked(amqp_url, amqp_broker):
    assert version(amqp_url) == "3.10.8"


@each_version("4.1", "4.3")
def test_each(amqp_url, rabbitmq_version):
    assert version(amqp_url).startswith(rabbitmq_version + ".")
"""


def test_the_rabbitmq_version_option_ini_and_marker(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, VERSION_PROJECT)
    assert passed(result, 4), result.stdout + result.stderr
    result = run_pytest(tmp_path, VERSION_PROJECT, "--amqp-rabbitmq-version", "3.10")
    assert passed(result, 4), result.stdout + result.stderr
    (tmp_path / "test_ini.py").write_text(
        "def test_ini(amqp_url, amqp_broker):\n"
        "    assert amqp_broker.settings.rabbitmq_version == '4.2'\n"
    )
    result = run_pytest(tmp_path, VERSION_PROJECT, "-o", "amqp_rabbitmq_version=4.2", "test_ini.py")
    assert passed(result, 1), result.stdout + result.stderr


def test_external_broker_without_management_cleans_up_what_tests_declared(
    tmp_path: Path, amqp_broker: amqpbroker.Broker, amqp_vhost: str, amqp_url: str
) -> None:
    # This session's embedded broker plays the external RabbitMQ for the subprocess.
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        connection.channel().queue_declare("pre-existing")
    result = run_pytest(
        tmp_path,
        """
        import pika

        def test_declares_things(amqp_url, amqp_vhost):
            assert "127.0.0.1" in amqp_url
            connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
            channel = connection.channel()
            channel.exchange_declare("ex", exchange_type="fanout", durable=True)
            channel.queue_declare("durable-q", durable=True)
            channel.queue_declare("", durable=True)  # server-named, not exclusive
            channel.queue_bind("durable-q", "ex")
            channel.queue_declare("pre-existing", passive=True)
            channel.basic_publish("ex", "", b"left behind")
            # The connection is left open on purpose: the cleanup cuts it.

        def test_inspector_is_skipped(amqp_inspector):
            raise AssertionError("not reached")

        def test_clock_is_skipped(amqp_clock):
            raise AssertionError("not reached")
        """,
        "--amqp-url",
        amqp_url,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed, 2 skipped" in result.stdout.splitlines()[-1], output
    assert "amqp_inspector looks inside the embedded broker" in result.stdout
    assert "amqp_clock drives the embedded broker's time" in result.stdout
    assert "each test's declared queues and exchanges are deleted after it" in result.stdout
    assert ":***@" in result.stdout and "guest:guest" not in result.stdout

    vhost = amqp_broker.core.vhosts[amqp_vhost]  # type: ignore[union-attr]
    assert amqp_broker.call(lambda: sorted(vhost.queues)) == ["pre-existing"]
    assert "ex" not in amqp_broker.call(lambda: list(vhost.exchanges))
    sessions = amqp_broker.call(lambda: [s for s in amqp_broker.core.sessions if s.vhost is vhost])
    assert sessions == []


def test_amqp_clock_is_frozen_for_its_test_only(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        """
        import time

        import pika

        from amqpbroker.testing import eventually

        def test_a_day_passes(amqp_url, amqp_clock):
            connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
            channel = connection.channel()
            channel.confirm_delivery()
            channel.queue_declare("q", arguments={"x-message-ttl": 86_400_000})
            channel.basic_publish("", "q", b"m")
            before = amqp_clock()
            amqp_clock.advance(86_399.999)
            assert channel.queue_declare("q", passive=True).method.message_count == 1
            amqp_clock.advance(0.001)
            assert channel.queue_declare("q", passive=True).method.message_count == 0
            assert amqp_clock() == before + 86_400
            connection.close()

        def test_the_next_test_runs_on_real_time_again(amqp_broker):
            first = amqp_broker.clock()
            eventually(lambda: amqp_broker.clock() > first)  # real time moves it
            assert amqp_broker.clock() - time.time() > 86_399  # it never goes back
        """,
    )
    assert passed(result, 2), result.stdout + result.stderr


def test_embedded_broker_settings_come_from_ini_and_command_line(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        """
        def test_settings(amqp_broker):
            assert amqp_broker.settings.consumer_timeout == 60000
            assert amqp_broker.settings.max_connections == 3
            assert amqp_broker.settings.loopback_users == ("guest", "admin")
        """,
        "-o",
        "amqp_broker_settings=consumer_timeout = 60000",
        "--amqp-setting",
        "max_connections=3",
        "--amqp-setting",
        "loopback_users=guest, admin",
    )
    assert passed(result, 1), result.stdout + result.stderr
    assert "embedded broker with consumer_timeout=60000, max_connections=3" in result.stdout
    refused = run_pytest(tmp_path, "def test_x(amqp_broker): pass", "--amqp-setting", "bogus=1")
    assert refused.returncode == 4
    assert "amqp broker setting 'bogus=1'" in refused.stderr


def test_environment_variable_selects_the_broker(tmp_path: Path, amqp_url: str) -> None:
    result = run_pytest(
        tmp_path,
        """
        def test_url(amqp_url):
            assert amqp_url.startswith("amqp://guest:guest@127.0.0.1:")
        """,
        env={"AMQPBROKER_TEST_URL": amqp_url},
    )
    assert passed(result, 1), result.stdout + result.stderr
    assert "amqpbroker fixtures: external broker amqp://guest:***@127.0.0.1" in result.stdout


def test_unreachable_external_broker_fails_with_its_url(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        """
        def test_url(amqp_url):
            pass
        """,
        "--amqp-url",
        "amqp://guest:secret@127.0.0.1:1/",
    )
    assert result.returncode == 1
    assert "cannot reach the AMQP broker at amqp://guest:***@127.0.0.1:1/" in result.stdout
    assert "secret" not in result.stdout


def test_unreachable_management_api_fails_with_its_url(tmp_path: Path, amqp_url: str) -> None:
    result = run_pytest(
        tmp_path,
        """
        def test_url(amqp_url):
            pass
        """,
        "--amqp-url",
        amqp_url,
        "--amqp-management-url",
        "http://guest:secret@127.0.0.1:1/",
    )
    assert result.returncode == 1
    assert "cannot use the management API at http://guest:***@127.0.0.1:1" in result.stdout


class FakeManagementAPI:
    """The four management API calls the plugin makes, served from the embedded broker."""

    def __init__(self, broker: amqpbroker.Broker) -> None:
        self.broker = broker
        self.calls: list[tuple[str, str, object]] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = urllib.parse.unquote(self.path)
                api.calls.append((self.command, path, body))
                expected = "Basic " + base64.b64encode(b"guest:guest").decode()
                if self.headers.get("Authorization") != expected:
                    return self._reply(401, b'{"error":"not_authorised"}')
                vhosts = api.broker.core.vhosts  # type: ignore[union-attr]
                name = path.removeprefix("/api/vhosts/")
                if self.command == "PUT" and path.startswith("/api/vhosts/"):
                    api.broker.add_vhost(name)
                elif self.command == "DELETE" and path.startswith("/api/vhosts/"):
                    if name not in vhosts:
                        return self._reply(404, b'{"error":"Object Not Found"}')
                    api.broker.delete_vhost(name)
                return self._reply(200 if self.command == "GET" else 204, b"{}")

            do_GET = do_PUT = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://guest:guest@127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_external_broker_with_management_gets_a_vhost_per_test(
    tmp_path: Path, amqp_broker: amqpbroker.Broker
) -> None:
    api = FakeManagementAPI(amqp_broker)
    try:
        result = run_pytest(
            tmp_path,
            """
            import pika

            def test_one(amqp_vhost, amqp_url):
                assert amqp_vhost.startswith("amqpbroker-test-") and "test_one" in amqp_vhost
                with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
                    connection.channel().queue_declare("shared-name", durable=True)

            def test_two(amqp_vhost, amqp_url):
                with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
                    connection.channel().queue_declare("shared-name", durable=False)
            """,
            "--amqp-url",
            amqp_broker.url,
            "--amqp-management-url",
            api.url,
        )
    finally:
        api.close()
    assert passed(result, 2), result.stdout + result.stderr
    assert "a vhost per test via http://guest:***@127.0.0.1:" in result.stdout
    created = [path for verb, path, _ in api.calls if verb == "PUT" and "/vhosts/" in path]
    deleted = [path for verb, path, _ in api.calls if verb == "DELETE"]
    assert len(created) == 2 and sorted(created) == sorted(deleted)
    grants = [(path, body) for verb, path, body in api.calls if "/permissions/" in path]
    assert len(grants) == 2
    assert all(path.endswith("/guest") for path, _ in grants)
    assert all(body == {"configure": ".*", "write": ".*", "read": ".*"} for _, body in grants)
    leftovers = [v for v in amqp_broker.core.vhosts if v.startswith("amqpbroker-test-")]  # type: ignore[union-attr]
    assert leftovers == []
