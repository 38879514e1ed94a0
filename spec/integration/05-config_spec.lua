-- Configuration errors stop the server before it listens, clearly.
local server = require "spec.support.server"
local util = require "spec.support.util"

-- Runs the binary with args (quoted) and env; returns status and output.
local function run(args, env)
    local cmd = {}
    for k, v in pairs(env or {}) do
        cmd[#cmd + 1] = k .. "='" .. v .. "'"
    end
    cmd[#cmd + 1] = server.BINARY
    for _, a in ipairs(args) do
        cmd[#cmd + 1] = "'" .. a .. "'"
    end
    return util.run(table.concat(cmd, " "))
end

describe("configuration #integration", function()
    it("rejects a bad port from the environment with exit 2 and one JSON line", function()
        local status, out = run({ "--config", "spec/fixtures/empty_config.lua" },
            { MOONTIDE_PORT = "eighty" })
        assert.equal(2, status)
        local lines = {}
        for l in out:gmatch("[^\n]+") do
            lines[#lines + 1] = l
        end
        assert.equal(1, #lines)
        local line = require("cjson").decode(lines[1])
        assert.equal("CRITICAL", line.level)
        assert.matches("port", line.message)
        assert.matches("MOONTIDE_PORT", line.message)
        assert.matches("0 to 65535", line.message)
    end)

    it("rejects a bad flag value and an unknown flag", function()
        local status, out = run({ "--color", "purple" })
        assert.equal(2, status)
        assert.matches("blue or green", out)
        status, out = run({ "--colour", "blue" })
        assert.equal(2, status)
        assert.matches("unknown argument", out)
    end)

    it("rejects a config file with an unknown key", function()
        local srv = server.start({ config = { prot = 80 }, wait = false })
        assert.equal(2, srv:wait_exit(10))
        assert.matches('unknown key \\"prot\\"', srv:log_text())
        srv:stop()
    end)

    it("exits 1 with the error when the scripts do not load", function()
        local srv = server.start({ files = { ["routes.lua"] = "return {{ path = " }, wait = false })
        assert.equal(1, srv:wait_exit(10))
        local line = srv:logs()[1]
        assert.equal("scripts failed to load", line.message)
        assert.matches("routes%.lua", line.error)
        srv:stop()
    end)

    it("prints --help and --version", function()
        local status, out = run({ "--help" })
        assert.equal(0, status)
        assert.matches("usage: moontide", out)
        status, out = run({ "--version" })
        assert.equal(0, status)
        assert.matches("^moontide %d+%.%d+%.%d+", out)
    end)

    it("takes settings from MOONTIDE_* over the config file", function()
        local srv = server.start({ env = { MOONTIDE_COLOR = "green" } })
        assert.equal("green", srv:logs()[1].color)
        assert.equal(0, srv:stop())
    end)
end)
