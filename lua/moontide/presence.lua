--- moontide.presence: who is in a room, across every worker and instance.
--
--   local presence = require "moontide.presence"
--   presence.join(room, conn, info, { events = true })  -- info: a table (JSON)
--   presence.leave(room, conn)                          -- also done at close
--   presence.list(room, function(members, err) end)     -- every member's info
--   presence.count(room, function(n, err) end)
--
-- A member is a connection that joined; its info is the table it joined
-- with (plus `connection_id`). Leaving on close is automatic.
--
-- With Redis (redis_url) a room is one hash, <prefix>presence:<room>,
-- member -> info and the instance that holds the connection. Each
-- instance renews a lease key, <prefix>lease:<instance>, every second with
-- a time-to-live of LEASE_SECONDS: members whose instance's lease has
-- lapsed are left out of every list and removed, so a killed instance's
-- members are gone within LEASE_SECONDS. When Redis comes back after an
-- outage, each instance files its live members again. One round trip per
-- join or leave, one per list (a script in Redis), whatever the room's size.
--
-- Without Redis, each worker knows its own members; a list asks the other
-- workers of the server (through the mesh) and gathers their answers.
--
-- events = true: joins and leaves are announced to the group named room as
-- {"type":"presence","event":"join"|"leave","member":{...}}, at most
-- EVENTS_PER_SECOND a room on this worker (a burst of EVENTS_BURST); the
-- rest are not announced (lists stay exact).
local moontide = require "moontide"

local json_encode, json_decode = moontide.json.encode, moontide.json.decode
local pairs, next, type, error = pairs, next, type, error

local _M = {}

local LEASE_SECONDS = 5
local EVENTS_PER_SECOND, EVENTS_BURST = 10, 20
local GATHER_SECONDS = 1

_M.LEASE_SECONDS = LEASE_SECONDS

-- This process, for leases: random, new each start.
local instance = moontide._random_hex(8)
_M.instance = instance

local rooms = {}    -- room -> { [handle] = info JSON text }, this process's members
local joined = {}   -- handle -> { [room] = announced }
local buckets = {}  -- room -> { tokens, at } for announcements
local log = moontide.logger("moontide.presence")

local function key(room)
    return moontide.redis.key("presence", room)
end

-- Leases: "<prefix>lease:<instance>"; with Redis Cluster all in one slot
-- ("<prefix>lease:{leases}:<instance>"), so one script reads them all.
local function lease_prefix()
    if moontide.redis.cluster() then
        return moontide.redis.key("lease", "leases") .. ":"
    end
    return moontide.redis.key("lease", "")
end

-- Redis: filings that could not be made (Redis away): every member is
-- filed again, and these leaves retried, once it answers.
local dirty = false
local pending_leaves = {} -- { key, id }

-- Takes or renews the lease; 1 when it had to be taken anew (first use, or
-- Redis lost it: restarted empty, or this instance stalled past the lease).
local LEASE_SCRIPT = [[
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then
    return 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
]]

local leased_at = -math.huge
local refile

local function renew_lease()
    leased_at = moontide.monotonic()
    local ok = moontide.redis.command({ "EVAL", LEASE_SCRIPT, 1, lease_prefix() .. instance,
        LEASE_SECONDS * 1000 }, function(taken)
        if taken == 1 or dirty then
            refile()
        end
    end)
    if not ok then
        dirty = true
    end
end

local function on_filed(_, err)
    if err then
        dirty = true
    end
end

local function announce(room, event, info_json)
    local b = buckets[room]
    local now = moontide.monotonic()
    if not b then
        b = { tokens = EVENTS_BURST, at = now }
        buckets[room] = b
    end
    b.tokens = math.min(EVENTS_BURST, b.tokens + (now - b.at) * EVENTS_PER_SECOND)
    b.at = now
    if b.tokens < 1 then
        return
    end
    b.tokens = b.tokens - 1
    moontide.groups.send(room, '{"type":"presence","event":"' .. event .. '","member":'
        .. info_json .. "}")
end

local function check_room(room)
    if type(room) ~= "string" or #room == 0 or #room > moontide.limits.group_name then
        error('bad "room" argument: expected a name of 1 to ' .. moontide.limits.group_name
            .. " bytes", 3)
    end
end

