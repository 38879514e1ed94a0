// chat.js - the chat protocol of lua/handlers/chat.lua on Node's `ws`, the
// peer scripts/bench --compare measures moontide against. Idiomatic ws
// code: one process, no cluster, no compression.
//
// Usage: node chat.js PORT
"use strict";
const http = require("http");
const crypto = require("crypto");
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2]);
const rooms = new Map(); // room -> Set of sockets
const HEARTBEAT_ACK = '{"type":"heartbeat_ack"}';
const ERR_JSON = '{"type":"error","error":"json_decode_error"}';
const ERR_INVALID = '{"type":"error","error":"invalid_message"}';
const ERR_UNKNOWN = '{"type":"error","error":"unknown_type"}';

const server = http.createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404, { "content-type": "application/json" });
  res.end(req.url === "/healthz" ? '{"status":"healthy"}' : '{"error":"not_found"}');
});
const wss = new WebSocketServer({ noServer: true });

server.on("upgrade", (req, socket, head) => {
  const m = /^\/ws\/chat\/([\w.~-]+)\/$/.exec(req.url);
  if (!m) {
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => join(ws, m[1]));
});

function join(ws, room) {
  const id = crypto.randomUUID();
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(ws);
  ws.on("message", (data, isBinary) => {
    if (isBinary) return ws.close(1003);
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return ws.send(ERR_JSON);
    }
    if (msg === null || typeof msg !== "object" || Array.isArray(msg)) return ws.send(ERR_INVALID);
    if (msg.type === "message") {
      if (typeof msg.text !== "string") return ws.send(ERR_INVALID);
      const out = JSON.stringify({ type: "message", text: msg.text, connection_id: id });
      for (const peer of members) peer.send(out);
    } else if (msg.type === "heartbeat") {
      ws.send(HEARTBEAT_ACK);
    } else {
      ws.send(ERR_UNKNOWN);
    }
  });
  ws.on("close", () => {
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  });
}

server.listen(port, "127.0.0.1");
