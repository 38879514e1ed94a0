-- Operations: in-process alerts, the generated rules and their tests,
-- Prometheus/Alertmanager/Grafana configs, compose, monitor.sh, and a
-- blue/green deploy through a real nginx.
local server = require "spec.support.server"
local client = require "spec.support.client"
local prom = require "spec.support.prom"
local cjson = require "cjson"
local util = require "spec.support.util"
local read = util.read
local run = util.run
local cjson_null = require("cjson").null

describe("in-process alerts #integration", function()
    it("fire, show in /alerts, log and gauge, then resolve", function()
        local srv = server.start({
            config = { in_process_alerts = true },
            files = { ["policies/alerts.lua"] = read("spec/fixtures/alerts_fast.lua") },
        })
        local firing = server.eventually(function()
            local res = client.http(srv:url("/alerts"))
            return res.json.alerts[1] and res.json.alerts[1].state == "firing" and res.json
        end, 10, "NoActiveConnections to fire")
        assert.equal(2, firing.rules)
        assert.equal("NoActiveConnections", firing.alerts[1].alertname)
        assert.equal("warning", firing.alerts[1].severity)
        assert.equal("No active WebSocket connections (0)", firing.alerts[1].description)
        local line = srv:wait_log(function(l) return l.message == "alert firing" end)
        assert.equal("WARNING", line.level)
        assert.equal("NoActiveConnections", line.alertname)
        local m = prom.parse(client.http(srv:url("/metrics")).body)
        assert.equal(1, prom.value(m, "moontide_alert_active",
            { alertname = "NoActiveConnections", severity = "warning" }))

        local ws = assert(client.ws(srv:ws_url("/ws/chat/busy/")))
        for _ = 1, 5 do
            ws:send_json({ type = "heartbeat" })
            ws:receive_json()
        end
        local crit = srv:wait_log(function(l)
            return l.message == "alert firing" and l.alertname == "ManyMessages"
        end, 10)
        assert.equal("CRITICAL", crit.level)
        srv:wait_log(function(l)
            return l.message == "alert resolved" and l.alertname == "NoActiveConnections"
        end, 10)
        ws:close()
        assert.equal(0, srv:stop())
    end)
end)