--- Makes conn a member of room with info (a table; connection_id is set).
function _M.join(room, conn, info, opts)
    check_room(room)
    if getmetatable(conn) ~= moontide.Connection then
        error('bad "conn" argument: expected a connection', 2)
    end
    if conn.closed then
        return nil, "closed"
    end
    local record = {}
    for k, v in pairs(info or {}) do
        record[k] = v
    end
    record.connection_id = conn.id
    local text = json_encode(record)
    if not text then
        error('bad "info" argument: cannot encode it as JSON', 2)
    end
    local handle = conn._handle
    rooms[room] = rooms[room] or {}
    rooms[room][handle] = text
    joined[handle] = joined[handle] or {}
    joined[handle][room] = opts and opts.events and true or false -- announce the leave too
    if moontide.redis.configured() then
        if moontide.monotonic() - leased_at > 1 then
            renew_lease() -- before the member, so a list never misses it
        end
        record.instance = instance
        if not moontide.redis.command({ "HSET", key(room), conn.id, json_encode(record) },
            on_filed) then
            dirty = true
        end
    end
    if opts and opts.events then
        announce(room, "join", text)
    end
    return true
end

local function forget(room, handle, id, events)
    local members = rooms[room]
    local text = members and members[handle]
    if not text then
        return nil
    end
    members[handle] = nil
    if next(members) == nil then
        rooms[room] = nil
        buckets[room] = nil
    end
    if joined[handle] then
        joined[handle][room] = nil
        if next(joined[handle]) == nil then
            joined[handle] = nil
        end
    end
    if moontide.redis.configured() then
        local k = key(room)
        if not moontide.redis.command({ "HDEL", k, id }, function(_, err)
            if err then
                pending_leaves[#pending_leaves + 1] = { k, id }
            end
        end) then
            pending_leaves[#pending_leaves + 1] = { k, id }
        end
    end
    if events then
        announce(room, "leave", text)
    end
    return true
end

--- Removes conn from room. true, or nil and "not_member".
function _M.leave(room, conn, opts)
    check_room(room)
    if forget(room, conn._handle, conn.id, opts and opts.events) then
        return true
    end
    return nil, "not_member"
end

moontide._on_close(function(conn)
    local list = joined[conn._handle]
    if not list then
        return
    end
    for room, events in pairs(list) do
        forget(room, conn._handle, conn.id, events)
    end
end)

-- The members of room this process holds, as JSON texts.
local function local_members(room)
    local out = {}
    for _, text in pairs(rooms[room] or {}) do
        out[#out + 1] = text
    end
    return out
end

-- Redis: the room's members whose instance holds a lease (the asking
-- instance, ARGV[2], is alive whatever its lease says); removes the rest.
local LIST_SCRIPT = [=[
local entries = redis.call('HGETALL', KEYS[1])
local alive, out, stale = { [ARGV[2]] = true }, {}, {}
for i = 1, #entries, 2 do
    local v = entries[i + 1]
    local inst = string.match(v, '"instance":"([0-9a-f]+)"') or ''
    local ok = alive[inst]
    if ok == nil then
        ok = redis.call('EXISTS', ARGV[1] .. inst) == 1
        alive[inst] = ok
    end
    if ok then
        out[#out + 1] = v
    else
        stale[#stale + 1] = entries[i]
    end
end
for i = 1, #stale, 500 do
    redis.call('HDEL', KEYS[1], unpack(stale, i, math.min(i + 499, #stale)))
end
return out
]=]

-- Other workers' lists, gathered: id -> { room, texts, waiting, cb, timer }.
local gathers, next_gather = {}, 0

local function finish_gather(id)
    local g = gathers[id]
    if not g then
        return
    end
    gathers[id] = nil
    g.cb(g.texts)
end

moontide._on_mesh("presence.list", function(from, msg)
    moontide._mesh_send(from, "presence.members", { id = msg.id, texts = local_members(msg.room) })
end)

moontide._on_mesh("presence.members", function(_, msg)
    local g = gathers[msg.id]
    if not g then
        return
    end
    for _, text in ipairs(msg.texts or {}) do
        g.texts[#g.texts + 1] = text
    end
    g.waiting = g.waiting - 1
    if g.waiting <= 0 then
        finish_gather(msg.id)
    end
end)

-- Redis Cluster: which of the leases KEYS exist (1) or not (0).
local LEASES_SCRIPT = [[
local out = {}
for i = 1, #KEYS do
    out[i] = redis.call('EXISTS', KEYS[i])
end
return out
]]

local function instance_of(text)
    return string.match(text, '"instance":"([0-9a-f]+)"') or ""
end

-- Redis Cluster: LIST_SCRIPT's work in three steps, as the room's hash and
-- the leases live on different shards: the room's entries, then the
-- leases of the instances they name (one script on the leases' shard),
-- then the entries of lapsed instances removed.
local function cluster_member_texts(room, cb)
    local function filter(entries, alive)
        local out, stale = {}, { "HDEL", key(room) }
        for i = 1, #entries, 2 do
            local inst = instance_of(entries[i + 1])
            if inst == instance or alive[inst] then
                out[#out + 1] = entries[i + 1]
            else
                stale[#stale + 1] = entries[i]
            end
        end
        if #stale > 2 then
            moontide.redis.command(stale)
        end
        cb(out)
    end
    local ok, err = moontide.redis.command({ "HGETALL", key(room) }, function(entries, rerr)
        if type(entries) ~= "table" then
            return cb(nil, rerr or "redis unavailable")
        end
        local args, insts, seen = { "EVAL", LEASES_SCRIPT, 0 }, {}, {}
        for i = 2, #entries, 2 do
            local inst = instance_of(entries[i])
            if inst ~= instance and not seen[inst] then
                seen[inst] = true
                insts[#insts + 1] = inst
                args[#args + 1] = lease_prefix() .. inst
            end
        end
        if #insts == 0 then
            return filter(entries, {})
        end
        args[3] = #insts
        local sent, serr = moontide.redis.command(args, function(flags, ferr)
            if type(flags) ~= "table" then
                return cb(nil, ferr or "redis unavailable")
            end
            local alive = {}
            for i, inst in ipairs(insts) do
                alive[inst] = flags[i] == 1
            end
            filter(entries, alive)
        end)
        if not sent then
            cb(nil, serr)
        end
    end)
    if not ok then
        cb(nil, err)
    end
end

-- Calls cb(texts, err) with every member's info as JSON text.
local function member_texts(room, cb)
    if moontide.redis.cluster() then
        return cluster_member_texts(room, cb)
    end
    if moontide.redis.configured() then
        local ok, err = moontide.redis.command({ "EVAL", LIST_SCRIPT, 1, key(room),
            lease_prefix(), instance }, function(list, rerr)
            if type(list) ~= "table" then
                return cb(nil, rerr or "redis unavailable")
            end
            cb(list)
        end)
        if not ok then
            cb(nil, err)
        end
        return
    end
    local texts = local_members(room)
    local index, count = moontide.worker()
    if count <= 1 then
        return cb(texts)
    end
    next_gather = next_gather + 1
    local id = next_gather
    local g = { texts = texts, waiting = 0, cb = cb, at = moontide.monotonic() }
    gathers[id] = g
    for w = 1, count do
        if w ~= index and moontide._mesh_send(w, "presence.list", { id = id, room = room }) then
            g.waiting = g.waiting + 1
        end
    end
    if g.waiting == 0 then
        finish_gather(id)
    end
end

--- Calls cb(members) with the info of every member of room, on every
-- worker and instance; or cb(nil, err) when they cannot be had (Redis
-- unavailable).
function _M.list(room, cb)
    check_room(room)
    if type(cb) ~= "function" then
        error('bad "callback" argument: expected a function', 2)
    end
    member_texts(room, function(texts, err)
        if not texts then
            return cb(nil, err)
        end
        local members = {}
        for _, text in ipairs(texts) do
            local m = json_decode(text)
            if type(m) == "table" then
                m.instance = nil
                members[#members + 1] = m
            end
        end
        cb(members)
    end)
end

--- Calls cb(n) with the number of members of room (or cb(nil, err)).
function _M.count(room, cb)
    check_room(room)
    member_texts(room, function(texts, err)
        cb(texts and #texts or nil, err)
    end)
end

--- Forgets every member (a new runtime in tests). Internal.
function _M._reset()
    rooms, joined, buckets, gathers = {}, {}, {}, {}
    dirty, pending_leaves, leased_at = false, {}, -math.huge
end

--- Members of rooms on this process (tests and tools).
function _M._local(room)
    return local_members(room)
end

-- Files every member this instance holds again (after an outage, or a
-- Redis that came back empty), and retries the leaves that failed.
function refile()
    dirty = false
    local n = 0
    for room, members in pairs(rooms) do
        for _, text in pairs(members) do
            local record = json_decode(text)
            record.instance = instance
            if not moontide.redis.command({ "HSET", key(room), record.connection_id,
                json_encode(record) }, on_filed) then
                dirty = true
            end
            n = n + 1
        end
    end
    local leaves = pending_leaves
    pending_leaves = {}
    for _, l in ipairs(leaves) do
        moontide.redis.command({ "HDEL", l[1], l[2] })
    end
    if n > 0 or #leaves > 0 then
        log.info("presence filed again", { members = n, leaves = #leaves })
    end
end

-- Once a second: the lease (and whatever filing it calls for), and
-- gathers whose workers did not all answer.
moontide._on_tick(function()
    local now = moontide.monotonic()
    for id, g in pairs(gathers) do
        if now - g.at > GATHER_SECONDS then
            finish_gather(id)
        end
    end
    if moontide.redis.configured() and moontide.redis.available() then
        renew_lease()
    end
end)

return _M
