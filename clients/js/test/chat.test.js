// The chat client against the real server (the moontide binary, started here
// on a free port, stopped by its PID): two clients chat and see each other;
// a dropped connection resumes with nothing lost or repeated; what is sent
// while disconnected goes out on reconnect; a drained server's hint is kept.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import WebSocket from "ws";
import { ChatClient } from "../index.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const binary = process.env.MOONTIDE_BINARY || path.join(root, "build/moontide");
let server, url;

// Polls fn until it is truthy, or fails after ms.
async function until(fn, what, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

before(async () => {
  server = spawn(binary, [], {
    cwd: root,
    env: { ...process.env, MOONTIDE_PORT: "0", MOONTIDE_HOST: "127.0.0.1", MOONTIDE_WORKERS: "1",
      MOONTIDE_LOG_LEVEL: "INFO", MOONTIDE_DRAIN_RECONNECT_JITTER: "0.2" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let buffer = "";
  const port = await new Promise((resolve, reject) => {
    server.on("exit", (code) => reject(new Error(`moontide exited (${code})`)));
    server.stdout.on("data", (chunk) => {
      buffer += chunk;
      for (const line of buffer.split("\n")) {
        if (line.includes('"message":"listening"')) resolve(JSON.parse(line).port);
      }
    });
  });
  url = `ws://127.0.0.1:${port}`;
});

const clients = [];

after(() => {
  // A failed test must not leave a client reconnecting forever (node would
  // never exit).
  for (const c of clients) c.close();
  if (server && server.exitCode === null) server.kill("SIGTERM");
});

// Every close a client's sockets saw, with its code and reason.
function recording(closes) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on("close", (code, reason) => closes.push({ code, reason: String(reason) }));
    }
  };
}

function client(room, extra = {}) {
  const c = new ChatClient({ url, room, WebSocket, backoff: { min: 20, max: 200 }, ...extra });
  clients.push(c);
  c.seen = [];
  c.on("message", (m) => c.seen.push(m.text));
  c.connect();
  return c;
}

test("two clients chat and see each other in the member list", async () => {
  const a = client("duo");
  const b = client("duo");
  await until(() => a.state === "open" && b.state === "open", "both open");
  await until(() => a.members.length === 2 && b.members.length === 2, "two members");
  a.send("hello");
  b.send("hi");
  await until(() => a.seen.length === 2 && b.seen.length === 2, "both messages");
  assert.deepEqual(a.seen, b.seen);
  a.close();
  b.close();
});

test("a dropped connection resumes: nothing lost, nothing twice", async () => {
  const a = client("drop");
  const b = client("drop");
  await until(() => a.state === "open" && b.state === "open", "both open");
  b.send("before");
  await until(() => a.seen.includes("before"), "before");
  const recovered = [];
  a.on("recovered", (r) => recovered.push(r));
  a.options.backoff = { min: 300, max: 300 }; // stay away while b sends
  a.socket.terminate(); // the network goes away, no close handshake
  await until(() => a.state === "reconnecting", "a reconnecting");
  for (let i = 1; i <= 5; i++) b.send(`missed ${i}`);
  await until(() => a.seen.length === 6, "the missed messages", 5000);
  assert.deepEqual(a.seen, ["before", "missed 1", "missed 2", "missed 3", "missed 4", "missed 5"]);
  assert.equal(recovered.length, 1);
  assert.deepEqual([recovered[0].ok, recovered[0].missed], [true, 5]);
  b.send("live");
  await until(() => a.seen.length === 7, "live");
  assert.equal(a.seen[6], "live");
  a.close();
  b.close();
});

test("what is sent while disconnected goes out on reconnect", async () => {
  const a = client("outbox");
  await until(() => a.state === "open", "open");
  a.options.backoff = { min: 200, max: 200 };
  a.socket.terminate();
  await until(() => a.state === "reconnecting", "reconnecting");
  a.send("queued 1");
  a.send("queued 2");
  await until(() => a.seen.length === 2, "queued messages back");
  assert.deepEqual(a.seen, ["queued 1", "queued 2"]);
  a.close();
});

test("a draining server's hint decides when to come back", async () => {
  const closes = [];
  const a = client("drain", { WebSocket: recording(closes) });
  await until(() => a.state === "open", "open");
  server.kill("SIGTERM"); // drain: every connection closed 1001 with the hint
  await until(() => closes.length >= 1, `the drain's close (state ${a.state})`);
  assert.equal(closes[0].code, 1001);
  const hint = JSON.parse(closes[0].reason).reconnect_after_ms;
  assert.ok(hint >= 0 && hint <= 200, `hint ${hint}`);
  a.close();
});
