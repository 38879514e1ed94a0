-- capacity-model.lua - the arithmetic of scripts/capacity: from measured
-- unit costs (bench/capacity.json, written by `scripts/bench capacity`) and
-- a target load to a plan of machines, workers and Redis shards, and the
-- model's prediction for the load the bench measured (to check it).
--
--   local model = require "capacity-model"
--   local plan = model.plan(costs, { connections = 1e6, rooms = 1e5, deliveries = 5e5,
--       cores = 16, memory_gib = 32 })
--   local check = model.check(costs)   -- predicted vs measured CPU
--
-- The model (every figure per second):
--   messages   M = deliveries / members per room
--   instance   M x message (decode, handler, publish; on the sender's)
--            + M x k x arrival (each of the k instances with members in
--              the room reads it from Redis once)
--            + deliveries x delivery + connections x idle
--   Redis      M x (publish + k x per_subscriber), spread over shards by
--              room with sharded pub/sub (a room's traffic is one shard's)
-- where k, the instances a room's members are spread over, is what S
-- members placed at random over N instances occupy: N (1 - (1 - 1/N)^S).
-- Every worker is one instance to Redis. A plan keeps each resource at
-- most at `utilization` of what a machine or a Redis core has.
local _M = {}

local function ceil(x)
    return math.ceil(x - 1e-9)
end

--- The instances a room of s members occupies over n instances.
function _M.spread(n, s)
    if n <= 1 then
        return 1
    end
    return n * (1 - (1 - 1 / n) ^ s)
end

--- CPU seconds per second of the moontide fleet and of Redis, for a load
-- over n instances.
function _M.cpu(costs, load, n)
    local c, r = costs.instance_us, costs.redis_us
    local members = load.connections / load.rooms
    local messages = load.deliveries / members
    local k = _M.spread(n, members)
    local fleet = (messages * c.message + messages * k * c.arrival
        + load.deliveries * c.delivery + load.connections * c.idle_connection_per_s) / 1e6
    local redis = messages * (r.publish + k * r.per_subscriber) / 1e6
    return fleet, redis, k, messages
end

--- The smallest fleet of machines (cores, memory_gib each; workers = cores)
-- that carries the load at utilization (default 0.5), and the Redis shards
-- it needs. Returns a table of the plan's figures.
function _M.plan(costs, target)
    local util = target.utilization or 0.5
    local per_worker = target.connections_per_worker or 50000
    local function fits(machines)
        local n = machines * target.cores
        local fleet = _M.cpu(costs, target, n)
        local mem = target.connections * costs.bytes_per_connection / machines / 2 ^ 30
        if fleet > n * util then
            return false, "cpu"
        elseif mem > target.memory_gib * util then
            return false, "memory"
        elseif target.connections / n > per_worker then
            return false, "connections per worker"
        end
        return true
    end
    for machines = 1, 100000 do
        if fits(machines) then
            local n = machines * target.cores
            local fleet, redis, k, messages = _M.cpu(costs, target, n)
            local mem = target.connections * costs.bytes_per_connection / machines / 2 ^ 30
            local _, bound = fits(machines - 1)
            return {
                machines = machines, workers = n, spread = k, messages = messages,
                fleet_cores = fleet, cpu_share = fleet / n,
                memory_gib = mem, memory_share = mem / target.memory_gib,
                connections_per_worker = target.connections / n,
                redis_cores = redis, redis_shards = math.max(1, ceil(redis / util)),
                bound = machines > 1 and bound or "one machine is enough",
            }
        end
    end
    error("no fleet of up to 100 000 machines carries this load")
end

--- The model's CPU for the bench's check runs (a room over two instances,
-- senders on A, on one cluster shard each) next to what was measured:
-- { {name, predicted, measured}, ... }, three rows a run.
function _M.check(costs)
    local c, r, rows = costs.instance_us, costs.redis_us, {}
    for i, run in ipairs(costs.check) do
        local sent, shard = run.sent, " (shard " .. (run.shard or i) .. ")"
        rows[#rows + 1] = { "instance A" .. shard,
            sent * (c.message + c.arrival + run.members_a * c.delivery) / 1e6, run.cpu_a }
        rows[#rows + 1] = { "instance B" .. shard,
            sent * (c.arrival + run.members_b * c.delivery) / 1e6, run.cpu_b }
        rows[#rows + 1] = { "redis shard " .. (run.shard or i),
            sent * (r.publish + 2 * r.per_subscriber) / 1e6, run.cpu_redis }
    end
    return rows
end

return _M
