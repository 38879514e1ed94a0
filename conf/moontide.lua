-- moontide settings. Every key can be overridden by an environment
-- variable MOONTIDE_<KEY> (MOONTIDE_PORT=9000) and some by flags
-- (moontide --port 9000); see `moontide --help` and README.md.
return {
    host = "0.0.0.0",
    port = 8000,
    color = "blue",                 -- blue | green: labels logs and metrics
    heartbeat_interval = 30,        -- seconds between WebSocket pings
    graceful_shutdown_timeout = 10, -- seconds a drain may take
    workers = "auto",               -- processes on the one port: one per CPU
    max_connections = "auto",       -- the server's; auto: what the fd limit allows
    max_message_bytes = "1M",       -- larger messages close with 1009
    max_send_queue_bytes = "4M",    -- per connection; past it: close 1013
    log_level = "INFO",
    scripts = "lua",                -- handlers, routes, policies
    redis_url = nil,                -- nil: in-memory channel layer
    permessage_deflate = false,     -- true: compress for clients that offer it
    trusted_proxies = { "127.0.0.1", "::1" }, -- whose X-Forwarded-For counts
}
