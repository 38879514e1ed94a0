--- moontide.stream: a room's messages numbered, kept, and recovered.
--
--   local stream = require "moontide.stream"
--   local s = stream.open("chat_lobby", { size = 1000, ttl = 86400 })
--   s:publish({ type = "message", text = "hi" })  -- to the group of that name
--   s:recent(50, function(texts, err) end)        -- the last 50, oldest first
--   s:greet(conn, 50, frame)                      -- the last 50 in one frame, then live
--   s:resume(conn, epoch, offset)                 -- what conn missed, then live
--
-- Every message a stream publishes is a JSON object; it is delivered to the
-- members of the group named like the stream with two fields added:
-- "offset" (1, 2, 3, ... per stream) and "epoch" (a string that changes
-- when the stream's history is lost: Redis flushed, or the in-memory
-- holder restarted; offsets then start again at 1).
--
-- resume(conn, epoch, offset), for a client that reconnects knowing the
-- last message it got: conn (already a member of the group) is sent
--   {"type":"recovered","ok":true|false,"reason":...,"epoch":E,"offset":N,"missed":K}
-- then every message after offset that history still has, in order, then
-- the live messages: none missed, none twice, including those published
-- while history was being read (the group's deliveries to conn are held
-- back meanwhile and those already sent from history are dropped). ok is
-- false, with the reason, when the epoch changed ("epoch changed": the
-- client gets the history there is) or history no longer reaches back
-- to offset ("history trimmed": it gets what is left).
--
-- Storage: with Redis, a Redis stream per room (<prefix>stream:<name>,
-- entries 0-<offset>, trimmed to about size entries with MAXLEN ~) beside
-- its offset counter and epoch; a script numbers, stores and publishes
-- each message in one round trip, so offsets follow publication order on
-- every instance. The keys expire ttl seconds after the last message.
-- What is published on an instance that does not hear the room yet (a
-- member just joined: the subscription is not confirmed) waits for it, in
-- order, so that its own members miss nothing; a resume reads history
-- only once the room is heard, and lets held messages through only once
-- the subscription has caught up with the read (moontide.redis._sync).
-- Without Redis, a ring of size messages in memory; in a server of several
-- workers one worker (chosen by the stream's name) numbers and keeps each
-- stream and the others ask it. A message sent while Redis is down is
-- delivered on this instance without offset and is not kept.
local moontide = require "moontide"

local json_encode = moontide.json.encode
local type, error, setmetatable, pairs, ipairs = type, error, setmetatable,
    pairs, ipairs

local _M = {}

local DEFAULT_SIZE, DEFAULT_TTL = 1000, 86400
local RESUME_MAX = 100000 -- messages one resume may send
local ASK_SECONDS = 2     -- an unanswered question to another worker fails

local Stream = {}
Stream.__index = Stream

local streams = {} -- name -> Stream (handles are cached)

local function epoch_new()
    return moontide._random_hex(6)
end

-- This instance's part of the epoch a stream gets if a publish finds it
-- new (or flushed; Redis's clock makes the rest): made once a second at
-- most, not per message (it costs a read of urandom).
local spare, spare_at = nil, -1
local function spare_epoch()
    local now = moontide.monotonic()
    if now - spare_at >= 1 then
        spare, spare_at = epoch_new(), now
    end
    return spare
end

-- A JSON object's text with offset and epoch added.
local function numbered(text, offset, epoch)
    return text:sub(1, -2) .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}'
end

local function as_object_text(msg)
    local text = type(msg) == "table" and json_encode(msg) or msg
    if type(text) ~= "string" or not text:find("^%s*{") or not text:find("}%s*$") then
        error('bad "message" argument: expected a table or the text of a JSON object', 3)
    end
    return (text:gsub("%s+$", ""))
end

--- The stream called name (the group it publishes to has that name).
-- opts.size: messages kept (default 1000); opts.ttl: seconds kept after
-- the last message (default 86400).
function _M.open(name, opts)
    if type(name) ~= "string" or #name == 0 or #name > moontide.limits.group_name then
        error('bad "name" argument: expected a group name of 1 to '
            .. moontide.limits.group_name .. " bytes", 2)
    end
    local s = streams[name]
    if not s then
        s = setmetatable({ name = name }, Stream)
        streams[name] = s
    end
    s.size = opts and opts.size or DEFAULT_SIZE
    s.ttl = opts and opts.ttl or DEFAULT_TTL
    return s
end

-- -- In memory -------------------------------------------------------------

local rings = {} -- name -> { epoch, offset, first, items = {offset -> text}, size, ttl, at }

local function ring_of(name, size, ttl)
    local r = rings[name]
    if not r then
        r = { epoch = epoch_new(), offset = 0, first = 1, items = {} }
        rings[name] = r
    end
    r.size, r.ttl, r.at = size, ttl, moontide.monotonic()
    return r
end

-- Numbers, keeps and delivers one message (this worker holds the stream).
local function ring_publish(name, size, ttl, text)
    local r = ring_of(name, size, ttl)
    r.offset = r.offset + 1
    local out = numbered(text, r.offset, r.epoch)
    r.items[r.offset] = out
    while r.offset - r.first + 1 > r.size do
        r.items[r.first] = nil
        r.first = r.first + 1
    end
    moontide.groups.send(name, out)
end

-- What history holds after offset (at most max), oldest first.
local function ring_since(name, offset, max)
    local r = rings[name]
    if not r then
        return { epoch = nil, last = 0, first = 1, texts = {} }
    end
    local texts = {}
    local from = math.max(offset + 1, r.first)
    for o = from, math.min(r.offset, from + max - 1) do
        texts[#texts + 1] = r.items[o]
    end
    return { epoch = r.epoch, last = r.offset, first = r.first, texts = texts }
end

local function ring_recent(name, n)
    local r = rings[name]
    if not r then
        return { texts = {} }
    end
    return ring_since(name, math.max(r.offset - n, r.first - 1), n)
end

-- The worker that holds a stream, in a server of several.
local function holder(name)
    local index, count = moontide.worker()
    if count <= 1 then
        return index, index
    end
    local h = 5381
    for i = 1, #name do
        h = (h * 33 + name:byte(i)) % 4294967296
    end
    return h % count + 1, index
end

-- Questions to the holder: id -> { cb, at }.
local asks, next_ask = {}, 0

local function ask(to, op, msg, cb)
    next_ask = next_ask + 1
    msg.id, msg.op = next_ask, op
    if not moontide._mesh_send(to, "stream.ask", msg) then
        return cb(nil, "the worker holding the stream is down")
    end
    asks[next_ask] = { cb = cb, at = moontide.monotonic() }
end

moontide._on_mesh("stream.ask", function(from, msg)
    local answer
    if msg.op == "publish" then
        ring_publish(msg.name, msg.size, msg.ttl, msg.text)
        return
    elseif msg.op == "since" then
        answer = ring_since(msg.name, msg.offset, msg.max)
    else
        answer = ring_recent(msg.name, msg.n)
    end
    answer.id = msg.id
    moontide._mesh_send(from, "stream.answer", answer)
end)

moontide._on_mesh("stream.answer", function(_, msg)
    local a = asks[msg.id]
    asks[msg.id] = nil
    if a then
        a.cb(msg)
    end
end)

moontide._on_tick(function()
    local mono = moontide.monotonic()
    for id, a in pairs(asks) do
        if mono - a.at > ASK_SECONDS then
            asks[id] = nil
            a.cb(nil, "the worker holding the stream did not answer")
        end
    end
    for name, r in pairs(rings) do -- idle streams expire
        if mono - r.at > r.ttl then
            rings[name] = nil
        end
    end
end)

-- -- In Redis ----------------------------------------------------------------

-- KEYS: epoch, offset counter, stream. ARGV: a new epoch (used when there
-- is none: history lost), size, ttl, channel, header, message text, and
-- PUBLISH or (Redis Cluster: the channel is in the keys' slot) SPUBLISH.
local PUBLISH_SCRIPT = [[
local epoch = redis.call('GET', KEYS[1])
if not epoch then
    local t = redis.call('TIME')
    epoch = ARGV[1] .. string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
    redis.call('SET', KEYS[1], epoch)
    redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('INCR', KEYS[2])
local text = ARGV[6]
local out = string.sub(text, 1, -2) .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}'
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '0-' .. offset, 'm', out)
redis.call(ARGV[7], ARGV[4], ARGV[5] .. out)
for i = 1, 3 do
    redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return { epoch, offset }
]]

-- KEYS: epoch, offset counter, stream. ARGV: after offset, max.
-- Returns epoch (or false), last offset, the oldest offset kept, texts.
local SINCE_SCRIPT = [[
local epoch = redis.call('GET', KEYS[1])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local oldest = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
local first = last + 1
if #oldest > 0 then
    first = tonumber(string.match(oldest[1][1], '-(%d+)$'))
end
local entries = redis.call('XRANGE', KEYS[3], '0-' .. (tonumber(ARGV[1]) + 1), '+', 'COUNT', ARGV[2])
local texts = {}
for i, e in ipairs(entries) do
    texts[i] = e[2][2]
end
return { epoch or false, last, first, texts }
]]

local RECENT_SCRIPT = [[
local epoch = redis.call('GET', KEYS[1])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local entries = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', ARGV[1])
local texts = {}
for i = #entries, 1, -1 do
    texts[#texts + 1] = entries[i][2][2]
end
return { epoch or false, last, 0, texts }
]]

-- A group message's header on the channel layer's Redis channel (see
-- core/redis.h): its version byte, no flags, sender 0 (every instance
-- delivers it, the sender's too).
local HEADER = string.char(require("moontide.cdef").const.MT_FFI_REDIS_HEADER_VERSION, 0)
    .. string.rep("\0", 8)

-- The stream's Redis names, made on first use (not per message): its
-- epoch, offset counter and stream keys, and its group's channel.
local function keys(s)
    local k = s.keys
    if not k then
        local key = moontide.redis.key
        k = { key("stream", s.name, "epoch"), key("stream", s.name, "offset"),
            key("stream", s.name), channel = key("group", s.name) }
        s.keys = k
    end
    return k
end

local function redis_answer(reply)
    if type(reply) ~= "table" then
        return nil
    end
    local epoch = reply[1]
    return { epoch = type(epoch) == "string" and epoch or nil, last = tonumber(reply[2]) or 0,
        first = tonumber(reply[3]) or 1, texts = type(reply[4]) == "table" and reply[4] or {} }
end

-- -- The API -----------------------------------------------------------------

--- Numbers, keeps and publishes msg (a table, or a JSON object's text) to
-- the group named like the stream.
local function redis_publish(self, text)
    local k = keys(self)
    -- Redis away: this instance still hears it, unnumbered (the group
    -- send counts it as redis_unavailable, once).
    if not moontide.redis.available() or not moontide.redis.command({ "EVAL", PUBLISH_SCRIPT,
        3, k[1], k[2], k[3], spare_epoch(), self.size, self.ttl, k.channel, HEADER, text,
        moontide.redis.cluster() and "SPUBLISH" or "PUBLISH" }) then
        moontide.groups.send(self.name, text)
    end
end

-- Stream name -> texts published here before this instance heard the
-- room (its subscription not yet confirmed), in order.
local unheard = {}

-- Publishes what waited for the room's subscription, once it is confirmed
-- (or after about 2 s, or when nobody here is left to hear it).
local function publish_when_heard(self)
    local tries = 0
    local function wait()
        tries = tries + 1
        local name = self.name
        if moontide.groups.ready(name) or tries > 200 or moontide.groups.size(name) == 0
            or not moontide.redis.available() then
            local texts = unheard[name]
            unheard[name] = nil
            for _, text in ipairs(texts) do
                redis_publish(self, text)
            end
            return
        end
        moontide._after(0.01, wait)
    end
    moontide._after(0.01, wait)
end

function Stream:publish(msg)
    local text = as_object_text(msg)
    if moontide.redis.configured() then
        -- A message reaches this instance's members only through the room's
        -- subscription: until it is confirmed (a member just joined), what
        -- is published here waits, in order, rather than be missed here.
        local waiting = unheard[self.name]
        if not waiting and not moontide.groups.ready(self.name) and moontide.redis.available()
            and moontide.groups.size(self.name) > 0 then
            waiting = {}
            unheard[self.name] = waiting
            publish_when_heard(self)
        end
        if waiting then
            waiting[#waiting + 1] = text
        else
            redis_publish(self, text)
        end
        return true
    end
    local h, me = holder(self.name)
    if h == me then
        ring_publish(self.name, self.size, self.ttl, text)
    elseif not moontide._mesh_send(h, "stream.ask", { op = "publish", name = self.name,
        size = self.size, ttl = self.ttl, text = text }) then
        moontide.groups.send(self.name, text) -- its holder is down: unnumbered, here only
    end
    return true
end

-- A read of the stream, cb(answer) with { epoch, last, first, texts } or
-- cb(nil, err): from Redis (script over its keys, then a1, a2), from
-- this process's ring (here()), or from the worker that holds it (op, msg).
local function read(self, script, a1, a2, here, op, msg, cb)
    if moontide.redis.configured() then
        local k = keys(self)
        local ok, err = moontide.redis.command({ "EVAL", script, 3, k[1], k[2], k[3], a1, a2 },
            function(reply, rerr)
                local a = redis_answer(reply)
                cb(a, a == nil and (rerr or "redis unavailable") or nil)
            end)
        if not ok then
            cb(nil, err)
        end
        return
    end
    local h, me = holder(self.name)
    if h == me then
        return cb(here())
    end
    ask(h, op, msg, cb)
end

-- The messages after offset, at most max (see read).
function Stream:_since(offset, max, cb)
    read(self, SINCE_SCRIPT, offset, max, function() return ring_since(self.name, offset, max) end,
        "since", { name = self.name, offset = offset, max = max }, cb)
end

-- The last n messages (see read).
function Stream:_recent(n, cb)
    read(self, RECENT_SCRIPT, n, nil, function() return ring_recent(self.name, n) end,
        "recent", { name = self.name, n = n }, cb)
end

--- Calls cb(texts) with the last n messages (oldest first, each with its
-- offset and epoch), or cb(nil, err).
function Stream:recent(n, cb)
    if type(cb) ~= "function" then
        error('bad "callback" argument: expected a function', 2)
    end
    self:_recent(n, function(a, err)
        cb(a and a.texts, err)
    end)
end

-- With Redis, runs fn once this instance hears the group's live messages
-- (its subscription is confirmed; at most about 2 s), so that history read
-- then cannot miss one published in between. At once otherwise.
local function when_heard(self, conn, fn)
    if not moontide.redis.configured() or moontide.groups.ready(self.name) then
        return fn()
    end
    local tries = 0
    local function wait()
        tries = tries + 1
        if moontide.groups.ready(self.name) or tries > 200 or conn.closed then
            return fn()
        end
        moontide._after(0.01, wait)
    end
    wait()
end

-- With Redis, runs fn once the subscription has brought every message
-- published before the history was read: the reply came on the command
-- link and can overtake them, and one let through after the release would
-- arrive twice. (If the link dropped, fn runs anyway.)
local function settled(self, fn)
    if not moontide.redis.configured() or not moontide.redis._sync(self.name, fn) then
        fn()
    end
end

-- Sends the catch-up and lets the held deliveries through. reason: why it
-- is not the exact recovery asked for (nil: it is).
local function catch_up(conn, a, err, reason)
    if conn.closed then
        return
    end
    local ok = reason == nil and a ~= nil
    if not a then
        reason = err or "history unavailable"
    end
    local texts = a and a.texts or {}
    conn:send(json_encode({ type = "recovered", ok = ok, reason = reason,
        epoch = a and a.epoch or moontide.json.null, offset = a and a.last or 0,
        missed = #texts }))
    for _, text in ipairs(texts) do
        conn:send(text)
    end
    -- Held deliveries the catch-up already sent (offset not above the
    -- last it read) are dropped; the rest follow.
    conn:_release(a and a.last or -1)
end

local function check_conn(conn)
    if getmetatable(conn) ~= moontide.Connection then
        error('bad "conn" argument: expected a connection', 3)
    end
end

-- The frame of a greet (when there are texts), then what is held after last.
local function greeting(conn, frame, texts, last)
    if conn.closed then
        return
    end
    if #texts > 0 then
        conn:send(frame(texts))
    end
    conn:_release(last)
end

--- Sends conn (a member of the stream's group) the last n messages as one
-- frame, frame(texts) (texts oldest first; nothing is sent when there are
-- none), then the live messages: each in the frame or live, never both,
-- none missed in between (the last n before the first live one). true, or
-- nil and "closed".
function Stream:greet(conn, n, frame)
    check_conn(conn)
    if type(frame) ~= "function" then
        error('bad "frame" argument: expected a function', 2)
    end
    if conn.closed then
        return nil, "closed"
    end
    if not moontide.redis.configured() then
        local h, me = holder(self.name)
        if h == me then
            -- Kept in this process: read and sent in one go, nothing can be
            -- published in between (one thread), so nothing is held, and a
            -- join allocates no callbacks.
            local a = ring_recent(self.name, n)
            if #a.texts > 0 then
                conn:send(frame(a.texts))
            end
            return true
        end
    end
    if not conn:_hold(self.name) then
        return nil, "closed"
    end
    when_heard(self, conn, function()
        self:_recent(n, function(a)
            settled(self, function()
                if conn.closed then
                    return
                end
                local held = conn:_held_first()
                if not a or held <= 0 or held > a.last then
                    return greeting(conn, frame, a and a.texts or {}, a and a.last or -1)
                end
                -- Published since the join: those are held, in order from
                -- offset held, and all come live (the last n read may not
                -- reach back to them); the frame gets the n before them.
                local from = math.max(held - n, 1)
                if from >= held then
                    return greeting(conn, frame, {}, held - 1)
                end
                self:_since(from - 1, held - from, function(b)
                    local texts = {}
                    if b then
                        local o = math.max(from, b.first) -- trimmed: what is left
                        for _, text in ipairs(b.texts) do
                            if o >= held then
                                break
                            end
                            texts[#texts + 1], o = text, o + 1
                        end
                    end
                    greeting(conn, frame, texts, held - 1)
                end)
            end)
        end)
    end)
    return true
end

--- Sends conn what it missed after offset in epoch, then the live messages
-- (see the module comment). conn must be a member of the stream's group.
function Stream:resume(conn, epoch, offset)
    check_conn(conn)
    offset = tonumber(offset) or 0
    if not conn:_hold(self.name) then
        return nil, "closed"
    end
    when_heard(self, conn, function()
        self:_since(offset, RESUME_MAX, function(a, err)
            if a and a.epoch ~= epoch and offset > 0 then
                -- Another epoch: its offsets say nothing of the client's; it
                -- gets what this epoch has, from the start.
                return self:_since(0, RESUME_MAX, function(b, err2)
                    settled(self, function() catch_up(conn, b, err2, "epoch changed") end)
                end)
            end
            local reason
            if a and a.epoch ~= epoch then
                reason = "epoch changed"
            elseif a and offset + 1 < a.first then
                reason = "history trimmed"
            end
            settled(self, function() catch_up(conn, a, err, reason) end)
        end)
    end)
    return true
end

--- Streams kept in this process (tests and tools).
function _M._rings()
    return rings
end

--- Forgets every stream (a new runtime in tests). Internal.
function _M._reset()
    rings, asks, streams, unheard = {}, {}, {}, {}
end

return _M
