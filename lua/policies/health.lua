--- policies.health: when is this instance ready for traffic?
--
-- The core calls readiness(facts) for every GET /readyz and answers 200 or
-- 503 with the checks and reasons returned here. Reloaded with the other
-- scripts. facts: draining, active_connections, max_connections,
-- channel_layer ("memory" | "redis"), channel_ready, redis_configured,
-- redis_connected, redis_latency (seconds, last PING), redis_down_seconds,
-- scripts_generation.
-- Returns ready (boolean), checks (name -> "ok" or a reason), reasons (list).
local _M = {}

function _M.readiness(facts)
    local checks, reasons = {}, {}
    local function check(name, ok, reason)
        checks[name] = ok and "ok" or reason
        if not ok then
            reasons[#reasons + 1] = reason
        end
    end
    check("draining", not facts.draining, "draining")
    check("redis", not facts.redis_configured or facts.redis_connected, "redis unavailable")
    check("channel_layer", facts.channel_ready, "channel layer unavailable")
    check("connections", facts.active_connections < facts.max_connections,
        "connection limit reached")
    return #reasons == 0, checks, reasons
end

return _M
