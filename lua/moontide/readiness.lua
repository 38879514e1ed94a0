--- moontide.readiness: the readiness policy, lua/policies/health.lua.
--
--   local readiness = require "moontide.readiness"
--   local policy = readiness.load()        -- nil when the scripts have none
--   readiness.decide(policy, facts) -> ready, checks, reasons | nil
--
-- The core decides readiness at the top of events (a /readyz request, the
-- once-a-second sweep, a drain) and calls the host's readiness(facts),
-- which asks the policy here. facts: draining, active_connections,
-- max_connections, channel_layer, channel_ready, redis_configured,
-- redis_connected, redis_latency, redis_down_seconds, scripts_generation.
local type, error = type, error

local _M = {}

--- Loads policies.health when the scripts have it; raises if it lacks
-- readiness(facts). The caller drops the app's modules from
-- package.loaded before a reload.
function _M.load()
    if not package.searchpath("policies.health", package.path) then
        return nil
    end
    package.loaded["policies.health"] = nil
    local mod = require("policies.health")
    if type(mod) ~= "table" or type(mod.readiness) ~= "function" then
        error("policies/health.lua must return a table with readiness(facts)", 0)
    end
    return mod
end

--- The policy's decision: ready (boolean), checks (name -> "ok" or a
-- reason) and reasons (a list); nil without a policy (the core then
-- decides with its built-in rules).
function _M.decide(policy, facts)
    if not policy then
        return nil
    end
    local ready, checks, reasons = policy.readiness(facts)
    return ready and true or false, checks or {}, reasons or {}
end

return _M
