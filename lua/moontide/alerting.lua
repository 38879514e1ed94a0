--- moontide.alerting: lua/policies/alerts.lua evaluated in-process.
--
--   local alerting = require "moontide.alerting"
--   local a = alerting.new(read, bounds, wall)  -- read(metric, labels, what, le); wall()
--   a:evaluate(policy, now) -> transitions { {alert, from, to, value}, ... }
--   a:list()                -> pending and firing alerts, for GET /alerts
--
-- The same semantics as Prometheus for one instance: "value" sums the
-- matching series; "rate" and "increase" take the counter's change over
-- the window from samples kept at each evaluation (a decrease is a
-- counter reset); "quantile" applies histogram_quantile's interpolation
-- to the per-bucket increases. A condition must hold for `for` seconds
-- (pending) before the alert fires. Rules marked prometheus_only, and
-- rules whose metric does not exist here, are skipped. A rule for the
-- serving colour only (where = "active") holds here only once this
-- instance has had a connection: a fresh or idle instance is not the one
-- traffic is expected on. State is kept by alert name, so a reloaded
-- policy keeps what it had.
local alertrules = require "moontide.alertrules"

local ipairs, pairs, tostring, setmetatable = ipairs, pairs, tostring, setmetatable

local _M = {}

local READ_VALUE, READ_COUNT, READ_BUCKET = 0, 1, 2

local Alerting = {}
Alerting.__index = Alerting

--- read(metric, labels, what, le) returns a number, or nil when the metric
-- does not exist; bounds(metric) the histogram's finite bounds.
function _M.new(read, bounds, wall)
    return setmetatable({ read = read, bounds = bounds, wall = wall or os.time, state = {} },
        Alerting)
end

local COMPARE = {
    ["=="] = function(a, b) return a == b end,
    ["!="] = function(a, b) return a ~= b end,
    [">"] = function(a, b) return a > b end,
    ["<"] = function(a, b) return a < b end,
    [">="] = function(a, b) return a >= b end,
    ["<="] = function(a, b) return a <= b end,
}

-- Keeps (t, v) samples covering the window; returns the change over it
-- and the seconds it spans, or nil with fewer than two samples.
local function change(st, key, now, v, window)
    local samples = st[key] or {}
    st[key] = samples
    samples[#samples + 1] = { now, v }
    while #samples > 2 and now - samples[2][1] >= window do
        table.remove(samples, 1)
    end
    if #samples < 2 then
        return nil
    end
    local delta, prev = 0, samples[1][2]
    for i = 2, #samples do
        local x = samples[i][2]
        delta = delta + (x >= prev and x - prev or x) -- a drop is a reset
        prev = x
    end
    return delta, now - samples[1][1]
end

local function quantile(self, rule, st, now)
    local bounds = self.bounds(rule.metric)
    if not bounds then
        return nil
    end
    local deltas = {}
    for i, le in ipairs(bounds) do
        local v = self.read(rule.metric, rule.labels, READ_BUCKET, le)
        deltas[i] = change(st, "b" .. i, now, v, rule.window)
    end
    local total = change(st, "count", now, self.read(rule.metric, rule.labels, READ_COUNT),
        rule.window)
    if not total or total == 0 then
        return nil
    end
    local rank = rule.q * total
    local lower, below = 0, 0
    for i, le in ipairs(bounds) do
        local cum = deltas[i] or 0
        if cum >= rank then
            if cum == below then
                return le
            end
            return lower + (le - lower) * (rank - below) / (cum - below)
        end
        lower, below = le, cum
    end
    return bounds[#bounds] -- in the +Inf bucket: the largest finite bound
end

local function measure(self, rule, st, now)
    if rule.fn == "quantile" then
        return quantile(self, rule, st, now)
    end
    local v = self.read(rule.metric, rule.labels, READ_VALUE)
    if v == nil then
        return nil
    end
    if rule.fn == "value" then
        return v
    elseif rule.fn == "until" then -- a timestamp: the seconds left until it
        return v - self.wall()
    end
    local delta, span = change(st, "v", now, v, rule.window)
    if not delta or span <= 0 then
        return nil
    end
    if rule.fn == "rate" then
        return delta / span
    end
    return delta
end

local function text(template, value)
    return (template:gsub("{{%s*%$value%s*}}", tostring(value)))
end

--- Evaluates every rule at time now (seconds); returns the transitions.
function Alerting:evaluate(policy, now)
    local transitions = {}
    local seen = {}
    for _, rule in ipairs(policy.rules or {}) do
        alertrules.check(rule)
        seen[rule.alert] = true
        if alertrules.applies(policy, rule) and not rule.prometheus_only then
            local st = self.state[rule.alert] or { samples = {}, state = "inactive" }
            self.state[rule.alert] = st
            st.rule = rule
            local v = measure(self, rule, st.samples, now)
            local holds = v ~= nil and v == v and COMPARE[rule.op](v, rule.threshold)
            if holds and rule.where == "active" then
                holds = (self.read("websocket_connections_total", nil, READ_VALUE) or 0) > 0
            end
            local from = st.state
            if holds then
                st.value = v
                st.since = st.since or now
                st.state = now - st.since >= rule["for"] and "firing" or "pending"
            else
                st.since, st.state = nil, "inactive"
            end
            if st.state ~= from and (st.state == "firing" or from == "firing") then
                transitions[#transitions + 1] = { alert = rule.alert, from = from,
                    to = st.state, value = st.value, rule = rule }
            end
        end
    end
    for name, st in pairs(self.state) do -- rules removed by a reload
        if not seen[name] then
            if st.state == "firing" then
                transitions[#transitions + 1] = { alert = name, from = "firing",
                    to = "inactive", value = st.value, rule = st.rule }
            end
            self.state[name] = nil
        end
    end
    return transitions
end

--- Pending and firing alerts, sorted by name.
function Alerting:list()
    local out = {}
    for name, st in pairs(self.state) do
        if st.state ~= "inactive" then
            out[#out + 1] = {
                alertname = name,
                severity = st.rule.severity,
                state = st.state,
                value = st.value,
                active_since = st.since,
                summary = text(st.rule.summary, st.value),
                description = text(st.rule.description, st.value),
            }
        end
    end
    table.sort(out, function(a, b) return a.alertname < b.alertname end)
    return out
end

_M.text = text

return _M
