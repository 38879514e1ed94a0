-- The chat page in a real browser (headless Chromium over the DevTools
-- protocol): two pages chat and see each other in the member list; the
-- server is drained and started again (Redis keeps the rooms' history):
-- the pages reconnect and resume, and what was typed meanwhile arrives
-- once; the status page shows the connections; compression
-- (permessage-deflate) is negotiated and a long message crosses intact. A
-- screenshot of the chat page is kept in build/artifacts/chat.png.
local server = require "spec.support.server"
local client = require "spec.support.client"
local redis = require "spec.support.redis"
local browser = require "spec.support.browser"

local ARTIFACT = server.ROOT .. "/build/artifacts/chat.png"

-- The messages a page shows, in order.
local MESSAGES = [[Array.from(document.querySelectorAll("#messages li:not(.note)"),
    (li) => li.lastChild.textContent)]]

local function say(page, text)
    page:eval(([[(() => { const t = document.getElementById("text");
        t.value = %q; document.getElementById("say").requestSubmit(); return true; })()]])
        :format(text))
end

describe("the chat page in Chromium #integration #browser", function()
    local r, srv, b, port, config, a, c

    lazy_setup(function()
        r = redis.start()
        port = server.free_port()
        config = { port = port, redis_url = r.url, static_dir = server.ROOT .. "/public",
            drain_reconnect_jitter = 0.2, permessage_deflate = true, log_level = "INFO" }
        srv = server.start({ config = config })
        b = browser.start()
        local page = ("http://127.0.0.1:%d/#browser"):format(port)
        a, c = b:page(page), b:page(page)
    end)

    lazy_teardown(function()
        if b then
            b:stop()
        end
        if srv then
            srv:stop()
        end
        r:stop()
    end)

    it("two pages chat, and each sees the other in the member list", function()
        for _, p in ipairs({ a, c }) do
            p:wait('window.moontideChat && window.moontideChat().state === "open"', 15, "open")
        end
        say(a, "hello from A")
        a:wait(MESSAGES .. ".length === 1", 10, "A's own message") -- in order
        say(c, "hello from C")
        for _, p in ipairs({ a, c }) do
            p:wait(MESSAGES .. ".length === 2", 10, "both messages")
            assert.same({ "hello from A", "hello from C" }, p:eval(MESSAGES))
            -- a message from someone not yet listed brings the list up to date
            p:wait('document.querySelectorAll("#members li").length === 2', 10, "two members")
        end
        assert.equal("in #browser", a:eval('document.getElementById("state").textContent'))
        a:screenshot(ARTIFACT)
        local f = assert(io.open(ARTIFACT, "rb"))
        assert.equal("\137PNG", f:read(4))
        f:close()
    end)

    it("rides out a drained and restarted server: reconnects, resumes, loses nothing", function()
        assert.equal(0, srv:stop()) -- SIGTERM: a drain, every page told when to come back
        for _, p in ipairs({ a, c }) do
            p:wait('window.moontideChat().state !== "open"', 10, "the page noticed")
        end
        say(a, "typed while the server was away")
        srv = server.start({ config = config })
        for _, p in ipairs({ a, c }) do
            p:wait('window.moontideChat().state === "open"', 20, "open again")
            p:wait(MESSAGES .. ".length === 3", 10, "the message typed meanwhile")
            assert.same({ "hello from A", "hello from C", "typed while the server was away" },
                p:eval(MESSAGES))
            -- resumed from the same epoch: nothing missed, nothing repeated
            assert.truthy(p:eval([[Array.from(document.querySelectorAll("#messages .note"),
                (li) => li.textContent).join("|")]]):find("reconnected: %d+ missed"))
        end
        say(c, "after the restart")
        a:wait(MESSAGES .. ".length === 4", 10, "live again")
    end)

    it("negotiates permessage-deflate, and a long message crosses intact", function()
        local answers = b:events("Network.webSocketHandshakeResponseReceived")
        assert.is_true(#answers >= 2)
        for _, e in ipairs(answers) do
            local ext
            for k, v in pairs(e.params.response.headers) do
                if k:lower() == "sec-websocket-extensions" then
                    ext = v
                end
            end
            assert.equal("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                ext)
        end
        local long = ("a long message that compresses well; "):rep(60) .. "the end"
        local before = a:eval(MESSAGES .. ".length")
        say(c, long)
        a:wait(MESSAGES .. ".length === " .. (before + 1), 10, "the long message")
        assert.equal(long, a:eval(MESSAGES)[before + 1])
    end)

    it("shows the server's figures on the status page", function()
        local s = b:page(("http://127.0.0.1:%d/status.html"):format(port))
        local count = s:wait([[(() => {
            const dt = Array.from(document.querySelectorAll("dt"));
            const i = dt.findIndex((d) => d.textContent === "connections");
            return i >= 0 && Number(document.querySelectorAll("dd")[i].textContent); })()]],
            10, "the connection count")
        assert.equal(2, count)
        assert.equal(200, client.http(srv:url("/status.html")).status)
    end)
end)
