-- Files under static_dir over plain HTTP: types, ETag / Last-Modified and
-- 304s, HEAD, index.html for directories (never a listing), the size cap,
-- and no way out of the root: "..", encoded variants, dot-files, symlinks.
local server = require "spec.support.server"
local client = require "spec.support.client"
local prom = require "spec.support.prom"

local function write(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

-- The raw answer to a request line sent as is (no client normalises it).
local function raw_get(srv, target)
    local out = client.raw(srv.port, ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        :format(target), 2)
    return tonumber(out:match("^HTTP/1.1 (%d+)")), out
end

describe("static files #integration", function()
    local srv, root, outside

    lazy_setup(function()
        root = assert(io.popen("mktemp -d /tmp/moontide-static-XXXXXX")):read("*l")
        outside = assert(io.popen("mktemp -d /tmp/moontide-outside-XXXXXX")):read("*l")
        write(root .. "/index.html", "<!doctype html><title>chat</title>")
        write(root .. "/app.js", "console.log('hi')")
        write(root .. "/data.bin", "\0\1\2")
        write(root .. "/big.txt", ("x"):rep(2048))
        write(root .. "/.env", "SECRET=1")
        os.execute("mkdir -p " .. root .. "/sub " .. root .. "/empty")
        write(root .. "/sub/index.html", "sub page")
        write(outside .. "/secret.txt", "outside the root")
        os.execute(("ln -s %s/secret.txt %s/leak.txt"):format(outside, root))
        os.execute(("ln -s %s %s/leakdir"):format(outside, root))
        os.execute(("ln -s %s/app.js %s/alias.js"):format(root, root))
        srv = server.start({ config = { static_dir = root, static_max_bytes = "1K" } })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
        os.execute("rm -rf " .. root .. " " .. outside)
    end)

    it("serves / as index.html, with a type, an ETag and Last-Modified", function()
        local res = client.http(srv:url("/"))
        assert.equal(200, res.status)
        assert.equal("<!doctype html><title>chat</title>", res.body)
        assert.equal("text/html; charset=utf-8", res.headers["content-type"])
        assert.equal("no-cache", res.headers["cache-control"])
        assert.truthy(res.headers["etag"]:match('^"%x+%-%x+"$'))
        assert.truthy(res.headers["last-modified"]:match("GMT$"))
        local function type_of(path)
            return client.http(srv:url(path)).headers["content-type"]
        end
        assert.equal("text/javascript; charset=utf-8", type_of("/app.js"))
        assert.equal("application/octet-stream", type_of("/data.bin"))
    end)

    it("answers 304 to a matching If-None-Match or a later If-Modified-Since", function()
        local first = client.http(srv:url("/app.js"))
        local res = client.http(srv:url("/app.js"),
            { headers = { ["if-none-match"] = first.headers.etag } })
        assert.same({ 304, "" }, { res.status, res.body })
        assert.equal(first.headers.etag, res.headers.etag)
        res = client.http(srv:url("/app.js"),
            { headers = { ["if-modified-since"] = first.headers["last-modified"] } })
        assert.equal(304, res.status)
        res = client.http(srv:url("/app.js"), { headers = { ["if-none-match"] = '"other"' } })
        assert.equal(200, res.status)
    end)

    it("answers HEAD with the headers alone", function()
        local res = client.http(srv:url("/app.js"), { method = "HEAD" })
        assert.equal(200, res.status)
        assert.equal("17", res.headers["content-length"])
        assert.is_nil(res.body)
    end)

    it("serves a directory's index.html, redirects to its slash, never lists one", function()
        assert.equal("sub page", client.http(srv:url("/sub/")).body)
        local status, out = raw_get(srv, "/sub")
        assert.equal(301, status)
        assert.truthy(out:lower():find("location: /sub/", 1, true))
        assert.equal(404, client.http(srv:url("/empty/")).status)
        assert.equal(404, client.http(srv:url("/nothing.html")).status)
    end)

    it("refuses files over static_max_bytes", function()
        local res = client.http(srv:url("/big.txt"))
        assert.same({ 403, "file_too_large" }, { res.status, res.json.error })
    end)

    it("never leaves the root: dot segments, encoded ones, dot-files, symlinks out", function()
        for _, target in ipairs({ "/../etc/passwd", "/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd",
            "/sub/../../etc/passwd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/.env", "/%2eenv",
            "/sub/..%5c..%5cetc%5cpasswd", "/leak.txt", "/leakdir/secret.txt", "/sub%00.html" }) do
            local status, out = raw_get(srv, target)
            -- refused, or the connection dropped unanswered (lws, for a NUL)
            assert.is_true(status == 404 or status == 400 or status == 403 or out == "",
                target .. ": " .. out)
            assert.is_nil(out:find("root:", 1, true), target)
            assert.is_nil(out:find("outside the root", 1, true), target)
            assert.is_nil(out:find("SECRET", 1, true), target)
        end
        assert.equal(200, client.http(srv:url("/alias.js")).status) -- a symlink inside is fine
    end)

    it("counts files under one endpoint label, and leaves the other endpoints alone", function()
        client.http(srv:url("/"))
        local m = prom.parse(client.http(srv:url("/metrics")).body)
        assert.is_true(prom.value(m, "http_requests_total",
            { method = "GET", endpoint = "static", status = "200" }) >= 1)
        assert.equal(200, client.http(srv:url("/healthz")).status)
        assert.equal(426, client.http(srv:url("/ws/chat/x/")).status)
        assert.equal(404, client.http(srv:url("/"), { method = "POST" }).status)
    end)

    it("is off when static_dir is empty", function()
        local off = server.start({ config = { static_dir = "" } })
        finally(function() off:stop() end)
        assert.equal(404, client.http(off:url("/")).status)
    end)
end)
