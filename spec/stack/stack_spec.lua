-- The compose stack, built and run for real (./scripts/test --only stack):
-- moontide's image and every third-party service built from Debian's
-- packages on the same base (docker/stack/compose.test.yml), in a copy of
-- the project, as its own compose project, with ports published on
-- 127.0.0.1 only. It proves, end to end: `up -d` on a fresh clone serves
-- (before any deploy); chat through nginx, and nginx
-- keeping /metrics to the monitoring network; Prometheus scraping both
-- colours (deploy.sh's targets, the seed's families by color) and the
-- dashboards' queries valid against it; an error burst raising
-- HighErrorRate through Alertmanager to a webhook; a blue -> green deploy
-- under 200 chatting clients and an HTTP poller: no failed request, every
-- client back on green, nothing missing for any of them; monitor.sh
-- showing the deployment. Everything is torn down after; images are kept.
-- Needs a Docker daemon and the base image (scripts/test starts and makes
-- them).
local server = require "spec.support.server"
local client = require "spec.support.client"
local util = require "spec.support.util"
local cjson = require "cjson.safe"

local ROOT = server.ROOT

-- Runs a shell command in the copy with the stack's environment; returns
-- the exit status and the output.
local env, dir
local function sh(cmd)
    local p = assert(io.popen(("cd %s && %s %s 2>&1; echo \"exit=$?\""):format(dir, env, cmd)))
    local out = p:read("*a")
    p:close()
    return tonumber(out:match("exit=(%d+)%s*$")), out
end

local function must(cmd)
    local status, out = sh(cmd)
    assert(status == 0, cmd .. " failed:\n" .. out)
    return out
end

local function json(url)
    local res = client.http(url)
    return res.status == 200 and cjson.decode(res.body) or nil
end

