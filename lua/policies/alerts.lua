--- policies.alerts: alert thresholds, the one source of truth.
--
-- Two consumers read this file:
--   * scripts/gen-alert-rules turns it into monitoring/alerting/rules.yml
--     (PromQL for Prometheus: every instance, fleet-wide);
--   * the core evaluates it in-process every `interval` seconds against
--     its own registry (moontide.alerting): transitions are WARNING or
--     CRITICAL log lines, moontide_alert_active{alertname,severity} and
--     GET /alerts. That is what an instance without Prometheus gets.
-- Reloaded with the other scripts.
--
-- A rule: alert, severity, for (seconds), summary, description, and the
-- condition: metric, labels (a subset to match), fn, op, threshold.
--   fn = "value"    the current value, summed over matching series
--   fn = "rate"     per-second increase over window seconds, summed
--   fn = "increase" increase over window seconds, summed
--   fn = "quantile" the q-quantile of a histogram over window seconds
--   fn = "until"    a timestamp's value minus now: the seconds left until it
-- prometheus_only = true: meaningless in-process (e.g. instance down).
-- where = "active": only for the colour that serves traffic (the one a
-- deploy stopped is expected to be down and empty; in-process: only once
-- the instance has had a connection). needs_traffic = true: only when
-- expect_traffic says the service always has users.
-- {{ $value }} in texts is the measured value. Each alert's runbook is in
-- README.md (Runbooks), linked from the generated rules (runbook_url).
-- In-process evaluation runs only with in_process_alerts = true.
return {
    interval = 10,
    -- true: this service always has users, so no connections at all on the
    -- serving colour is an incident (NoActiveConnections). false: it may
    -- sit idle (a staging server, a service used office hours only).
    expect_traffic = true,
    rules = {
        {
            alert = "NoActiveConnections", severity = "warning", ["for"] = 60,
            where = "active", needs_traffic = true,
            metric = "websocket_connections_active", fn = "value", op = "==", threshold = 0,
            summary = "No active WebSocket connections",
            description = "No active WebSocket connections for more than 60 seconds",
        },
        {
            alert = "HighErrorRate", severity = "critical", ["for"] = 30,
            metric = "websocket_errors_total", fn = "rate", window = 300, op = ">", threshold = 0.1,
            summary = "High WebSocket error rate",
            description = "WebSocket error rate is {{ $value }} errors per second",
        },
        {
            alert = "HighLatency", severity = "warning", ["for"] = 30,
            metric = "websocket_message_duration_seconds", fn = "quantile", q = 0.95,
            window = 300, op = ">", threshold = 1,
            summary = "High WebSocket message latency",
            description = "95th percentile latency is {{ $value }} seconds",
        },
        {
            alert = "InstanceDown", severity = "critical", ["for"] = 60, prometheus_only = true,
            where = "active",
            metric = "up", fn = "value", op = "==", threshold = 0,
            summary = "moontide instance down",
            description = "Prometheus could not scrape the instance for 60 seconds",
        },
        {
            alert = "NotReady", severity = "warning", ["for"] = 60,
            metric = "moontide_ready", fn = "value", op = "==", threshold = 0,
            summary = "Instance not ready",
            description = "The instance has answered /readyz with 503 for 60 seconds",
        },
        {
            alert = "SendQueueOverflows", severity = "warning", ["for"] = 60,
            metric = "websocket_errors_total", labels = { error_type = "send_queue_overflow" },
            fn = "rate", window = 300, op = ">", threshold = 0,
            summary = "Clients cannot keep up",
            description = "Send queues overflow at {{ $value }} per second",
        },
        {
            alert = "RedisUnavailable", severity = "critical", ["for"] = 30,
            metric = "moontide_channel_layer_up", labels = { kind = "redis" },
            fn = "value", op = "==", threshold = 0,
            summary = "Redis unavailable",
            description = "The Redis channel layer has been down for 30 seconds",
        },
        {
            alert = "ScriptReloadFailed", severity = "warning", ["for"] = 0,
            metric = "moontide_script_reloads_total", labels = { result = "failure" },
            fn = "increase", window = 600, op = ">", threshold = 0,
            summary = "Script reload failed",
            description = "A script reload failed in the last 10 minutes; the old scripts still run",
        },
        {
            alert = "TlsCertificateExpiresSoon", severity = "warning", ["for"] = 0,
            metric = "moontide_tls_certificate_expiry_timestamp_seconds", fn = "until",
            op = "<", threshold = 14 * 86400,
            summary = "TLS certificate expires within 14 days",
            description = "The certificate in use expires in {{ $value }} seconds; renewed files"
                .. " are picked up by themselves",
        },
    },
}
