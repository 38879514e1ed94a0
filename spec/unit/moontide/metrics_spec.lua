-- moontide.metrics from handlers, against the testing runtime.
local testing = require "moontide.testing"
local moontide = require "moontide"

describe("moontide.metrics", function()
    local rt

    before_each(function()
        rt = testing.new()
    end)

    it("counts with label handles", function()
        local c = moontide.metrics.counter("chat_words_total", "Words said", { "room" })
        local lobby = c:labels("lobby")
        lobby:inc()
        lobby:inc(4)
        c:labels("other"):inc()
        assert.equal(5, rt:metric("chat_words_total", "lobby"))
        assert.equal(1, rt:metric("chat_words_total", "other"))
        assert.equal(lobby, c:labels("lobby")) -- resolved once, then cached
    end)

    it("sets gauges and observes histograms", function()
        local g = moontide.metrics.gauge("queue_depth", "Depth")
        g:set(10)
        g:dec(3)
        g:inc()
        assert.equal(8, g:get())
        local h = moontide.metrics.histogram("work_seconds", "Work", {}, { 0.1, 1 })
        h:observe(0.5)
        h:observe(2)
        local sum, count = rt:metric("work_seconds")
        assert.equal(2.5, sum)
        assert.equal(2, count)
    end)

    it("returns the existing family when defined again the same way", function()
        local a = moontide.metrics.counter("again_total", "Again", { "k" })
        a:labels("x"):inc()
        local b = moontide.metrics.counter("again_total", "Again", { "k" })
        b:labels("x"):inc()
        assert.equal(2, rt:metric("again_total", "x"))
    end)

    it("raises on a conflicting redefinition and on misuse", function()
        moontide.metrics.counter("conflict_total", "One", { "a" })
        assert.has_error(function()
            moontide.metrics.counter("conflict_total", "Other help", { "a" })
        end)
        assert.has_error(function() moontide.metrics.counter("no_suffix", "x") end)
        local c = moontide.metrics.counter("misuse_total", "x", { "a" })
        assert.has_error(function() c:labels() end)           -- wrong arity
        assert.has_error(function() c:inc() end)              -- has labels
        assert.has_error(function() c:labels("v"):inc(-1) end) -- counters only go up
        assert.has_error(function() c:labels("v"):set(3) end)  -- not a gauge
        assert.has_error(function() c:labels({}) end)          -- not a string
    end)
end)