describe("the compose stack #stack", function()
    local ports = {}
    local edge, prom

    local function query(q)
        local r = json(("%s/api/v1/query?query=%s"):format(prom, q:gsub("[^%w_]", function(c)
            return ("%%%02X"):format(c:byte())
        end)))
        return r and r.status == "success" and r.data.result or nil
    end

    lazy_setup(function()
        dir = assert(io.popen("mktemp -d /tmp/moontide-stack-XXXXXX")):read("*l")
        -- the working tree as it is (the test runs before a commit too)
        assert(os.execute(("cd %s && tar --exclude=./.git --exclude='./build*' --exclude=./.deploy"
            .. " --exclude=./clients/js/node_modules --exclude=./conf/nginx/active"
            .. " --exclude=./monitoring/prometheus/deploy/targets.json -cf - . | tar -xf - -C %s")
            :format(ROOT, dir)))
        for _, k in ipairs({ "HTTP", "PROMETHEUS", "ALERTMANAGER", "WEBHOOK" }) do
            ports[k] = server.free_port()
        end
        env = ("COMPOSE_PROJECT_NAME=moontide-stacktest COMPOSE_PROFILES= "
            .. "COMPOSE_FILE=docker/docker-compose.yml:docker/stack/compose.test.yml "
            .. "STACK_HTTP_PUBLISH=127.0.0.1:%d STACK_PROMETHEUS_PUBLISH=127.0.0.1:%d "
            .. "STACK_ALERTMANAGER_PUBLISH=127.0.0.1:%d STACK_WEBHOOK_PUBLISH=127.0.0.1:%d")
            :format(ports.HTTP, ports.PROMETHEUS, ports.ALERTMANAGER, ports.WEBHOOK)
        edge = "http://127.0.0.1:" .. ports.HTTP
        prom = "http://127.0.0.1:" .. ports.PROMETHEUS
        local t0 = server.now()
        must("docker-compose build -q")
        io.stderr:write(("\n  (images built in %.0f s)\n"):format(server.now() - t0))
        t0 = server.now()
        -- As a fresh clone: `up -d` before any deploy (nginx has no active
        -- colour yet and serves blue), then the first deploy.sh, which makes
        -- blue active and writes Prometheus's targets.
        must("docker-compose up -d")
        server.eventually(function()
            local ok, res = pcall(client.http, edge .. "/healthz")
            return ok and res.status == 200
        end, 60, "nginx up before any deploy")
        must("scripts/deploy.sh")
        -- Ready through nginx, and nginx on blue: while blue was starting,
        -- nginx may have found it down and sent requests to the backup
        -- (green) for its fail_timeout (10 s).
        local last_other = server.now()
        server.eventually(function()
            local ok, res = pcall(client.http, edge .. "/readyz")
            if not (ok and res.status == 200 and res.json.color == "blue") then
                last_other = server.now()
            end
            return server.now() - last_other > 11
        end, 90, "moontide ready through nginx, on blue")
        io.stderr:write(("  (stack up in %.0f s)\n"):format(server.now() - t0))
    end)

    lazy_teardown(function()
        if dir then
            local _, logs = sh("docker-compose logs --no-color --tail 30")
            local status, out = sh("docker-compose down -v --remove-orphans -t 5")
            os.execute("rm -rf " .. dir)
            assert(status == 0, "docker-compose down failed:\n" .. out .. "\n" .. logs)
        end
    end)

    it("chats through nginx, and keeps /metrics and /admin/ from the public side", function()
        local a = assert(client.ws(("ws://127.0.0.1:%d/ws/chat/edge/"):format(ports.HTTP)))
        local b = assert(client.ws(("ws://127.0.0.1:%d/ws/chat/edge/"):format(ports.HTTP)))
        a:send_json({ type = "message", text = "through nginx" })
        assert.equal("through nginx", b:receive_message().text)
        a:close()
        b:close()
        assert.equal(200, client.http(edge .. "/healthz").status)
        assert.equal(200, client.http(edge .. "/").status) -- the chat page
        for _, path in ipairs({ "/metrics", "/status", "/alerts", "/admin/reload" }) do
            assert.equal(403, client.http(edge .. path).status, path)
        end
        assert.equal(200, client.http(edge .. "/status.html").status) -- a page, not /status
    end)

    it("has Prometheus scrape both colours, labelled by deployment, with the seed's families", function()
        local up = server.eventually(function()
            local r = query('up{job="moontide"}')
            return r and #r == 2 and r[1].value[2] == "1" and r[2].value[2] == "1" and r
        end, 60, "both colours up in Prometheus")
        local deployment = {}
        for _, s in ipairs(up) do
            deployment[s.metric.instance] = s.metric.deployment
        end
        assert.same({ ["app_blue:8000"] = "active", ["app_green:8000"] = "idle" }, deployment)
        -- (a family with labels shows once it has a series: green's
        -- http_requests_total after its first health check, say)
        for _, family in ipairs({ "websocket_connections_active", "websocket_connections_total",
            "websocket_messages_total", "websocket_errors_total",
            "websocket_message_duration_seconds_bucket", "http_requests_total",
            "app_startup_time_seconds", "process_resident_memory_bytes" }) do
            server.eventually(function()
                local colors = {}
                for _, s in ipairs(query(family .. '{job="moontide"}') or {}) do
                    colors[s.metric.color or "none"] = true
                end
                return colors.blue and colors.green and not colors.none, cjson.encode(colors)
            end, 60, family .. " from both colours")
        end
        -- every dashboard query is one Prometheus accepts
        for _, file in ipairs({ "websocket.json", "system.json" }) do
            local dash = cjson.decode(util.read(ROOT .. "/monitoring/grafana/dashboards/" .. file))
            for _, panel in ipairs(dash.panels) do
                for _, t in ipairs(panel.targets or {}) do
                    local q = t.expr:gsub("%$__rate_interval", "1m"):gsub("%$__interval", "1m")
                    assert.is_table(query(q), file .. ": " .. t.expr)
                end
            end
        end
    end)

    it("raises HighErrorRate on an error burst, through Alertmanager to the webhook", function()
        local ws = assert(client.ws(("ws://127.0.0.1:%d/ws/chat/burst/"):format(ports.HTTP)))
        for _ = 1, 300 do
            ws:send("{not json")
        end
        for _ = 1, 300 do
            assert.equal("error", ws:receive_json().type)
        end
        ws:close()
        local t0 = server.now()
        local alert = server.eventually(function()
            for _, post in ipairs(json(("http://127.0.0.1:%d/received"):format(ports.WEBHOOK)) or {}) do
                for _, a in ipairs(post.alerts or {}) do
                    if a.labels.alertname == "HighErrorRate" and a.status == "firing" then
                        return a
                    end
                end
            end
        end, 240, "HighErrorRate at the webhook")
        io.stderr:write(("\n  (HighErrorRate reached the webhook %.0f s after the burst)\n")
            :format(server.now() - t0))
        assert.same({ "critical", "blue", "active" },
            { alert.labels.severity, alert.labels.color, alert.labels.deployment })
        assert.equal("README.md#runbook-higherrorrate", alert.annotations.runbook_url)
    end)

    it("deploys blue -> green under 200 chatting clients: no failed request, nothing missing", function()
        local stop, result = dir .. "/load.stop", dir .. "/load.json"
        local load = server.adopt(server.spawn("node", { ROOT .. "/spec/support/stack-load.mjs",
            edge, "200", "20", stop, result }, dir .. "/load.log"), nil, dir .. "/load.log")
        finally(function()
            if not load:exited() then
                load:stop(5)
            end
        end)
        local function progress()
            local f = io.open(result .. ".progress")
            local p = f and cjson.decode(f:read("*a"))
            if f then
                f:close()
            end
            return p
        end
        server.eventually(function()
            local p = progress()
            return p and p.open == 200 and p.received > 2000, cjson.encode(p)
        end, 60, "200 clients chatting")
        local t0 = server.now()
        local out = must("scripts/deploy.sh")
        io.stderr:write(("\n  (deploy.sh took %.0f s)\n"):format(server.now() - t0))
        assert.matches("nginx now sends new connections to green", out)
        assert.matches("app_blue: stopped", out)
        assert.matches("app_green: running", out)
        server.eventually(function()
            local p = progress()
            return p and p.open == 200 and p.reconnected == 200, cjson.encode(p)
        end, 60, "every client back, on green")
        local before = progress().received
        server.eventually(function() return progress().received > before + 2000 end, 60,
            "chatting on green")
        assert(io.open(stop, "w")):close()
        load:wait_exit(60)
        assert.equal(0, load.status, util.read(dir .. "/load.log"))
        local r = cjson.decode(util.read(result))
        io.stderr:write(("  (%d sent, %d received; closes %s; %d HTTP requests; %d unconfirmed)\n")
            :format(r.sent, r.received, cjson.encode(r.closes),
            r.http.requests, r.unconfirmed))
        assert.equal(0, r.http.failed, cjson.encode(r.http.errors))
        assert.is_true(r.http.requests > 100)
        assert.equal(200, r.reconnected)
        for code in pairs(r.closes) do
            assert.truthy(code == "1001" or code == "1012", "closed with " .. code)
        end
        assert.equal(0, r.gaps) -- every member of a room got every message of the room
        -- and what was sent reached its room, what crossed the drain's close
        -- too: 0 in most runs, 1 of ~4 300 in one (a publish still held in
        -- Lua at exit, it seems: see the issue notes); never more than 1 in 1 000
        assert.is_true(r.unconfirmed <= r.sent / 1000, r.unconfirmed .. " unconfirmed")
        -- Prometheus follows: green is the active colour, blue idle
        local t = server.eventually(function()
            local r2 = query('up{job="moontide",deployment="active"}')
            return r2 and #r2 == 1 and r2[1].metric.instance == "app_green:8000" and r2
        end, 60, "green active in Prometheus")
        assert.equal("1", t[1].value[2])
    end)

    it("shows the deployment in monitor.sh", function()
        local out = must(("scripts/monitor.sh --metrics-only --duration 1 --interval 1 --url %s")
            :format(edge))
        assert.matches("app_blue: stopped", out)
        assert.matches("app_green: running", out)
        assert.matches("Active color: green", out)
        assert.matches("Health: healthy", out)
        assert.matches("websocket_connections_active{", out, 1, true) -- read inside green
    end)
end)
