// moontide-chat.js - a client for moontide's chat protocol (lua/handlers/chat.lua),
// for browsers and Node, with no dependencies.
//
//   import { ChatClient } from "./moontide-chat.js";
//   const chat = new ChatClient({ url: "ws://localhost:8000", room: "lobby" });
//   chat.on("message", (m) => ...);   // {text, offset, epoch, connection_id | user_id, ...}
//   chat.on("members", (list) => ...); // the room's members, after each change
//   chat.on("state", (s) => ...);      // "connecting", "open", "reconnecting", "closed"
//   chat.on("recovered", (r) => ...);  // after a reconnect: {ok, reason, missed}
//   chat.connect(); chat.send("hello"); chat.close();
//
// What it takes care of:
// - Every message once, in order, across reconnects: it remembers the epoch and
//   offset of the last message and reconnects with ?epoch=E&offset=N; the server
//   sends what was missed (or says it cannot: "recovered" with ok false), and any
//   offset already seen is dropped.
// - Reconnecting with jittered exponential backoff (options.backoff: {min, max}
//   in ms), and after a server drain (close 1001/1012 whose reason carries
//   {"reconnect_after_ms": N}) after that hint instead.
// - Heartbeats every options.heartbeatMs (default 15 000): no answer within the
//   next interval and the connection is dropped and made again.
// - Messages sent while disconnected, or while a close is under way, wait (up to
//   options.outboxMax, default 100) and go out on reconnect.
// - The member list: asked for on every (re)connect, after each join/leave event
//   the server sends (route option presence_events), when a message comes from
//   someone not on it (at most once a second), and every options.presenceMs if
//   set (default 0: never; a page left open in a quiet room may want it).
// Node 18-20 have no global WebSocket: pass one (options.WebSocket, e.g. the ws
// package's). options.token is sent as ?token= for the authenticated mode.

export class ChatClient {
  constructor(options) {
    this.options = {
      backoff: { min: 250, max: 15000 },
      heartbeatMs: 15000,
      outboxMax: 100,
      ...options,
    };
    this.WebSocket = this.options.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) throw new Error("no WebSocket: pass options.WebSocket");
    this.handlers = {};
    this.state = "closed";
    this.epoch = null;
    this.offset = 0;
    this.attempts = 0;
    this.outbox = [];
    this.members = [];
    this.socket = null;
    this.timers = {};
  }

  on(event, fn) {
    (this.handlers[event] = this.handlers[event] || []).push(fn);
    return this;
  }

  emit(event, value) {
    for (const fn of this.handlers[event] || []) fn(value);
  }

  setState(s) {
    if (this.state !== s) {
      this.state = s;
      this.emit("state", s);
    }
  }

  url() {
    const base = this.options.url.replace(/\/$/, "");
    const params = [];
    if (this.epoch) params.push(`epoch=${encodeURIComponent(this.epoch)}&offset=${this.offset}`);
    if (this.options.token) params.push(`token=${encodeURIComponent(this.options.token)}`);
    const q = params.length ? `?${params.join("&")}` : "";
    return `${base}/ws/chat/${encodeURIComponent(this.options.room)}/${q}`;
  }

  connect() {
    this.closing = false;
    this.setState(this.attempts ? "reconnecting" : "connecting");
    const ws = new this.WebSocket(this.url());
    this.socket = ws;
    ws.onopen = () => {
      if (ws !== this.socket) return;
      this.attempts = 0;
      this.setState("open");
      this.raw({ type: "presence" });
      for (const text of this.outbox.splice(0)) this.raw({ type: "message", text });
      this.beat();
      clearInterval(this.timers.presence);
      if (this.options.presenceMs > 0) {
        this.timers.presence = setInterval(() => this.raw({ type: "presence" }),
          this.options.presenceMs);
      }
    };
    ws.onmessage = (ev) => {
      if (ws === this.socket) this.receive(typeof ev.data === "string" ? ev.data : String(ev.data));
    };
    ws.onclose = (ev) => {
      if (ws === this.socket) this.dropped(ev.code, ev.reason);
    };
    ws.onerror = () => {}; // a close follows
  }

  // A frame from the server.
  receive(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    this.alive = true;
    switch (m.type) {
      case "message":
        return this.deliver(m);
      case "history":
        for (const h of m.messages || []) this.deliver(h);
        return;
      case "recovered":
        if (m.epoch && m.epoch !== this.epoch) {
          this.epoch = m.epoch; // history was lost: offsets start again
          this.offset = 0;
        }
        return this.emit("recovered", { ok: m.ok, reason: m.reason, missed: m.missed });
      case "presence":
        if (m.members) {
          this.members = m.members;
          return this.emit("members", m.members);
        }
        if (m.event) this.raw({ type: "presence" }); // a join or leave: ask again
        return;
      case "heartbeat_ack":
        return;
      case "error":
        return this.emit("error", m);
      default:
        return;
    }
  }

  deliver(m) {
    if (typeof m.offset === "number") {
      if (m.epoch === this.epoch && m.offset <= this.offset) return; // seen already
      if (m.epoch !== this.epoch) this.epoch = m.epoch;
      this.offset = m.offset;
    }
    this.emit("message", m);
    this.check_member(m);
  }

  // A sender not on the member list: the list is out of date.
  check_member(m) {
    const id = m.user_id !== undefined ? "user_id" : "connection_id";
    if (m[id] === undefined || this.members.some((x) => x[id] === m[id])) return;
    const now = Date.now();
    if (now - (this.asked_at || 0) < 1000) return;
    this.asked_at = now;
    this.raw({ type: "presence" });
  }

  // Open for sending: our state, and the socket's own. Between the server's
  // close frame and the end of the closing handshake the socket is CLOSING
  // (2) while we still say "open"; what is sent then would be lost.
  writable() {
    return this.socket && this.state === "open" && this.socket.readyState === 1;
  }

  raw(obj) {
    if (this.writable()) this.socket.send(JSON.stringify(obj));
  }

  send(text) {
    if (this.writable()) return this.raw({ type: "message", text });
    if (this.outbox.length >= this.options.outboxMax) this.outbox.shift();
    this.outbox.push(text);
  }

  beat() {
    clearInterval(this.timers.beat);
    this.alive = true;
    this.timers.beat = setInterval(() => {
      if (!this.alive) return this.socket && this.socket.close(4000, "heartbeat timeout");
      this.alive = false;
      this.raw({ type: "heartbeat" });
    }, this.options.heartbeatMs);
  }

  // The connection ended: try again, unless we closed it.
  dropped(code, reason) {
    clearInterval(this.timers.beat);
    clearInterval(this.timers.presence);
    this.socket = null;
    if (this.closing) return this.setState("closed");
    this.setState("reconnecting");
    let delay;
    try {
      const hint = JSON.parse(reason || "null");
      if ((code === 1001 || code === 1012) && hint && typeof hint.reconnect_after_ms === "number") {
        delay = hint.reconnect_after_ms; // the server is draining: its hint
      }
    } catch {
      delay = undefined;
    }
    if (delay === undefined) {
      const { min, max } = this.options.backoff;
      const ceiling = Math.min(max, min * 2 ** this.attempts);
      delay = ceiling / 2 + Math.random() * ceiling / 2; // jittered
    }
    this.attempts++;
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.connect(), delay);
  }

  close() {
    this.closing = true;
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.beat);
    clearInterval(this.timers.presence);
    if (this.socket) this.socket.close(1000, "bye");
    else this.setState("closed");
  }
}
