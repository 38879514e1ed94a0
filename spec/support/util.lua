--- spec.support.util: small helpers the specs share.
--
--   util.read("spec/fixtures/x.lua")   -> the file's text (raises if absent)
--   util.run("promtool check ...")     -> exit status, combined output
local _M = {}

function _M.read(path)
    local f = assert(io.open(path))
    local text = f:read("*a")
    f:close()
    return text
end

--- Runs a shell command; returns its exit status and stdout+stderr.
function _M.run(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    return tonumber(out:match("exit=(%d+)\n$")), (out:gsub("exit=%d+\n$", ""))
end

return _M
