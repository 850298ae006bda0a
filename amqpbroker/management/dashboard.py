"""The read-only dashboard served at ``/``: one HTML page whose script polls the API.

No build step and no framework: the page is this string.  It logs in with HTTP
basic auth (guest/guest first, then whatever the form is given, kept in
sessionStorage) and refreshes every ``REFRESH_MS``.  Names are inserted with
``textContent`` only, never as HTML, since queue and client names come from
clients.
"""

REFRESH_MS = 2000

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>amqpbroker</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #f6f7f9; }
  header { background: #2c3e50; color: #fff; padding: 10px 20px; display: flex;
           justify-content: space-between; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  main { padding: 16px 20px; }
  .cards { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 18px; }
  .card { background: #fff; border: 1px solid #dde1e6; border-radius: 6px;
          padding: 8px 14px; min-width: 110px; }
  .card b { display: block; font-size: 22px; }
  .card span { color: #666; font-size: 12px; }
  h2 { font-size: 15px; margin: 18px 0 6px; }
  table { border-collapse: collapse; background: #fff; width: 100%; }
  th, td { border: 1px solid #dde1e6; padding: 4px 8px; text-align: left; }
  th { background: #eef1f4; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .empty td { color: #888; font-style: italic; }
  #login { display: none; background: #fff; border: 1px solid #dde1e6; padding: 12px;
           max-width: 320px; }
  #status { font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>amqpbroker <span id="version"></span></h1>
  <div id="status">connecting...</div>
</header>
<main>
  <form id="login">
    <p>Log in to the management API</p>
    <p><input id="user" placeholder="user" value="guest">
       <input id="pass" type="password" placeholder="password"></p>
    <button type="submit">Log in</button>
  </form>
  <section class="cards" id="overview"></section>
  <h2>Queues</h2>
  <table id="queues">
    <thead><tr><th>Virtual host</th><th>Name</th><th>Type</th><th>State</th>
      <th>Ready</th><th>Unacked</th><th>Total</th><th>Consumers</th><th>Published</th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <h2>Connections</h2>
  <table id="connections">
    <thead><tr><th>Name</th><th>User</th><th>Virtual host</th><th>Client</th>
      <th>Channels</th><th>State</th></tr></thead>
    <tbody></tbody>
  </table>
</main>
<script>
"use strict";
const REFRESH_MS = __REFRESH_MS__;
let auth = sessionStorage.getItem("amqpbroker-auth") || ("Basic " + btoa("guest:guest"));

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: auth } });
  if (response.status === 401) { throw new Error("unauthorized"); }
  if (!response.ok) { throw new Error(path + ": HTTP " + response.status); }
  return response.json();
}

function cell(row, value, numeric) {
  const td = row.insertCell();
  td.textContent = value === undefined || value === null ? "" : String(value);
  if (numeric) { td.className = "num"; }
}

function fill(table, items, columns, emptyText) {
  const body = document.querySelector(table + " tbody");
  body.replaceChildren();
  if (items.length === 0) {
    const row = body.insertRow();
    row.className = "empty";
    const td = row.insertCell();
    td.colSpan = columns.length;
    td.textContent = emptyText;
    return;
  }
  for (const item of items) {
    const row = body.insertRow();
    for (const [get, numeric] of columns) { cell(row, get(item), numeric); }
  }
}

function card(label, value) {
  const div = document.createElement("div");
  div.className = "card";
  const b = document.createElement("b");
  b.textContent = String(value);
  const span = document.createElement("span");
  span.textContent = label;
  div.append(b, span);
  return div;
}

async function refresh() {
  try {
    const [overview, queues, connections] = await Promise.all([
      api("/api/overview"), api("/api/queues"), api("/api/connections")]);
    document.getElementById("login").style.display = "none";
    document.getElementById("version").textContent = overview.amqpbroker_version +
      " (RabbitMQ " + overview.rabbitmq_version + " compatible) on " + overview.node;
    const totals = overview.object_totals, q = overview.queue_totals;
    const stats = overview.message_stats || {};
    const rate = (name) => ((stats[name + "_details"] || {}).rate || 0) + "/s";
    document.getElementById("overview").replaceChildren(
      card("connections", totals.connections), card("channels", totals.channels),
      card("queues", totals.queues), card("consumers", totals.consumers),
      card("ready", q.messages_ready), card("unacked", q.messages_unacknowledged),
      card("publish rate", rate("publish")), card("deliver rate", rate("deliver_get")));
    fill("#queues", queues, [
      [(x) => x.vhost], [(x) => x.name], [(x) => x.type], [(x) => x.state],
      [(x) => x.messages_ready, true], [(x) => x.messages_unacknowledged, true],
      [(x) => x.messages, true], [(x) => x.consumers, true],
      [(x) => (x.message_stats || {}).publish || 0, true]], "no queues");
    fill("#connections", connections, [
      [(x) => x.user_provided_name || x.name], [(x) => x.user], [(x) => x.vhost],
      [(x) => (x.client_properties || {}).product], [(x) => x.channels, true],
      [(x) => x.state]], "no connections");
    document.getElementById("status").textContent =
      "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    document.getElementById("status").textContent = String(error.message);
    if (error.message === "unauthorized") {
      document.getElementById("login").style.display = "block";
    }
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = document.getElementById("user").value;
  const pass = document.getElementById("pass").value;
  auth = "Basic " + btoa(user + ":" + pass);
  sessionStorage.setItem("amqpbroker-auth", auth);
  refresh();
});

refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
""".replace("__REFRESH_MS__", str(REFRESH_MS))