describe("alerts with intent #integration", function()
    -- The project's policy, evaluated every second.
    local function policy(expect_traffic)
        local text = read("lua/policies/alerts.lua"):gsub("interval = %d+,", "interval = 1,", 1)
            :gsub('(alert = "NoActiveConnections", severity = "warning", %["for"%] = )60',
                "%10", 1)
        if expect_traffic == false then
            text = text:gsub("expect_traffic = true", "expect_traffic = false", 1)
        end
        return text
    end

    local function alerts(srv)
        return client.http(srv:url("/alerts")).json
    end

    it("are off unless in_process_alerts is set: /alerts says so", function()
        local srv = server.start({ files = { ["policies/alerts.lua"] = policy() } })
        local a = alerts(srv)
        assert.same({ false, 0, cjson_null }, { a.enabled, #a.alerts, a.evaluated_at })
        assert.equal(0, srv:stop())
    end)

    it("NoActiveConnections: not on an instance that never had traffic, yes once it had", function()
        local srv = server.start({ config = { in_process_alerts = true },
            files = { ["policies/alerts.lua"] = policy() } })
        local first = alerts(srv).evaluated_at
        server.eventually(function()
            return alerts(srv).evaluated_at ~= first and alerts(srv).evaluated_at ~= cjson_null
        end, 5, "two evaluations")
        assert.same({}, alerts(srv).alerts) -- fresh: the idle colour, say
        local ws = assert(client.ws(srv:ws_url("/ws/chat/intent/")))
        ws:close()
        local fired = server.eventually(function()
            local list = alerts(srv).alerts
            return list[1] and list[1].state == "firing" and list[1]
        end, 10, "NoActiveConnections once the serving instance is empty")
        assert.equal("NoActiveConnections", fired.alertname)
        assert.equal(0, srv:stop())
    end)

    it("NoActiveConnections is not raised at all where expect_traffic = false", function()
        local srv = server.start({ config = { in_process_alerts = true },
            files = { ["policies/alerts.lua"] = policy(false) } })
        local ws = assert(client.ws(srv:ws_url("/ws/chat/intent/")))
        ws:close()
        local first = server.eventually(function()
            local e = alerts(srv).evaluated_at
            return e ~= cjson_null and e
        end, 5, "an evaluation")
        server.eventually(function()
            return alerts(srv).evaluated_at >= first + 2
        end, 6, "three evaluations")
        assert.same({}, alerts(srv).alerts)
        assert.equal(0, srv:stop())
    end)

    it("the generated rules page for the serving colour only, each with its runbook", function()
        local rules = read("monitoring/alerting/rules.yml")
        assert.matches('up{deployment=\\"active\\"} == 0', rules, 1, true)
        assert.matches('websocket_connections_active{deployment=\\"active\\"} == 0', rules, 1, true)
        local readme = read("README.md")
        local n = 0
        for anchor in rules:gmatch('runbook_url: "README.md#(runbook%-[%w-]+)"') do
            n = n + 1
            local name = anchor:sub(9)
            assert.truthy(readme:lower():find("### runbook: " .. name, 1, true),
                "README has no runbook for " .. name)
        end
        assert.is_true(n >= 9)
    end)
end)

describe("in-process alerts on readiness #integration", function()
    it("read moontide_ready from the snapshot, never running Lua from an FFI call", function()
        -- Readiness is decided by a Lua policy; the alerts read it through
        -- the FFI every second, with every path traced at once.
        local srv = server.start({
            config = { lua_jit = "eager", in_process_alerts = true },
            files = { ["policies/alerts.lua"] = [[
                return { interval = 1, rules = {
                    { alert = "Ready", severity = "warning", ["for"] = 0,
                      metric = "moontide_ready", fn = "value", op = "==", threshold = 1,
                      summary = "ready", description = "ready ({{ $value }})" },
                } }
            ]] },
        })
        srv:wait_log(function(l) return l.message == "alert firing" and l.alertname == "Ready" end)
        local evaluated = client.http(srv:url("/alerts")).json.evaluated_at
        server.eventually(function()
            return client.http(srv:url("/alerts")).json.evaluated_at >= evaluated + 3
        end, 10, "three more evaluations")
        assert.equal(200, client.http(srv:url("/readyz")).status)
        assert.same({}, srv:error_lines())
        assert.equal(0, srv:stop())
    end)
end)

describe("alert rules and monitoring configs #integration", function()
    it("generates the committed rules.yml, which promtool checks and tests", function()
        local status, out = run("scripts/gen-alert-rules")
        assert.equal(0, status)
        assert.equal(read("monitoring/alerting/rules.yml"), out)
        status, out = run("promtool check rules monitoring/alerting/rules.yml")
        assert.equal(0, status, out)
        assert.matches("SUCCESS: 9 rules found", out)
        status, out = run("promtool test rules monitoring/alerting/tests.yml")
        assert.equal(0, status, out)
    end)

    it("has a valid Prometheus config scraping the targets deploy.sh writes, every 10 s", function()
        local status, out = run("promtool check config monitoring/prometheus/prometheus.yml")
        assert.equal(0, status, out)
        local cfg = read("monitoring/prometheus/prometheus.yml")
        assert.matches("files: %[deploy/targets.json%]", cfg)
        assert.matches("scrape_interval: 10s", cfg)
    end)

    it("renders an Alertmanager config amtool accepts, routing by severity", function()
        local all = "SMTP_SMARTHOST=smtp.example.com:587 ALERT_EMAIL_FROM=a@example.com "
            .. "ALERT_EMAIL_TO=b@example.com SMTP_USERNAME=u SMTP_PASSWORD='p\"w&/|' "
            .. "SLACK_WEBHOOK_URL=https://hooks.slack.com/x SLACK_CHANNEL='#alerts' "
            .. "PAGERDUTY_ROUTING_KEY=k ALERT_WEBHOOK_URL=http://127.0.0.1:5001/hook"
        local out_file = os.tmpname()
        local function render(env)
            return run("env -i PATH=/usr/bin:/bin " .. env .. " monitoring/alertmanager/render.sh "
                .. "monitoring/alertmanager/alertmanager.yml.tmpl " .. out_file)
        end
        local status, out = render(all)
        assert.equal(0, status, out)
        status, out = run("amtool check-config " .. out_file)
        assert.equal(0, status, out)
        assert.matches("5 receivers", out) -- the four, and the blackhole at the root
        local rendered = read(out_file)
        assert.matches('smtp_auth_password: "p\\"w&/|"', rendered, 1, true)
        for _, r in ipairs({ "email", "slack", "pagerduty", "webhook" }) do
            assert.matches("receiver: " .. r, rendered)
        end
        -- one receiver alone: the others are off, routes and all
        status, out = render("ALERT_WEBHOOK_URL=http://webhook:5001/alerts SLACK_CHANNEL=")
        assert.equal(0, status, out)
        assert.matches("receivers: webhook", out)
        status, out = run("amtool check-config " .. out_file)
        assert.equal(0, status, out)
        assert.matches("2 receivers", out)
        assert.falsy(read(out_file):find("slack", 1, true))
        os.remove(out_file)
        -- half-configured (unset or empty alike), or none at all: refused, by name
        status, out = render("SLACK_WEBHOOK_URL=https://hooks.slack.com/x SLACK_CHANNEL=")
        assert.equal(1, status)
        assert.matches("receiver slack is half%-configured: set SLACK_CHANNEL", out)
        status, out = render("SMTP_SMARTHOST=smtp.example.com:587")
        assert.equal(1, status)
        assert.matches("receiver email is half%-configured: set ALERT_EMAIL_FROM ALERT_EMAIL_TO", out)
        status, out = render("")
        assert.equal(1, status)
        assert.matches("no receiver configured", out)
    end)

    it("has dashboards whose every PromQL expression promtool accepts", function()
        local ws = cjson.decode(read("monitoring/grafana/dashboards/websocket.json"))
        local sys = cjson.decode(read("monitoring/grafana/dashboards/system.json"))
        local titles = {}
        for _, p in ipairs(ws.panels) do
            titles[#titles + 1] = p.title
        end
        assert.same({ "Connection Count: active vs total", "Message Throughput",
            "Error Rate by Type", "Latency: p95 message processing", "Health Status over time" },
            titles)
        assert.equal(4, #sys.panels)
        local rules = { "groups:", "  - name: dashboards", "    rules:" }
        local n = 0
        for _, d in ipairs({ ws, sys }) do
            for _, p in ipairs(d.panels) do
                for _, t in ipairs(p.targets) do
                    n = n + 1
                    rules[#rules + 1] = ("      - record: dashboard:expr_%d"):format(n)
                    rules[#rules + 1] = "        expr: '" .. t.expr:gsub("'", "''") .. "'"
                end
            end
        end
        local path = os.tmpname()
        local f = assert(io.open(path, "w"))
        f:write(table.concat(rules, "\n") .. "\n")
        f:close()
        local status, out = run("promtool check rules " .. path)
        os.remove(path)
        assert.equal(0, status, out)
        assert.matches("SUCCESS: " .. n .. " rules found", out)
        local ds = read("monitoring/grafana/provisioning/datasources/prometheus.yml")
        assert.matches("url: http://prometheus:9090", ds)
    end)

    it("has a compose file docker-compose accepts, and a hardened Dockerfile", function()
        local status, out = run("docker-compose -f docker/docker-compose.yml config --services")
        assert.equal(0, status, out)
        local services = {}
        for s in out:gmatch("[%w_]+") do
            services[s] = true
        end
        for _, s in ipairs({ "app_blue", "app_green", "redis", "nginx", "prometheus",
            "alertmanager", "grafana", "cadvisor" }) do
            assert.is_true(services[s], s .. " missing")
        end
        local dockerfile = read("docker/Dockerfile")
        assert.matches("FROM debian:bookworm%-slim AS build", dockerfile)
        assert.matches("\nUSER moontide\n", dockerfile)
        assert.matches("HEALTHCHECK .-/healthz", dockerfile)
        assert.matches("libwebsockets%-evlib%-uv", dockerfile)
    end)
end)

describe("scripts/monitor.sh #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start()
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
    end)

    it("prints health, readiness, connections and the top-5 metrics, then stops", function()
        local ws = assert(client.ws(srv:ws_url("/ws/chat/mon/")))
        local status, out = run(("scripts/monitor.sh --metrics-only --interval 1 --duration 2 --url %s")
            :format(srv:url("")))
        assert.equal(0, status, out)
        assert.matches("Starting monitoring", out)
        assert.matches("app_blue: running", out)
        assert.matches("Active color: blue", out)
        assert.matches("Health: healthy\nReady: ready\nActive connections: 1\n=== Top 5 Metrics ===\n", out)
        local block = out:match("=== Top 5 Metrics ===\n(.-)==================")
        local lines = 0
        for _ in block:gmatch("[^\n]+") do
            lines = lines + 1
        end
        assert.equal(5, lines)
        assert.matches('websocket_connections_active{color="blue"} 1', block)
        assert.is_nil(out:find("Tailing logs", 1, true))
        ws:close()
    end)

    it("tails ERROR lines from a log file with --logs-only", function()
        local log = os.tmpname()
        local status, out = run(("( sleep 1; echo '{\"level\":\"ERROR\",\"message\":\"boom\"}' >> %s;"
            .. " echo '{\"level\":\"INFO\",\"message\":\"fine\"}' >> %s ) & "
            .. "scripts/monitor.sh --logs-only --log-file %s --duration 3 --interval 1")
            :format(log, log, log))
        os.remove(log)
        assert.equal(0, status, out)
        assert.matches('"message":"boom"', out)
        assert.is_nil(out:find('"message":"fine"', 1, true))
        assert.is_nil(out:find("Top 5", 1, true))
    end)

    it("says so when the service is unreachable, and rejects bad flags", function()
        local status, out = run("scripts/monitor.sh --metrics-only --duration 1 --interval 1 "
            .. "--url http://127.0.0.1:1")
        assert.equal(0, status)
        assert.matches("unreachable", out)
        assert.matches("Health: unreachable", out)
        status, out = run("scripts/monitor.sh --interval soon")
        assert.equal(2, status)
        assert.matches("whole number", out)
        status, out = run("scripts/monitor.sh --help")
        assert.equal(0, status)
        assert.matches("%-%-metrics%-only", out)
    end)
end)

describe("blue/green deploy through nginx #integration #slow", function()
    it("moves a chatting client from blue to green with no failed request", function()
        local dir = assert(io.popen("mktemp -d /tmp/moontide-deploy-XXXXXX")):read("*l")
        local port = server.free_port()
        local env = ("MOONTIDE_DEPLOY_DIR=%s MOONTIDE_DEPLOY_PORT=%d MOONTIDE_BLUE_PORT=%d "
            .. "MOONTIDE_GREEN_PORT=%d"):format(dir, port, server.free_port(), server.free_port())
        finally(function() -- even if an assertion below fails
            run(env .. " scripts/deploy.sh --local --stop")
            run("rm -rf " .. dir)
        end)
        local status, out = run(env .. " scripts/deploy.sh --local")
        assert.equal(0, status, out)
        assert.matches("Active color: blue", out)
        local base = "http://127.0.0.1:" .. port
        assert.equal("blue", client.http(base .. "/status").json.color)

        local ws = assert(client.ws(("ws://127.0.0.1:%d/ws/chat/bg/"):format(port)))
        ws:send_json({ type = "message", text = "on blue" })
        assert.equal("on blue", ws:receive_json().text)

        local deploy = server.adopt(server.spawn("bash", { "-c", env .. " exec scripts/deploy.sh --local" },
            dir .. "/deploy.out"), nil, dir .. "/deploy.out")
        local requests, failures, closed_with = 0, {}, nil
        while not deploy:exited() do
            local ok, res = pcall(client.http, base .. "/healthz")
            requests = requests + 1
            if not ok or res.status ~= 200 then
                failures[#failures + 1] = ok and ("status " .. res.status) or tostring(res)
            end
            if not closed_with then
                ws:send_json({ type = "heartbeat" })
                local data, _, code = ws:receive(1)
                if not data and type(code) == "number" and code >= 1000 then
                    closed_with = code
                end
            end
            server.nap(0.02)
        end
        assert.equal(0, deploy.status, read(dir .. "/deploy.out"))
        assert.is_true(requests > 10)
        assert.same({}, failures)
        if not closed_with then
            closed_with = ws:expect_close()
        end
        assert.equal(1001, closed_with)

        local again = assert(client.ws(("ws://127.0.0.1:%d/ws/chat/bg/"):format(port)))
        again:send_json({ type = "message", text = "on green" })
        assert.equal("on green", again:receive_json().text)
        assert.equal("green", client.http(base .. "/status").json.color)
        -- Prometheus's targets follow: green serves, blue is idle (not paged)
        local targets = require("cjson").decode(read(dir .. "/targets.json"))
        assert.same({ "active", "idle" }, { targets[1].labels.deployment, targets[2].labels.deployment })
        assert.equal("127.0.0.1:" .. env:match("MOONTIDE_GREEN_PORT=(%d+)"), targets[1].targets[1])
        again:close()
        out = select(2, run(env .. " scripts/deploy.sh --local --status"))
        assert.matches("app_blue: stopped", out)
        assert.matches("app_green: running", out)
        assert.matches("Active color: green", out)
        status, out = run(env .. " scripts/deploy.sh --local --rollback")
        assert.equal(0, status, out)
        assert.matches("app_blue: running", out)
        assert.matches("app_green: stopped", out)
        assert.equal("blue", client.http(base .. "/status").json.color)
        status = run(env .. " scripts/deploy.sh --local --stop")
        assert.equal(0, status)
    end)

    it("switches nothing when moontide check fails on what would be deployed", function()
        local dir = assert(io.popen("mktemp -d /tmp/moontide-deploy-XXXXXX")):read("*l")
        local port = server.free_port()
        local env = ("MOONTIDE_DEPLOY_DIR=%s MOONTIDE_DEPLOY_PORT=%d MOONTIDE_BLUE_PORT=%d "
            .. "MOONTIDE_GREEN_PORT=%d"):format(dir, port, server.free_port(), server.free_port())
        local app = server.app({ config = { host = "0.0.0.0", port = 8000, log_level = "INFO" },
            files = { ["handlers/chat.lua"] = "local broken =\n" } })
        finally(function()
            run(env .. " scripts/deploy.sh --local --stop")
            run("rm -rf " .. dir .. " " .. app)
        end)
        local status, out = run(env .. " scripts/deploy.sh --local")
        assert.equal(0, status, out)
        status, out = run(env .. " MOONTIDE_CONFIG=" .. app .. "/moontide.lua scripts/deploy.sh --local")
        assert.equal(1, status, out)
        assert.matches("handlers/chat.lua:2: unexpected symbol", out)
        assert.matches("moontide check failed: nothing switched, blue still serves", out)
        assert.equal("blue", client.http("http://127.0.0.1:" .. port .. "/status").json.color)
        out = select(2, run(env .. " scripts/deploy.sh --local --status"))
        assert.matches("app_green: stopped", out)
        assert.matches("Active color: blue", out)
    end)
end)
