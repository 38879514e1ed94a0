-- systemd's notification protocol, with a datagram socket of the spec's
-- own as NOTIFY_SOCKET: READY=1 once serving, WATCHDOG=1 every half of
-- WATCHDOG_USEC, RELOADING=1 then READY=1 around a SIGHUP reload,
-- STOPPING=1 at the drain; from the one process systemd started (with
-- workers, the supervisor only).
local server = require "spec.support.server"
local socket = require "posix.sys.socket"
local fcntl = require "posix.fcntl"
local signal = require "posix.signal"
local unistd = require "posix.unistd"

-- A bound datagram socket at a fresh path; :next(timeout) -> a datagram.
local function listener()
    local dir = assert(io.popen("mktemp -d /tmp/moontide-notify-XXXXXX")):read("*l")
    local path = dir .. "/notify.sock"
    local fd = assert(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0))
    assert(socket.bind(fd, { family = socket.AF_UNIX, path = path }))
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.O_NONBLOCK)
    local l = { path = path, got = {} }
    function l.next(_, timeout, what)
        return server.eventually(function()
            local data = socket.recv(fd, 4096)
            if data then
                l.got[#l.got + 1] = data
                return data
            end
        end, timeout or 5, what or "a notification")
    end
    -- Datagrams until one contains want; returns them all.
    function l.until_(_, want, timeout)
        local seen = {}
        repeat
            local d = l:next(timeout, want)
            seen[#seen + 1] = d
        until d:find(want, 1, true)
        return seen
    end
    function l.close()
        unistd.close(fd)
        os.execute("rm -rf " .. dir)
    end
    return l
end

describe("systemd notify #integration", function()
    it("tells READY, the watchdog, RELOADING and STOPPING", function()
        local l = listener()
        finally(function() l:close() end)
        local srv = server.start({ env = { NOTIFY_SOCKET = l.path, WATCHDOG_USEC = "400000" } })
        local first = l:next(5, "READY=1")
        assert.truthy(first:find("READY=1", 1, true), first)
        assert.truthy(first:find("STATUS=serving", 1, true))
        -- pings every 200 ms from the loop
        local t0 = server.now()
        l:until_("WATCHDOG=1", 2)
        l:until_("WATCHDOG=1", 2)
        assert.is_true(server.now() - t0 < 1.5)
        signal.kill(srv.pid, signal.SIGHUP)
        l:until_("RELOADING=1", 5)
        local after = l:until_("READY=1", 5)
        assert.truthy(after[#after]:find("scripts reloaded", 1, true))
        assert.equal(0, srv:stop())
        l:until_("STOPPING=1", 5)
    end)

    it("leaves it to the supervisor when there are workers", function()
        local l = listener()
        finally(function() l:close() end)
        local srv = server.start({ config = { workers = 2 }, env = { NOTIFY_SOCKET = l.path } })
        l:until_("READY=1", 10)
        signal.kill(srv.pid, signal.SIGHUP)
        l:until_("RELOADING=1", 5)
        l:until_("READY=1", 10)
        assert.equal(0, srv:stop())
        l:until_("STOPPING=1", 5)
        local ready = 0
        for _, d in ipairs(l.got) do
            ready = ready + (d:find("READY=1", 1, true) and 1 or 0)
        end
        assert.equal(2, ready) -- at start and after the reload: never one per worker
    end)
end)
