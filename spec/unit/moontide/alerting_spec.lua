-- moontide.alertrules (PromQL, rules.yml) and moontide.alerting (in-process).
local alertrules = require "moontide.alertrules"
local alerting = require "moontide.alerting"

local function rule(over)
    local r = { alert = "A", severity = "warning", ["for"] = 0, metric = "m", fn = "value",
        op = ">", threshold = 1, summary = "s {{ $value }}", description = "d" }
    for k, v in pairs(over or {}) do
        r[k] = v
    end
    return r
end

describe("moontide.alertrules", function()
    it("writes PromQL for each kind of rule", function()
        assert.equal("websocket_connections_active == 0", alertrules.promql(rule({
            metric = "websocket_connections_active", op = "==", threshold = 0 })))
        assert.equal('sum by (job, instance, color, deployment) (rate(e_total{error_type="x"}[5m])) > 0.1',
            alertrules.promql(rule({ metric = "e_total", fn = "rate", window = 300,
                threshold = 0.1, labels = { error_type = "x" } })))
        assert.equal("histogram_quantile(0.95, sum by (job, instance, color, deployment, le) "
            .. "(rate(d_seconds_bucket[5m]))) > 1", alertrules.promql(rule({
                metric = "d_seconds", fn = "quantile", q = 0.95, window = 300 })))
        assert.equal("sum by (job, instance, color, deployment) (increase(r_total[10m])) > 0",
            alertrules.promql(rule({ metric = "r_total", fn = "increase", window = 600,
                threshold = 0 })))
        assert.equal("(x_timestamp_seconds - time()) < 1209600", alertrules.promql(rule({
            metric = "x_timestamp_seconds", fn = "until", op = "<", threshold = 1209600 })))
    end)

    it("rejects malformed rules with the rule's name", function()
        assert.has_error(function() alertrules.check(rule({ severity = "page" })) end,
            "alert A: severity must be warning or critical")
        assert.has_error(function() alertrules.check(rule({ fn = "rate" })) end)
        assert.has_error(function() alertrules.check(rule({ fn = "quantile", window = 60 })) end)
    end)

    it("matches the committed monitoring/alerting/rules.yml", function()
        local f = assert(io.open("monitoring/alerting/rules.yml"))
        local committed = f:read("*a")
        f:close()
        local generated = alertrules.yaml(dofile("lua/policies/alerts.lua"))
        assert.equal(generated, committed, "run scripts/gen-alert-rules --write")
    end)
end)

describe("moontide.alerting", function()
    local values, buckets, counts

    local function read(metric, _, what, le)
        if what == 2 then
            return buckets[metric] and buckets[metric][le]
        elseif what == 1 then
            return counts[metric]
        end
        return values[metric]
    end

    local function bounds(metric)
        return buckets[metric] and { 0.5, 1, 2.5 } or nil
    end

    before_each(function()
        values, buckets, counts = {}, {}, {}
    end)

    it("goes pending, then fires after `for`, then resolves", function()
        local a = alerting.new(read, bounds)
        local policy = { rules = { rule({ op = "==", threshold = 0, ["for"] = 60 }) } }
        values.m = 0
        assert.same({}, a:evaluate(policy, 0))
        assert.equal("pending", a:list()[1].state)
        local t = a:evaluate(policy, 60)
        assert.equal(1, #t)
        assert.equal("firing", t[1].to)
        assert.equal("firing", a:list()[1].state)
        assert.equal("s 0", a:list()[1].summary)
        values.m = 3
        t = a:evaluate(policy, 70)
        assert.equal("inactive", t[1].to)
        assert.same({}, a:list())
    end)

    it("computes rates over the window and survives counter resets", function()
        local a = alerting.new(read, bounds)
        local policy = { rules = { rule({ fn = "rate", window = 30, threshold = 0.5 }) } }
        values.m = 0
        a:evaluate(policy, 0)
        values.m = 10
        a:evaluate(policy, 10) -- 1/s
        assert.equal(1, a:list()[1].value)
        values.m = 2 -- reset: counts as +2
        a:evaluate(policy, 20)
        assert.equal(0.6, a:list()[1].value)
    end)

    it("measures a timestamp's distance from the wall clock (until)", function()
        local wall = 1000
        local a = alerting.new(read, bounds, function() return wall end)
        local policy = { rules = { rule({ metric = "exp", fn = "until", op = "<",
            threshold = 100 }) } }
        values.exp = 1050
        local t = a:evaluate(policy, 0)
        assert.same({ "firing", 50 }, { t[1].to, t[1].value })
        values.exp = 5000 -- renewed
        t = a:evaluate(policy, 10)
        assert.equal("inactive", t[1].to)
    end)

    it("takes quantiles as histogram_quantile does", function()
        local a = alerting.new(read, bounds)
        local policy = { rules = { rule({ metric = "d", fn = "quantile", q = 0.95,
            window = 300 }) } }
        buckets.d = { [0.5] = 0, [1] = 0, [2.5] = 0 }
        counts.d = 0
        a:evaluate(policy, 0)
        buckets.d = { [0.5] = 0, [1] = 0, [2.5] = 100 }
        counts.d = 100
        a:evaluate(policy, 10)
        assert.equal(2.425, a:list()[1].value) -- as promtool computes in tests.yml
    end)

    it("skips rules for metrics it does not have, and Prometheus-only rules", function()
        local a = alerting.new(read, bounds)
        local policy = { rules = { rule({ metric = "absent", op = "==", threshold = 0 }),
            rule({ alert = "B", prometheus_only = true }) } }
        values.m = 5
        assert.same({}, a:evaluate(policy, 0))
        assert.same({}, a:list())
    end)
end)
