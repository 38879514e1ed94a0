-- moontide.jwt against tokens signed by the openssl command line (HS256,
-- RS256, ES256), with keys made for the spec.
local jwt = require "moontide.jwt"
local cjson = require "cjson"

local dir = assert(io.popen("mktemp -d /tmp/moontide-jwt-XXXXXX")):read("*l")

local function sh(cmd)
    local f = assert(io.popen(cmd .. " 2>/dev/null"))
    local out = f:read("*a")
    assert(f:close(), "failed: " .. cmd)
    return out
end

local function write(name, data)
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(data)
    f:close()
    return dir .. "/" .. name
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
        for k = 1, chars do
            local v = math.floor(n / 64 ^ (4 - k)) % 64
            out[#out + 1] = B64:sub(v + 1, v + 1)
        end
    end
    return table.concat(out)
end

local function key_pair(kind)
    local key = dir .. "/" .. kind .. ".key"
    if kind == "rsa" or kind == "rsa2" then
        sh(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s"):format(key))
    else
        sh(("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s"):format(key))
    end
    return key, sh(("openssl pkey -in %s -pubout"):format(key))
end

-- A DER ECDSA signature -> r || s, 32 bytes each (as JWS wants).
local function der_to_raw(der)
    local i = 3 -- SEQUENCE tag and length (short form for P-256)
    local parts = {}
    for k = 1, 2 do
        assert(der:byte(i) == 2) -- INTEGER
        local len = der:byte(i + 1)
        local v = der:sub(i + 2, i + 1 + len):gsub("^%z+", "")
        parts[k] = ("\0"):rep(32 - #v) .. v
        i = i + 2 + len
    end
    return parts[1] .. parts[2]
end

local function token(header, claims, signer)
    local signed = b64url(cjson.encode(header)) .. "." .. b64url(cjson.encode(claims))
    return signed .. "." .. b64url(signer and signer(signed) or "")
end

local function hmac(secret)
    return function(data)
        local f = write("data", data)
        return sh(("openssl dgst -sha256 -hmac '%s' -binary %s"):format(secret, f))
    end
end

local function signer(key, ec)
    return function(data)
        local f = write("data", data)
        local sig = sh(("openssl dgst -sha256 -sign %s -binary %s"):format(key, f))
        return ec and der_to_raw(sig) or sig
    end
end

describe("moontide.jwt", function()
    local NOW = 1700000000
    local rsa_key, rsa_pub, rsa2_pub, ec_key, ec_pub

    setup(function()
        rsa_key, rsa_pub = key_pair("rsa")
        local _
        _, rsa2_pub = key_pair("rsa2")
        ec_key, ec_pub = key_pair("ec")
    end)

    teardown(function()
        os.execute("rm -rf " .. dir)
    end)

    local function hs(claims, secret, header)
        return token(header or { alg = "HS256", typ = "JWT" }, claims, hmac(secret or "s3cret"))
    end

    it("accepts a valid HS256 token and returns its claims", function()
        local claims, err = jwt.verify(hs({ user_id = "u1", exp = NOW + 60 }), { secret = "s3cret",
            now = NOW })
        assert.is_nil(err)
        assert.same({ user_id = "u1", exp = NOW + 60 }, claims)
    end)

    it("refuses a wrong secret, a changed payload and a malformed token", function()
        assert.same({ nil, "bad signature" }, { jwt.verify(hs({ user_id = "u1" }, "other"),
            { secret = "s3cret", now = NOW }) })
        local t = hs({ user_id = "u1" })
        local h, _, s = t:match("^([^.]+)%.([^.]+)%.([^.]+)$")
        local forged = h .. "." .. b64url(cjson.encode({ user_id = "admin" })) .. "." .. s
        assert.same({ nil, "bad signature" }, { jwt.verify(forged, { secret = "s3cret", now = NOW }) })
        for _, bad in ipairs({ "", "a.b", "a.b.c.d", "!!.e30.x", "e30.e30" }) do
            local c, err = jwt.verify(bad, { secret = "s3cret", now = NOW })
            assert.is_nil(c, bad)
            assert.is_string(err)
        end
    end)

    it("refuses alg none, whatever the claims say", function()
        local t = token({ alg = "none" }, { user_id = "admin" })
        assert.same({ nil, "alg none not accepted" }, { jwt.verify(t, { secret = "s3cret", now = NOW }) })
        assert.same({ nil, "alg none not accepted" },
            { jwt.verify(t, { public_key = rsa_pub, now = NOW }) })
    end)

    it("checks exp and nbf against the clock, with leeway", function()
        local opts = { secret = "s3cret", now = NOW }
        assert.same({ nil, "token expired" }, { jwt.verify(hs({ exp = NOW }), opts) })
        assert.same({ nil, "token not yet valid" }, { jwt.verify(hs({ nbf = NOW + 10 }), opts) })
        assert.is_table(jwt.verify(hs({ exp = NOW - 5 }), { secret = "s3cret", now = NOW, leeway = 10 }))
        assert.is_table(jwt.verify(hs({ nbf = NOW + 5 }), { secret = "s3cret", now = NOW, leeway = 10 }))
        assert.same({ nil, "token expired" }, { jwt.verify(hs({ exp = "never" }), opts) })
    end)

    it("checks the audience (string or list) and the issuer", function()
        local t = hs({ aud = { "chat", "admin" }, iss = "auth.example" })
        assert.is_table(jwt.verify(t, { secret = "s3cret", audience = "chat", issuer = "auth.example",
            now = NOW }))
        assert.is_table(jwt.verify(t, { secret = "s3cret", audience = { "x", "admin" }, now = NOW }))
        assert.same({ nil, "wrong audience" },
            { jwt.verify(t, { secret = "s3cret", audience = "billing", now = NOW }) })
        assert.same({ nil, "wrong audience" },
            { jwt.verify(hs({ user_id = 1 }), { secret = "s3cret", audience = "chat", now = NOW }) })
        assert.same({ nil, "wrong issuer" },
            { jwt.verify(t, { secret = "s3cret", issuer = "evil", now = NOW }) })
    end)

    it("verifies RS256 with the public key, and refuses another key", function()
        local t = token({ alg = "RS256" }, { user_id = "r1", exp = NOW + 60 }, signer(rsa_key))
        assert.same({ user_id = "r1", exp = NOW + 60 }, jwt.verify(t, { public_key = rsa_pub, now = NOW }))
        assert.same({ nil, "bad signature" }, { jwt.verify(t, { public_key = rsa2_pub, now = NOW }) })
        assert.same({ nil, "alg RS256 not accepted" }, { jwt.verify(t, { secret = "s3cret" }) })
        assert.same({ nil, "alg RS256 needs an RSA key" }, { jwt.verify(t, { public_key = ec_pub }) })
    end)

    it("never takes a public key for an HS256 secret (algorithm confusion)", function()
        local t = hs({ user_id = "admin" }, rsa_pub) -- signed with the public key as a secret
        assert.same({ nil, "alg HS256 not accepted" }, { jwt.verify(t, { public_key = rsa_pub }) })
    end)

    it("verifies ES256 (r || s signatures) on a P-256 key", function()
        local t = token({ alg = "ES256" }, { user_id = "e1" }, signer(ec_key, true))
        assert.same({ user_id = "e1" }, jwt.verify(t, { public_key = ec_pub, now = NOW }))
        local h, p = t:match("^([^.]+)%.([^.]+)%.")
        local other = token({ alg = "ES256" }, { user_id = "e2" }, signer(ec_key, true))
        local spliced = h .. "." .. p .. "." .. other:match("[^.]+$")
        assert.same({ nil, "bad signature" }, { jwt.verify(spliced, { public_key = ec_pub, now = NOW }) })
        assert.same({ nil, "alg ES256 needs a P-256 key" }, { jwt.verify(t, { public_key = rsa_pub }) })
    end)

    it("signs HS256 tokens that verify, and that openssl agrees with", function()
        local t = jwt.sign({ sub = "u9", exp = NOW + 5 }, { secret = "k" })
        assert.same({ sub = "u9", exp = NOW + 5 }, jwt.verify(t, { secret = "k", now = NOW }))
        local signed, sig = t:match("^(.+)%.([^.]+)$")
        assert.equal(b64url(hmac("k")(signed)), sig)
    end)

    it("wants exactly one of secret and public_key", function()
        assert.has_error(function() jwt.verify("a.b.c", {}) end)
        assert.has_error(function() jwt.verify("a.b.c", { secret = "x", public_key = rsa_pub }) end)
    end)

    it("finds the token in the Authorization header, then the query, then a cookie", function()
        local function request(headers, args, cookies)
            return { headers = headers, args = args or {}, cookies = cookies or {} }
        end
        local opts = { query = "token", cookie = "session" }
        assert.equal("h", jwt.from_request(request({ authorization = "Bearer h" }, { token = "q" }), opts))
        assert.equal("q", jwt.from_request(request({}, { token = "q" }, { session = "c" }), opts))
        assert.equal("c", jwt.from_request(request({}, {}, { session = "c" }), opts))
        assert.is_nil(jwt.from_request(request({ authorization = "Basic eDp5" }), {}))
    end)
end)
