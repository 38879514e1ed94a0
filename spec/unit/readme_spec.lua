-- README.md's examples: a newcomer pastes them, so they must pass the
-- project's own luacheck and, for the handler and its spec, actually run.
local util = require "spec.support.util"

local ROOT = os.getenv("MOONTIDE_ROOT") or "."

-- Every ```lua block of the README whose first line names a file
-- ("-- lua/handlers/echo.lua"), as path -> text.
local function example_files()
    local text = util.read(ROOT .. "/README.md")
    local files = {}
    for block in text:gmatch("```lua\n(.-)```") do
        local path = block:match("^%-%- ([%w_/%.]+%.lua)\n")
        if path then
            files[path] = block
        end
    end
    return files
end

describe("README.md", function()
    local dir, files

    setup(function()
        files = example_files()
        dir = assert(io.popen("mktemp -d /tmp/moontide-readme-XXXXXX")):read("*l")
        for path, text in pairs(files) do
            assert(util.run(("mkdir -p '%s/%s'"):format(dir, path:match("^(.*)/"))) == 0)
            local out = assert(io.open(dir .. "/" .. path, "w"))
            out:write(text)
            out:close()
        end
    end)

    teardown(function()
        os.execute("rm -rf '" .. dir .. "'")
    end)

    it("shows the routes, a handler and its spec as whole files", function()
        assert.truthy(files["lua/routes.lua"])
        assert.truthy(files["lua/handlers/echo.lua"])
        assert.truthy(files["spec/unit/handlers/echo_spec.lua"])
    end)

    it("has examples that pass the project's luacheck", function()
        local root = assert(io.popen("cd '" .. ROOT .. "' && pwd")):read("*l")
        local status, out = util.run(("cd '%s' && luacheck --config '%s/.luacheckrc' "
            .. "--formatter plain lua spec"):format(dir, root))
        assert(status == 0, "luacheck on the README's examples:\n" .. out)
    end)

    it("has a handler spec that passes against the README's handler", function()
        local root = assert(io.popen("cd '" .. ROOT .. "' && pwd")):read("*l")
        local status, out = util.run(("cd '%s' && luajit /usr/bin/busted -o plainTerminal "
            .. "--lpath='lua/?.lua;%s/lua/?.lua;%s/lua/?/init.lua' spec/unit/handlers/echo_spec.lua")
            :format(dir, root, root))
        assert(status == 0 and out:find("1 success / 0 failures / 0 errors"), out)
    end)
end)
