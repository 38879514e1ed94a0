-- The capacity model's arithmetic (scripts/capacity-model.lua) on costs
-- chosen so that every figure can be worked out by hand.
package.path = "scripts/?.lua;" .. package.path
local model = require "capacity-model"

local costs = {
    instance_us = { message = 10, arrival = 2, delivery = 1, idle_connection_per_s = 0 },
    redis_us = { publish = 20, per_subscriber = 5 },
    bytes_per_connection = 2 ^ 20, -- 1 MiB: memory bounds are easy to see
    check = { { shard = 1, sent = 1000, members_a = 10, members_b = 5, cpu_a = 0.03, cpu_b = 0.01,
        cpu_redis = 0.03 }, { shard = 2, sent = 2000, members_a = 10, members_b = 5, cpu_a = 0.06,
        cpu_b = 0.02, cpu_redis = 0.06 } },
}

describe("capacity model", function()
    it("spreads a room's members over the instances as random placement does", function()
        assert.equal(1, model.spread(1, 50))
        assert.near(1.5, model.spread(2, 2), 1e-9) -- 2 (1 - 1/4)
        assert.near(10, model.spread(1e6, 10), 1e-3) -- many instances: one each
        assert.near(20, model.spread(20, 1000), 1e-9) -- big rooms: everywhere
    end)

    it("adds up fleet and Redis CPU per message, arrival and delivery", function()
        -- 100 rooms of 10, 1 000 deliveries/s = 100 messages/s, 1 instance
        local fleet, redis, k, messages = model.cpu(costs,
            { connections = 1000, rooms = 100, deliveries = 1000 }, 1)
        assert.equal(100, messages)
        assert.equal(1, k)
        assert.near((100 * 10 + 100 * 2 + 1000 * 1) / 1e6, fleet, 1e-12)
        assert.near(100 * (20 + 5) / 1e6, redis, 1e-12)
    end)

    it("plans the fewest machines that keep every resource under the bound", function()
        -- CPU: 1e6 messages/s x (10 + 2) us + 1e6 deliveries x 1 us = 13 cores
        -- (rooms of 1: one instance each) -> at 50 % of 4 cores, 7 machines
        local p = model.plan(costs, { connections = 1000, rooms = 1000, deliveries = 1e6,
            cores = 4, memory_gib = 64 })
        assert.equal(7, p.machines)
        assert.equal(28, p.workers)
        assert.equal("cpu", p.bound)
        assert.near(13, p.fleet_cores, 1e-6)
        -- Redis: 1e6 x (20 + 5) us = 25 cores of work -> 50 shards at 50 %
        assert.equal(50, p.redis_shards)
    end)

    it("is bound by memory when connections outweigh traffic", function()
        -- 100 000 connections of 1 MiB = 97.7 GiB; 16 GiB each at 50 % -> 13
        local p = model.plan(costs, { connections = 1e5, rooms = 1e4, deliveries = 1,
            cores = 2, memory_gib = 16 })
        assert.equal(13, p.machines)
        assert.equal("memory", p.bound)
        assert.equal(1, p.redis_shards)
    end)

    it("predicts the bench's check run from the unit costs", function()
        local rows = model.check(costs)
        assert.equal(6, #rows) -- three a shard
        assert.same({ "instance A (shard 1)", "instance B (shard 1)", "redis shard 1" },
            { rows[1][1], rows[2][1], rows[3][1] })
        assert.near(1000 * (10 + 2 + 10) / 1e6, rows[1][2], 1e-12)
        assert.near(1000 * (2 + 5) / 1e6, rows[2][2], 1e-12)
        assert.near(1000 * (20 + 10) / 1e6, rows[3][2], 1e-12)
        assert.equal(0.01, rows[2][3])
        assert.near(2000 * (20 + 10) / 1e6, rows[6][2], 1e-12)
    end)
end)
