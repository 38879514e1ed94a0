--- spec.support.browser: headless Chromium (Debian's chromium) driven over
-- the DevTools protocol, on a WebSocket of its own: no WebDriver needed.
--
--   local browser = require "spec.support.browser"
--   local b = browser.start()               -- chromium on a free port, by PID
--   local p = b:page("http://127.0.0.1:8000/")
--   p:eval("document.title")                -- a JavaScript expression's value
--   p:wait("window.ready === true", 10, "the page ready")
--   p:screenshot("build/artifacts/chat.png")
--   b:events("Network.responseReceived")    -- events seen so far, by method
--   b:stop()
local cjson = require "cjson"
local websocket = require "http.websocket"
local server = require "spec.support.server"

local _M = {}

local Browser = {}
Browser.__index = Browser
local Page = {}
Page.__index = Page

--- Starts chromium headless with its DevTools on a free loopback port.
function _M.start()
    local dir = assert(io.popen("mktemp -d /tmp/moontide-chromium-XXXXXX")):read("*l")
    local log = dir .. "/chromium.log"
    local pid = server.spawn("chromium", { "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
        "--user-data-dir=" .. dir .. "/profile", "about:blank" }, log)
    local b = setmetatable({ proc = server.adopt(pid, dir, log), next_id = 0, seen = {} }, Browser)
    local url = server.eventually(function()
        local f = io.open(log)
        local text = f and f:read("*a") or ""
        if f then
            f:close()
        end
        return text:match("DevTools listening on (ws://%S+)")
    end, 30, "chromium's DevTools endpoint")
    b.ws = websocket.new_from_uri(url)
    assert(b.ws:connect(10))
    return b
end

--- Sends a DevTools command (to a page's session, if given) and returns its
-- result; events that come meanwhile are kept for :events().
function Browser:call(method, params, session)
    self.next_id = self.next_id + 1
    local id = self.next_id
    local msg = { id = id, method = method, params = params or {}, sessionId = session }
    assert(self.ws:send(cjson.encode(msg)))
    while true do
        local data, err = self.ws:receive(30)
        if not data then
            error(method .. ": no answer from chromium: " .. tostring(err), 2)
        end
        local m = cjson.decode(data)
        if m.id == id then
            if m.error then
                error(method .. ": " .. tostring(m.error.message), 2)
            end
            return m.result
        elseif m.method then
            self.seen[#self.seen + 1] = m
        end
    end
end

--- Events received so far whose method is method.
function Browser:events(method)
    local out = {}
    for _, e in ipairs(self.seen) do
        if e.method == method then
            out[#out + 1] = e
        end
    end
    return out
end

--- Opens url in a new tab (900 x 700) and returns the page.
function Browser:page(url)
    local target = self:call("Target.createTarget", { url = "about:blank" })
    local s = self:call("Target.attachToTarget", { targetId = target.targetId, flatten = true })
    local p = setmetatable({ browser = self, session = s.sessionId }, Page)
    self:call("Emulation.setDeviceMetricsOverride", { width = 900, height = 700,
        deviceScaleFactor = 1, mobile = false }, p.session)
    self:call("Network.enable", {}, p.session)
    self:call("Page.enable", {}, p.session)
    self:call("Page.navigate", { url = url }, p.session)
    return p
end

--- The value of a JavaScript expression in the page (promises awaited).
function Page:eval(expression)
    local r = self.browser:call("Runtime.evaluate", { expression = expression,
        returnByValue = true, awaitPromise = true }, self.session)
    if r.exceptionDetails then
        error("in the page: " .. tostring(r.exceptionDetails.exception
            and r.exceptionDetails.exception.description or r.exceptionDetails.text), 2)
    end
    return r.result.value
end

--- Polls an expression until it is truthy; returns its value.
function Page:wait(expression, timeout, what)
    return server.eventually(function()
        local ok, v = pcall(self.eval, self, expression)
        return ok and v or nil
    end, timeout or 10, what or expression)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function unbase64(s)
    local index = {}
    for i = 1, 64 do
        index[B64:byte(i)] = i - 1
    end
    local out, bits, n = {}, 0, 0
    for i = 1, #s do
        local v = index[s:byte(i)]
        if v then
            bits, n = bits * 64 + v, n + 6
            if n >= 8 then
                n = n - 8
                local byte = math.floor(bits / 2 ^ n)
                out[#out + 1] = string.char(byte)
                bits = bits - byte * 2 ^ n
            end
        end
    end
    return table.concat(out)
end

--- Writes a PNG of the page to path (its directory is made).
function Page:screenshot(path)
    local r = self.browser:call("Page.captureScreenshot", { format = "png" }, self.session)
    os.execute("mkdir -p " .. path:match("^(.*)/[^/]*$"))
    local f = assert(io.open(path, "wb"))
    f:write(unbase64(r.data))
    f:close()
end

function Browser:stop()
    pcall(self.ws.close, self.ws)
    -- Chromium's helpers may still write to the profile for a moment after
    -- the browser process has exited: remove it once they are done.
    local dir = self.proc.dir
    self.proc.dir = nil
    self.proc:stop()
    if dir and not os.getenv("MOONTIDE_KEEP") then
        server.eventually(function()
            return os.execute("rm -rf '" .. dir .. "' 2>/dev/null") == 0
        end, 10, "chromium's profile to be removable")
    end
end

return _M
