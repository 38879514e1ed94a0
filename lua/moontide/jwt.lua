--- moontide.jwt: JSON Web Tokens (RFC 7519) checked with OpenSSL, which the
-- server already links (through libwebsockets); nothing cryptographic is
-- written here.
--
--   local jwt = require "moontide.jwt"
--   local claims, err = jwt.verify(token, { secret = "..." })     -- HS256
--   local claims, err = jwt.verify(token, { public_key = pem })   -- RS256 or ES256
--   local token = jwt.from_request(request, { query = "token", cookie = "session" })
--   local token = jwt.sign({ sub = "u1", exp = moontide.now() + 3600 }, { secret = "..." })
--
-- verify(token, opts) returns the claims table, or nil and why. opts:
--   secret      the HS256 key; public_key  a PEM public key (RSA: RS256,
--               P-256: ES256). Exactly one of the two.
--   audience    a string or a list: the token's aud must name one of them
--   issuer      the token's iss must be this
--   leeway      seconds of clock skew allowed on exp and nbf (default 0)
--   now         the time to check against (default moontide.now())
-- Refused always: alg "none", an alg the key does not fit (so a public key
-- is never taken for an HS256 secret), a bad signature (HMACs compared in
-- constant time), exp passed, nbf to come, a malformed token.
--
-- from_request(request, opts) finds a token in authorize's request: the
-- Authorization header ("Bearer <token>") first, then the query parameter
-- opts.query, then the cookie opts.cookie (reading cookies makes the
-- route refuse foreign Origins: see moontide.host).
local ffi = require "ffi"
local moontide = require "moontide"

local _M = {}

pcall(ffi.cdef, [[
typedef struct evp_md_st EVP_MD;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct bio_st BIO;
typedef struct ECDSA_SIG_st ECDSA_SIG;
typedef struct bignum_st BIGNUM;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *md, const void *key, int key_len, const unsigned char *d,
                    size_t n, unsigned char *out, unsigned int *out_len);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
int EVP_DecodeBlock(unsigned char *t, const unsigned char *f, int n);
int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n);
BIO *BIO_new_mem_buf(const void *buf, int len);
int BIO_free(BIO *a);
EVP_PKEY *PEM_read_bio_PUBKEY(BIO *bp, EVP_PKEY **x, void *cb, void *u);
void EVP_PKEY_free(EVP_PKEY *pkey);
int EVP_PKEY_get_base_id(const EVP_PKEY *pkey);
int EVP_PKEY_get_bits(const EVP_PKEY *pkey);
EVP_MD_CTX *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, void **pctx, const EVP_MD *type, void *e,
                         EVP_PKEY *pkey);
int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen,
                     const unsigned char *tbs, size_t tbslen);
ECDSA_SIG *ECDSA_SIG_new(void);
void ECDSA_SIG_free(ECDSA_SIG *sig);
int ECDSA_SIG_set0(ECDSA_SIG *sig, BIGNUM *r, BIGNUM *s);
BIGNUM *BN_bin2bn(const unsigned char *s, int len, BIGNUM *ret);
void BN_free(BIGNUM *a);
int i2d_ECDSA_SIG(const ECDSA_SIG *sig, unsigned char **pp);
]])

-- libcrypto: already in the server process; loaded by name elsewhere (the
-- unit specs run in plain LuaJIT).
local crypto = ffi.C
if not pcall(function() return crypto.EVP_sha256 end) then
    crypto = ffi.load("libcrypto.so.3")
end

local EVP_PKEY_RSA, EVP_PKEY_EC = 6, 408

