// The chat page: join a room, chat, see who is there. The connection logic
// (reconnect, resume, heartbeats, presence) is the ChatClient module's.
import { ChatClient } from "./js/moontide-chat.js";

const $ = (id) => document.getElementById(id);
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
let chat = null;

// A short, stable name for a connection id or user id.
function who(m) {
  return m.name || m.user_id || (m.connection_id || "?").slice(0, 8);
}

function line(text, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  li.append(text);
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
  return li;
}

function join(room) {
  if (chat) chat.close();
  $("messages").replaceChildren();
  $("members").replaceChildren();
  chat = new ChatClient({ url: `${scheme}//${location.host}`, room, presenceMs: 10000 });
  chat.on("state", (s) => {
    $("state").textContent = s === "open" ? `in #${room}` : s;
    $("state").className = `state ${s}`;
    const open = s === "open";
    $("text").disabled = $("send").disabled = !open && s !== "reconnecting";
  });
  chat.on("message", (m) => {
    const li = line("");
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who(m);
    li.append(name, m.text);
  });
  chat.on("recovered", (r) => {
    line(r.ok ? `reconnected: ${r.missed} missed message(s) caught up`
      : `reconnected, but ${r.reason}`, "note");
  });
  chat.on("members", (list) => {
    $("count").textContent = `(${list.length})`;
    $("members").replaceChildren(...list.map((m) => {
      const li = document.createElement("li");
      li.textContent = who(m);
      return li;
    }));
  });
  chat.connect();
  history.replaceState(null, "", `#${room}`);
  $("text").focus();
}

$("join").addEventListener("submit", (e) => {
  e.preventDefault();
  if ($("room").checkValidity()) join($("room").value);
});

$("say").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (text && chat) {
    chat.send(text);
    $("text").value = "";
  }
});

const fromHash = decodeURIComponent(location.hash.slice(1));
if (/^[A-Za-z0-9_.~-]+$/.test(fromHash)) $("room").value = fromHash;
join($("room").value);
window.moontideChat = () => chat; // for tests and the curious
