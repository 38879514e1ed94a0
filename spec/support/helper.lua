--- spec.support.helper: loaded by busted before the specs (.busted).
-- When a spec file ends, passed or failed, every process the harness
-- started and that is still running is stopped by its PID.
local busted = require "busted"
local server = require "spec.support.server"

busted.subscribe({ "file", "end" }, function()
    server.cleanup()
    return nil, true
end)