--- base64url without padding (RFC 7515) to bytes, or nil.
local function b64url(s)
    if type(s) ~= "string" or s:find("[^%w_%-]") or #s % 4 == 1 then
        return nil
    end
    local pad = (4 - #s % 4) % 4
    local std = s:gsub("-", "+"):gsub("_", "/") .. ("="):rep(pad)
    local out = ffi.new("unsigned char[?]", #std / 4 * 3 + 1)
    local n = crypto.EVP_DecodeBlock(out, std, #std)
    if n < 0 then
        return nil
    end
    return ffi.string(out, n - pad)
end
_M._b64url = b64url

local function b64url_encode(s)
    local out = ffi.new("unsigned char[?]", 4 * math.ceil(#s / 3) + 1)
    local n = crypto.EVP_EncodeBlock(out, s, #s)
    return (ffi.string(out, n):gsub("%+", "-"):gsub("/", "_"):gsub("=+$", ""))
end

local function hs256(key, data)
    local out = ffi.new("unsigned char[32]")
    local len = ffi.new("unsigned int[1]")
    if crypto.HMAC(crypto.EVP_sha256(), key, #key, data, #data, out, len) == nil then
        return nil
    end
    return out, len[0]
end

local function read_key(pem)
    local bio = crypto.BIO_new_mem_buf(pem, #pem)
    if bio == nil then
        return nil
    end
    local key = crypto.PEM_read_bio_PUBKEY(bio, nil, nil, nil)
    crypto.BIO_free(bio)
    if key == nil then
        return nil
    end
    return ffi.gc(key, crypto.EVP_PKEY_free)
end

-- JWS ES256 signatures are r || s (32 bytes each); OpenSSL wants DER.
local function es256_der(sig)
    if #sig ~= 64 then
        return nil
    end
    local e = crypto.ECDSA_SIG_new()
    local r = crypto.BN_bin2bn(sig, 32, nil)
    local s = crypto.BN_bin2bn(ffi.cast("const unsigned char *", sig) + 32, 32, nil)
    if e == nil or r == nil or s == nil or crypto.ECDSA_SIG_set0(e, r, s) ~= 1 then
        if r ~= nil then crypto.BN_free(r) end
        if s ~= nil then crypto.BN_free(s) end
        if e ~= nil then crypto.ECDSA_SIG_free(e) end
        return nil
    end
    local n = crypto.i2d_ECDSA_SIG(e, nil)
    local buf = ffi.new("unsigned char[?]", n)
    local pp = ffi.new("unsigned char *[1]", buf)
    crypto.i2d_ECDSA_SIG(e, pp)
    crypto.ECDSA_SIG_free(e) -- frees r and s too
    return ffi.string(buf, n)
end

local function verify_with_key(key, sig, data)
    local ctx = crypto.EVP_MD_CTX_new()
    if ctx == nil then
        return false
    end
    local ok = crypto.EVP_DigestVerifyInit(ctx, nil, crypto.EVP_sha256(), nil, key) == 1
        and crypto.EVP_DigestVerify(ctx, sig, #sig, data, #data) == 1
    crypto.EVP_MD_CTX_free(ctx)
    return ok
end

local function check_signature(alg, signed, sig, opts)
    if alg == "HS256" then
        if type(opts.secret) ~= "string" or opts.secret == "" then
            return nil, "alg HS256 needs a secret"
        end
        local mac, n = hs256(opts.secret, signed)
        if not mac or #sig ~= n or crypto.CRYPTO_memcmp(mac, sig, n) ~= 0 then
            return nil, "bad signature"
        end
        return true
    end
    if alg ~= "RS256" and alg ~= "ES256" then
        return nil, "alg " .. tostring(alg) .. " not accepted"
    end
    if type(opts.public_key) ~= "string" then
        return nil, "alg " .. alg .. " needs a public_key"
    end
    local key = read_key(opts.public_key)
    if not key then
        return nil, "public_key is not a PEM public key"
    end
    local kind = crypto.EVP_PKEY_get_base_id(key)
    if alg == "RS256" and kind ~= EVP_PKEY_RSA then
        return nil, "alg RS256 needs an RSA key"
    elseif alg == "ES256" then
        if kind ~= EVP_PKEY_EC or crypto.EVP_PKEY_get_bits(key) ~= 256 then
            return nil, "alg ES256 needs a P-256 key"
        end
        sig = es256_der(sig)
        if not sig then
            return nil, "bad signature"
        end
    end
    if not verify_with_key(key, sig, signed) then
        return nil, "bad signature"
    end
    return true
end

local function audience_ok(aud, wanted)
    local list = type(wanted) == "table" and wanted or { wanted }
    local have = type(aud) == "table" and aud or { aud }
    for _, w in ipairs(list) do
        for _, a in ipairs(have) do
            if a == w then
                return true
            end
        end
    end
    return false
end

--- The token's claims if it is valid for opts (see the module comment),
-- else nil and the reason.
function _M.verify(token, opts)
    opts = opts or {}
    if (opts.secret ~= nil) == (opts.public_key ~= nil) then
        error("jwt.verify: give exactly one of secret and public_key", 2)
    end
    if type(token) ~= "string" then
        return nil, "no token"
    end
    local h64, p64, s64 = token:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]*)$")
    if not h64 then
        return nil, "malformed token"
    end
    local header = moontide.json.decode(b64url(h64) or "")
    local claims = moontide.json.decode(b64url(p64) or "")
    local sig = b64url(s64)
    if type(header) ~= "table" or type(claims) ~= "table" or not sig then
        return nil, "malformed token"
    end
    local alg = header.alg
    -- The key decides the algorithm, never the token: a secret allows HS256
    -- only, a public key RS256/ES256 only.
    if opts.secret ~= nil and alg ~= "HS256" or opts.public_key ~= nil and alg == "HS256" then
        return nil, "alg " .. tostring(alg) .. " not accepted"
    end
    local ok, err = check_signature(alg, h64 .. "." .. p64, sig, opts)
    if not ok then
        return nil, err
    end
    local now, leeway = opts.now or moontide.now(), opts.leeway or 0
    if claims.exp ~= nil and (type(claims.exp) ~= "number" or now >= claims.exp + leeway) then
        return nil, "token expired"
    end
    if claims.nbf ~= nil and (type(claims.nbf) ~= "number" or now + leeway < claims.nbf) then
        return nil, "token not yet valid"
    end
    if opts.audience ~= nil and not audience_ok(claims.aud, opts.audience) then
        return nil, "wrong audience"
    end
    if opts.issuer ~= nil and claims.iss ~= opts.issuer then
        return nil, "wrong issuer"
    end
    return claims
end

--- An HS256 token for claims (a table), signed with opts.secret: for an
-- app that issues its own tokens, and for specs.
function _M.sign(claims, opts)
    if type(claims) ~= "table" or type(opts) ~= "table" or type(opts.secret) ~= "string" then
        error("jwt.sign(claims, { secret = ... })", 2)
    end
    local signed = b64url_encode('{"alg":"HS256","typ":"JWT"}') .. "."
        .. b64url_encode(moontide.json.encode(claims))
    local mac, n = hs256(opts.secret, signed)
    return signed .. "." .. b64url_encode(ffi.string(mac, n))
end

--- A token from authorize's request (see the module comment), or nil.
function _M.from_request(request, opts)
    opts = opts or {}
    local auth = request.headers.authorization
    local bearer = auth and auth:match("^[Bb]earer%s+(%S+)%s*$")
    if bearer then
        return bearer
    end
    if opts.query and request.args[opts.query] then
        return request.args[opts.query]
    end
    if opts.cookie then
        return request.cookies[opts.cookie]
    end
    return nil
end

return _M
