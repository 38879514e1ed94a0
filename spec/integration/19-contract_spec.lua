-- The contract, on the server: the library over the real core gives every
-- case of spec/fixtures/contract/cases.lua its expected result, as
-- spec/unit/contract_spec.lua checks moontide.testing's fake does.
local server = require "spec.support.server"
local client = require "spec.support.client"
local util = require "spec.support.util"
local contract = require "spec.support.contract"

local DIR = contract.DIR

describe("the contract between the library and the core, on the server", function()
    local srv

    setup(function()
        srv = server.start({ files = {
            ["routes.lua"] = util.read(DIR .. "routes.lua"),
            ["handlers/contract.lua"] = util.read(DIR .. "handler.lua"),
            ["contract_cases.lua"] = util.read(DIR .. "cases.lua"),
        } })
    end)

    teardown(function()
        srv:stop()
    end)

    it("gives every case its expected result", function()
        local runner = assert(client.ws(srv:ws_url("/ws/contract/runner/")))
        local victim = assert(client.ws(srv:ws_url("/ws/contract/victim/")))
        runner:send("run")
        assert.equal("x", (runner:receive())) -- the group case's delivery
        -- the released held delivery (offset 4)
        assert.equal('{"type":"message","offset":4,"epoch":"e"}', (runner:receive()))
        assert.equal('{"type":"presence"}', (runner:receive())) -- no offset: released
        -- another group's delivery, never held
        assert.equal('{"type":"message","offset":1,"epoch":"e"}', (runner:receive()))
        local results = runner:receive_json()
        contract.assert_results(results)
        local code = victim:expect_close()
        assert.equal(4001, code)
        assert.same({}, srv:error_lines())
    end)
end)
