--- moontide.alertrules: PromQL and rules.yml from lua/policies/alerts.lua.
--
--   local alertrules = require "moontide.alertrules"
--   alertrules.promql(rule)  -> "histogram_quantile(0.95, sum by ...) > 1"
--   alertrules.yaml(policy)  -> the text of monitoring/alerting/rules.yml
--   alertrules.applies(policy, rule) -> false for a rule the policy turns off
--   alertrules.runbook(rule) -> "README.md#runbook-higherrorrate"
--
-- where = "active": the rule is about the colour that serves traffic.
-- scripts/deploy.sh labels the scrape targets deployment="active" or
-- "idle" (a file_sd file), and the rule selects deployment="active": the
-- colour a deploy stopped is expected to be down and to be empty.
-- needs_traffic = true: the rule only means something for a service that
-- always has users; policy.expect_traffic = false turns it off.
--
-- Rates, increases and quantiles are aggregated per instance (sum by job,
-- instance, color, deployment): the alert says which instance, whatever
-- label sets it has. The seed's HighLatency applied histogram_quantile to a raw
-- histogram, which PromQL cannot evaluate; the quantile is taken over
-- the per-bucket rates, as Prometheus documents.
local type, error, tostring, ipairs, pairs = type, error, tostring, ipairs, pairs
local table_concat, table_sort = table.concat, table.sort

local _M = {}

local BY = "job, instance, color, deployment"
local OPS = { ["=="] = true, ["!="] = true, [">"] = true, ["<"] = true, [">="] = true,
    ["<="] = true }

--- A duration in Prometheus syntax: 300 -> "5m", 30 -> "30s".
function _M.duration(seconds)
    if seconds > 0 and seconds % 3600 == 0 then
        return (seconds / 3600) .. "h"
    elseif seconds > 0 and seconds % 60 == 0 then
        return (seconds / 60) .. "m"
    end
    return seconds .. "s"
end

local function number(v)
    if v == math.floor(v) then
        return ("%d"):format(v)
    end
    return tostring(v)
end

local function selector(rule, suffix)
    local labels = {}
    for k, v in pairs(rule.labels or {}) do
        labels[k] = v
    end
    if rule.where == "active" then
        labels.deployment = "active"
    end
    local keys = {}
    for k in pairs(labels) do
        keys[#keys + 1] = k
    end
    table_sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do
        parts[i] = ('%s="%s"'):format(k, labels[k])
    end
    local s = rule.metric .. (suffix or "")
    if #parts > 0 then
        s = s .. "{" .. table_concat(parts, ",") .. "}"
    end
    return s
end

--- Checks a rule's shape; raises naming the rule and the problem.
function _M.check(rule)
    local name = type(rule) == "table" and tostring(rule.alert) or "?"
    local function need(ok, what)
        if not ok then
            error("alert " .. name .. ": " .. what, 0)
        end
    end
    need(type(rule) == "table", "must be a table")
    need(type(rule.alert) == "string" and rule.alert:match("^[%a_][%w_]*$"), "bad alert name")
    need(rule.severity == "warning" or rule.severity == "critical",
        "severity must be warning or critical")
    need(type(rule["for"]) == "number" and rule["for"] >= 0, "for must be seconds >= 0")
    need(type(rule.metric) == "string" and rule.metric:match("^[%a_:][%w_:]*$"), "bad metric")
    need(OPS[rule.op], "op must be a comparison")
    need(type(rule.threshold) == "number", "threshold must be a number")
    need(type(rule.summary) == "string" and type(rule.description) == "string",
        "summary and description are required")
    need(rule.fn == "value" or rule.fn == "rate" or rule.fn == "increase" or rule.fn == "quantile"
        or rule.fn == "until", "fn must be value, rate, increase, quantile or until")
    if rule.fn ~= "value" and rule.fn ~= "until" then
        need(type(rule.window) == "number" and rule.window >= 1, "window must be seconds >= 1")
    end
    if rule.fn == "quantile" then
        need(type(rule.q) == "number" and rule.q > 0 and rule.q < 1, "q must be in (0, 1)")
    end
    need(rule.where == nil or rule.where == "active", 'where must be "active" or absent')
end

--- Whether the policy keeps the rule (expect_traffic = false drops the
-- rules that need traffic).
function _M.applies(policy, rule)
    return not (rule.needs_traffic and policy.expect_traffic == false)
end

--- Where README explains what to do when the rule fires.
function _M.runbook(rule)
    return "README.md#runbook-" .. rule.alert:lower()
end

--- The PromQL expression of a rule.
function _M.promql(rule)
    _M.check(rule)
    local cmp = (" %s %s"):format(rule.op, number(rule.threshold))
    if rule.fn == "value" then
        return selector(rule) .. cmp
    elseif rule.fn == "until" then
        return ("(%s - time())%s"):format(selector(rule), cmp)
    elseif rule.fn == "quantile" then
        return ("histogram_quantile(%s, sum by (%s, le) (rate(%s[%s])))%s"):format(
            number(rule.q), BY, selector(rule, "_bucket"), _M.duration(rule.window), cmp)
    end
    return ("sum by (%s) (%s(%s[%s]))%s"):format(BY, rule.fn, selector(rule),
        _M.duration(rule.window), cmp)
end

local function quote(s)
    return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

--- The text of rules.yml for a policy (the table alerts.lua returns).
function _M.yaml(policy)
    local out = {
        "# Generated by scripts/gen-alert-rules from lua/policies/alerts.lua: do not edit.",
        "groups:",
        "  - name: moontide",
        "    rules:",
    }
    for _, rule in ipairs(policy.rules) do
        if _M.applies(policy, rule) then
            out[#out + 1] = "      - alert: " .. rule.alert
            out[#out + 1] = "        expr: " .. quote(_M.promql(rule))
            out[#out + 1] = "        for: " .. number(rule["for"]) .. "s"
            out[#out + 1] = "        labels:"
            out[#out + 1] = "          severity: " .. rule.severity
            out[#out + 1] = "        annotations:"
            out[#out + 1] = "          summary: " .. quote(rule.summary)
            out[#out + 1] = "          description: " .. quote(rule.description)
            out[#out + 1] = "          runbook_url: " .. quote(_M.runbook(rule))
        end
    end
    return table_concat(out, "\n") .. "\n"
end

return _M
