// The status page: /status and a few /metrics figures, every 2 s, for
// someone without Grafana. Rates and the p95 come from the change between
// two scrapes.
const $ = (id) => document.getElementById(id);
let previous = null;

// Prometheus text -> { "name{labels}": value }.
function parse(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const i = line.lastIndexOf(" ");
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

function sum(m, name) {
  let total = 0;
  for (const [k, v] of Object.entries(m)) if (k === name || k.startsWith(`${name}{`)) total += v;
  return total;
}

// The q-quantile of a histogram's increase between two scrapes.
function quantile(q, now, before, name) {
  const buckets = [];
  for (const [k, v] of Object.entries(now)) {
    const le = k.startsWith(`${name}_bucket{`) && /le="([^"]+)"/.exec(k);
    if (le) buckets.push([Number(le[1]), v - (before[k] || 0)]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const [le, n] of buckets) {
    const last = merged[merged.length - 1];
    if (last && last[0] === le) last[1] += n;
    else merged.push([le, n]);
  }
  const total = merged.length ? merged[merged.length - 1][1] : 0;
  if (!total) return null;
  let lower = 0, below = 0;
  for (const [le, n] of merged) {
    if (n >= q * total) {
      if (!Number.isFinite(le)) return lower;
      return lower + (le - lower) * ((q * total - below) / Math.max(n - below, 1));
    }
    lower = Number.isFinite(le) ? le : lower;
    below = n;
  }
  return lower;
}

function show(rows) {
  $("figures").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    return [dt, dd];
  }));
}

async function tick() {
  try {
    const [status, metrics] = await Promise.all([
      fetch("/status").then((r) => r.json()),
      fetch("/metrics").then((r) => r.text()).then(parse),
    ]);
    const now = performance.now() / 1000;
    const rows = [
      ["connections", status.active_connections],
      ["rooms here", status.groups ? status.groups.local : "?"],
      ["channel layer", status.channel_layer],
      ["workers", status.workers ? status.workers.length : 1],
      ["uptime", `${Math.round(status.uptime)} s`],
    ];
    if (previous) {
      const dt = now - previous.at;
      const rate = (name) => ((sum(metrics, name) - sum(previous.m, name)) / dt).toFixed(1);
      rows.push(["messages/s", rate("websocket_messages_total")]);
      rows.push(["errors/s", rate("websocket_errors_total")]);
      const p95 = quantile(0.95, metrics, previous.m, "websocket_message_duration_seconds");
      rows.push(["handler p95", p95 === null ? "no messages" : `${(p95 * 1000).toFixed(2)} ms`]);
    }
    if (status.redis) rows.push(["redis", status.redis.connected ? "connected" : "down"]);
    if (status.tls) rows.push(["certificate", `${status.tls.subject}, ${Math.floor(status.tls.expires_in_seconds / 86400)} days left`]);
    show(rows);
    previous = { at: now, m: metrics };
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("updated").textContent = `cannot reach the server (${e.message})`;
  }
}

tick();
setInterval(tick, 2000);
