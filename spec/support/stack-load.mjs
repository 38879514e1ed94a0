// stack-load: chat clients and an HTTP poller through the stack's edge,
// for the stack test's deploy (spec/stack/). The clients are the project's
// ChatClient (resume from the last offset, the drain hint, the outbox).
//
// Usage: node stack-load.mjs BASE_URL CLIENTS ROOMS STOP_FILE RESULT_FILE
// BASE_URL is http://127.0.0.1:PORT (nginx). Every client sends a message
// about every 400 ms; the poller GETs /healthz every 50 ms. Progress goes
// to RESULT_FILE.progress each second; when STOP_FILE appears, sending
// stops, the clients are given time to hear everything (a quiet second),
// and RESULT_FILE gets the verdict as JSON:
//   clients, open (clients open at the end), reconnected (clients that
//   reconnected at least once), closes {code: count}, sent, received,
//   gaps (room messages some member of the room never got),
//   unconfirmed (sent messages no member got: sent into a closing socket),
//   http {requests, failed, errors: [first few]}.
import { createRequire } from "node:module";
import fs from "node:fs";
import nodeHttp from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ChatClient } from "../../clients/js/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../clients/js/package.json"));
const WebSocket = require("ws");

const [base, nclients, nrooms, stopFile, resultFile] = process.argv.slice(2);
const wsBase = base.replace(/^http/, "ws");
const closes = {};

// The ws constructor ChatClient uses, counting how connections ended.
class Counted extends WebSocket {
  constructor(url) {
    super(url);
    this.on("close", (code) => { closes[code] = (closes[code] || 0) + 1; });
  }
}

const clients = [];
for (let i = 0; i < Number(nclients); i++) {
  const room = `stack${i % Number(nrooms)}`;
  const chat = new ChatClient({ url: wsBase, room, WebSocket: Counted, heartbeatMs: 5000 });
  const c = { chat, room, got: new Set(), sent: [], reconnects: 0, seq: 0 };
  chat.on("message", (m) => c.got.add(m.text));
  chat.on("state", (s) => { if (s === "reconnecting") c.reconnects++; });
  chat.connect();
  clients.push(c);
}

let sending = true;
const senders = clients.map((c, i) => setTimeout(function tick() {
  if (!sending) return;
  if (c.chat.state === "open") {
    const text = `c${i}:${c.seq++}`;
    c.sent.push(text);
    c.chat.send(text);
  }
  senders[i] = setTimeout(tick, 300 + Math.random() * 200);
}, Math.random() * 400));

// One new connection per request, as a health checker makes them: a kept-alive
// connection that nginx closes as idle while reloading would fail the next
// request on it at the client's end (fetch does not retry), which says
// nothing about the deploy.
function get(url) {
  return new Promise((resolve, reject) => {
    const req = nodeHttp.get(url, { agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error("timeout")));
  });
}

const http = { requests: 0, failed: 0, errors: [] };
const poller = setInterval(async () => {
  http.requests++;
  try {
    const status = await get(`${base}/healthz`);
    if (status !== 200) throw new Error(`status ${status}`);
  } catch (e) {
    http.failed++;
    if (http.errors.length < 5) http.errors.push(String(e.message || e));
  }
}, 50);

function counts() {
  const open = clients.filter((c) => c.chat.state === "open").length;
  const sent = clients.reduce((n, c) => n + c.sent.length, 0);
  const received = clients.reduce((n, c) => n + c.got.size, 0);
  return { clients: clients.length, open, sent, received,
    reconnected: clients.filter((c) => c.reconnects > 0).length, closes, http };
}

// Written whole (a rename), so a reader never sees half a file.
function publish(file, value) {
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(value));
  fs.renameSync(`${file}.tmp`, file);
}

const progress = setInterval(() => publish(`${resultFile}.progress`, counts()), 1000);

function verdict() {
  const rooms = {};
  for (const c of clients) (rooms[c.room] = rooms[c.room] || []).push(c);
  let gaps = 0, unconfirmed = 0;
  for (const members of Object.values(rooms)) {
    const heard = new Set();
    for (const m of members) for (const t of m.got) heard.add(t);
    for (const m of members) gaps += heard.size - m.got.size;
    for (const m of members) for (const t of m.sent) if (!heard.has(t)) unconfirmed++;
  }
  return { ...counts(), gaps, unconfirmed };
}

const watch = setInterval(() => {
  if (!fs.existsSync(stopFile)) return;
  clearInterval(watch);
  sending = false;
  clearInterval(poller);
  // Wait until nothing new has arrived for a second (at most 20 s).
  let last = -1, quiet = 0, waited = 0;
  const settle = setInterval(() => {
    const now = counts().received;
    quiet = now === last ? quiet + 1 : 0;
    last = now;
    waited++;
    if (quiet >= 4 || waited >= 80) {
      clearInterval(settle);
      clearInterval(progress);
      publish(resultFile, verdict());
      for (const c of clients) c.chat.close();
      setTimeout(() => process.exit(0), 500);
    }
  }, 250);
}, 100);
