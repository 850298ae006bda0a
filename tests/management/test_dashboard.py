"""The dashboard at / in a real headless Chromium: it logs in and shows live data.

Skipped where Chromium is not installed (``apt-get install chromium``)."""

from __future__ import annotations

import html.parser
import pathlib
import shutil
import subprocess

import pika
import pytest

import amqpbroker

from .conftest import Http

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
# Lets the page's script run its first refresh (virtual time waits for fetches).
VIRTUAL_TIME_MS = 3000


def chromium(tmp_path: pathlib.Path, *args: str) -> str:
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--virtual-time-budget={VIRTUAL_TIME_MS}", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Rows(html.parser.HTMLParser):
    """The text of each row of one table's body."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.inside = False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.inside = dict(attrs).get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag == "td":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif tag == "td" and self.cell is not None:
            self.rows[-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table(dom: str, table_id: str) -> list[list[str]]:
    parser = Rows(table_id)
    parser.feed(dom)
    return [row for row in parser.rows if row]


def test_dashboard_shows_live_queues_and_connections(
    mgmt: amqpbroker.Broker, http: Http, tmp_path: pathlib.Path
) -> None:
    params = pika.URLParameters(mgmt.url)
    params.client_properties = {"connection_name": "dashboard-client"}
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare("dash-<b>q</b>")  # a name with markup: shown as text
    for _ in range(3):
        channel.basic_publish("", "dash-<b>q</b>", b"x")
    try:
        dom = chromium(tmp_path, "--dump-dom", mgmt.management_url + "/")
        rows = table(dom, "queues")
        assert ["/", "dash-<b>q</b>", "classic", "running", "3", "0", "3", "0", "3"] in rows
        assert any(row[0] == "dashboard-client" for row in table(dom, "connections"))
        screenshot = tmp_path / "dashboard.png"
        chromium(tmp_path, "--window-size=1100,700", f"--screenshot={screenshot}",
                 mgmt.management_url + "/")  # fmt: skip
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        channel.queue_delete("dash-<b>q</b>")
        connection.close()


def test_dashboard_page_needs_no_login(http: Http) -> None:
    status, body, headers = http.request("GET", "/", headers={"Authorization": ""})
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert '<table id="queues">' in body
