-- The contract, on the fake: moontide.testing's core must do what the
-- server's does (spec/fixtures/contract/cases.lua; the same cases run on a
-- real server in spec/integration/19-contract_spec.lua).
local testing = require "moontide.testing"
local contract = require "spec.support.contract"

local DIR = contract.DIR

describe("the contract between the library and the core, on the fake", function()
    setup(function()
        package.preload.routes = assert(loadfile(DIR .. "routes.lua"))
        package.preload["handlers.contract"] = assert(loadfile(DIR .. "handler.lua"))
        package.preload.contract_cases = assert(loadfile(DIR .. "cases.lua"))
    end)

    teardown(function()
        for _, name in ipairs({ "routes", "handlers.contract", "contract_cases" }) do
            package.preload[name], package.loaded[name] = nil, nil
        end
    end)

    it("gives every case its expected result", function()
        local rt = testing.new()
        local runner = assert(rt:connect("/ws/contract/runner/"))
        assert(rt:connect("/ws/contract/victim/"))
        runner:send("run")
        rt:assert_no_errors()
        local frames = runner:drain() -- a group case sends "x" first
        local results = frames[#frames]
        contract.assert_results(results)
    end)
end)
