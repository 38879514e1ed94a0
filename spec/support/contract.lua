--- The contract's cases (spec/fixtures/contract/) and the one check both
-- sides of it make: results, as the contract handler sends them, are the
-- cases' expected results, in order.
local cjson = require "cjson"
local assert = require "luassert"

local _M = {}

_M.DIR = "spec/fixtures/contract/"
_M.cases = dofile(_M.DIR .. "cases.lua")

function _M.assert_results(results)
    assert.equal(#_M.cases, #results)
    for i, case in ipairs(_M.cases) do
        assert.equal(case.name, results[i].name)
        assert.equal(cjson.encode(case.expect), cjson.encode(results[i].result),
            "case: " .. case.name)
    end
end

return _M
