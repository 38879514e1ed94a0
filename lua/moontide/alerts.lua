--- moontide.alerts: the in-process alerts, lua/policies/alerts.lua.
--
--   local alerts = require "moontide.alerts"
--   local policy = alerts.load()   -- nil when the scripts have none; raises on a bad rule
--   alerts.use(policy)             -- after a successful (re)load
--   alerts.tick(now)               -- the core, every second
--   alerts.json() -> body of GET /alerts
--
-- Evaluated by moontide.alerting over the registry as the core last
-- collected it (reads never collect or run Lua in the core). Transitions
-- are logged at the alert's severity and mirrored in
-- moontide_alert_active{alertname,severity}. State is kept by alert name,
-- so a reloaded policy keeps what it had.
local moontide = require "moontide"
local alerting = require "moontide.alerting"

local type, error, ipairs = type, error, ipairs

local _M = {}

local policy
local evaluator
local gauge
local last_eval = -math.huge
local log = moontide.logger("moontide.alerts")

--- Loads policies.alerts when the scripts have it; raises on a bad rule.
function _M.load()
    if not package.searchpath("policies.alerts", package.path) then
        return nil
    end
    package.loaded["policies.alerts"] = nil
    local p = require("policies.alerts")
    if type(p) ~= "table" or type(p.rules) ~= "table" then
        error("policies/alerts.lua must return { interval = s, rules = { ... } }", 0)
    end
    local check = require("moontide.alertrules").check
    for _, rule in ipairs(p.rules) do
        check(rule)
    end
    return p
end

--- Makes p (or nil: none) the policy evaluated from now on.
function _M.use(p)
    policy = p
end

--- Evaluates the policy when its interval has passed.
function _M.tick(now)
    if not policy or now - last_eval < (policy.interval or 10) then
        return
    end
    last_eval = now
    if not evaluator then
        evaluator = alerting.new(moontide._metric_read, moontide._metric_bounds, moontide.now)
        gauge = moontide.metrics.gauge("moontide_alert_active",
            "1 while an in-process alert fires", { "alertname", "severity" })
    end
    for _, t in ipairs(evaluator:evaluate(policy, now)) do
        local firing = t.to == "firing"
        gauge:labels(t.alert, t.rule.severity):set(firing and 1 or 0)
        local write = t.rule.severity == "critical" and log.critical or log.warning
        write(firing and "alert firing" or "alert resolved", {
            alertname = t.alert, severity = t.rule.severity, value = t.value,
            summary = alerting.text(t.rule.summary, t.value),
            description = alerting.text(t.rule.description, t.value),
        })
    end
end

--- The body of GET /alerts (JSON).
function _M.json()
    local list = evaluator and evaluator:list() or {}
    -- cjson 2.1.0 writes an empty table as {}: spell the empty list out
    return ('{"enabled":true,"alerts":%s,"rules":%d,"evaluated_at":%s}'):format(
        #list > 0 and moontide.json.encode(list) or "[]",
        policy and #policy.rules or 0,
        last_eval > 0 and ("%.3f"):format(last_eval) or "null")
end

return _M
