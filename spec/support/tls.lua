--- spec.support.tls: a certificate authority and server certificates made
-- with the openssl command line, for specs of the TLS port.
--
--   local tls = require "spec.support.tls"
--   local ca = tls.ca()                          -- ca.dir, ca.pem (PEM text), ca.path
--   local c = ca:issue("renewed", { days = 5 })  -- c.cert, c.key (paths), c.subject
--   ca:remove()
local _M = {}

local CA = {}
CA.__index = CA

local function sh(cmd)
    local f = assert(io.popen(cmd .. " 2>&1"))
    local out = f:read("*a")
    assert(f:close(), cmd .. ": " .. out)
    return out
end

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

--- A new CA (P-256) in a temporary directory.
function _M.ca()
    local dir = sh("mktemp -d /tmp/moontide-tls-XXXXXX"):gsub("%s+$", "")
    local self = setmetatable({ dir = dir, path = dir .. "/ca.pem", key = dir .. "/ca.key" }, CA)
    sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s"
        .. " -out %s -days 30 -subj '/CN=moontide spec CA'"):format(self.key, self.path))
    self.pem = read(self.path)
    local ext = assert(io.open(dir .. "/ext.cnf", "w"))
    ext:write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ext:close()
    return self
end

--- A certificate for localhost and 127.0.0.1, signed by the CA: name
-- becomes its O (to tell certificates apart); opts.days (default 20).
function CA:issue(name, opts)
    opts = opts or {}
    local base = self.dir .. "/" .. name
    sh(("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key"
        .. " -out %s.csr -subj '/O=%s/CN=localhost'"):format(base, base, name))
    sh(("openssl x509 -req -in %s.csr -CA %s -CAkey %s -CAcreateserial -out %s.pem -days %d"
        .. " -extfile %s/ext.cnf"):format(base, self.path, self.key, base, opts.days or 20, self.dir))
    return { cert = base .. ".pem", key = base .. ".key", subject = "CN=localhost,O=" .. name }
end

--- The subject (RFC 2253) of the certificate a TLS server on port
-- presents, verified against the CA; nil when the handshake fails.
function CA:served_subject(port)
    local out = sh(("echo | openssl s_client -connect 127.0.0.1:%d -CAfile %s -verify_return_error"
        .. " 2>/dev/null | openssl x509 -noout -subject -nameopt RFC2253 || true"):format(port,
        self.path))
    return out:match("subject=(%S+)")
end

--- The ALPN protocol a TLS server on port picks from offered.
function CA:alpn(port, offered)
    local out = sh(("echo | openssl s_client -connect 127.0.0.1:%d -CAfile %s -alpn %s 2>/dev/null"
        .. " || true"):format(port, self.path, offered))
    return out:match("ALPN protocol: (%S+)")
end

--- Copies a certificate pair over the files at cert and key, each by
-- rename (as certbot and most tools replace files).
function _M.install(pair, cert, key)
    for _, p in ipairs({ { pair.cert, cert }, { pair.key, key } }) do
        sh(("cp %s %s.new && mv %s.new %s"):format(p[1], p[2], p[2], p[2]))
    end
end

function CA:remove()
    sh("rm -rf " .. self.dir)
end

return _M
