--- WebSocket routes: path pattern -> handler module.
-- `{name}` matches one path segment of unreserved URL characters and is
-- given to the handler as conn.params.name. Any other path is refused
-- with 404 before the WebSocket handshake.
return {
    { path = "/ws/chat/{room}/", handler = "handlers.chat" },
}
