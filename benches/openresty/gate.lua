-- The OpenResty gate of the load benchmark (benches/load): flashgate's buy path written the way
-- one would write it on Debian's nginx + libnginx-mod-http-lua + lua-nginx-redis, doing the same
-- work in the same order, so the benchmark compares two implementations of one job:
--
--   product known (catalog ranges, then its sale) -> sale window -> buy-path token
--   -> login: HS256 JWT (HMAC-SHA256 through OpenSSL's libcrypto, by LuaJIT's FFI)
--   -> blocklist (uid, ip, cidr: the same file) -> per-IP and per-UID limits (fixed windows in
--   a shared dict) -> shared sold-out flag (shared dict, 1 s) -> ONE EVALSHA of lua/reserve.lua
--   (the same keys and arguments as flashgate) -> the winner goes on to proxy_pass with the
--   signed X-Flashgate-* headers; everyone else gets {"outcome": ...} with flashgate's status.
--
-- The client address is nginx's own realip module (X-Forwarded-For from 127.0.0.1), in C.
-- Where this gate is cheaper than flashgate it is so on purpose, in OpenResty's favour: the
-- JWT's claims are read with string patterns, not a JSON parser; the rate limits are fixed
-- windows (one incr each), not a count-min sketch over a sliding window.

local ffi = require "ffi"
local base64 = require "ngx.base64"
local redis = require "nginx.redis"

local ngx = ngx
local find, sub, match, byte, format = string.find, string.sub, string.match, string.byte, string.format
local band, bor, lshift, tobit = bit.band, bit.bor, bit.lshift, bit.tobit
local decode_b64url = base64.decode_base64url
local floor, ceil, random = math.floor, math.ceil, math.random

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
]]

-- nginx is linked against libcrypto: its symbols are in the process already.
local crypto = ffi.C
if not pcall(function() return crypto.EVP_sha256 end) then
  crypto = ffi.load("libcrypto.so.3")
end

local M = {}

local cfg            -- set by init()
local sha256         -- EVP_sha256(), fetched per worker
local md = ffi.new("unsigned char[32]")
local md_len = ffi.new("unsigned int[1]")

local function hmac(key, data)
  crypto.HMAC(sha256, key, #key, data, #data, md, md_len)
  return ffi.string(md, 32)
end

local function hex(s)
  return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end

-- An IPv4 address as a 32-bit number (nil for anything else).
local function ip4(ip)
  local a, b, c, d = match(ip, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  return tobit(bor(lshift(tonumber(a), 24), lshift(tonumber(b), 16), lshift(tonumber(c), 8), tonumber(d)))
end

local function read_blocklist(path)
  local list = { uids = {}, ips = {}, nets = {} }
  if not path or path == "" then return list end
  for line in io.lines(path) do
    local entry = match((line:gsub("#.*", "")), "^%s*(.-)%s*$")
    local kind, value = match(entry, "^(%a+):(.+)$")
    if kind == "uid" then
      list.uids[value] = true
    elseif kind == "ip" then
      list.ips[value] = true
    elseif kind == "cidr" then
      local net, bits = match(value, "^([%d.]+)/(%d+)$")
      bits = tonumber(bits)
      local mask = bits == 0 and 0 or tobit(lshift(-1, 32 - bits))
      list.nets[#list.nets + 1] = { net = band(ip4(net), mask), mask = mask }
    elseif entry ~= "" then
      error("blocklist " .. path .. ": cannot read " .. line)
    end
  end
  return list
end

--- Called from init_by_lua with the benchmark's settings (see gate.conf.in).
function M.init(settings)
  cfg = settings
  local f = assert(io.open(cfg.reserve_script))
  cfg.reserve_source = f:read("*a")
  f:close()
  cfg.blocklist = read_blocklist(cfg.blocklist_file)
  -- Sales by product, with the names flashgate's SaleKeys gives their keys.
  local sales = {}
  for _, s in ipairs(cfg.sales) do
    local k = function(part) return format("flashgate:{%d}:%s", s.product, part) end
    s.stock_key, s.buyers_key, s.ledger_key = k("stock"), k("buyers"), k("ledger")
    s.sold_out_key = "sold_out:" .. s.product
    sales[s.product] = s
  end
  cfg.sales_by_product = sales
end

function M.init_worker()
  sha256 = crypto.EVP_sha256()
  math.randomseed(ngx.worker.pid())
  -- The buy-path token, derived as flashgate derives it (signing::sale_path_token).
  for _, s in pairs(cfg.sales_by_product) do
    s.token = sub(hex(hmac(cfg.edge_secret, format("sale-path\n%d\n%d", s.product, s.starts_ms))), 1, 32)
  end
end

local JSON_HEADERS = { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" }
local BODIES = {}
local function body(outcome)
  local b = BODIES[outcome]
  if not b then
    b = '{"outcome":"' .. outcome .. '"}'
    BODIES[outcome] = b
  end
  return b
end

local function answer(status, outcome, extra)
  local b = body(outcome)
  ngx.status = status
  local h = ngx.header
  h["Content-Type"] = JSON_HEADERS["Content-Type"]
  h["Cache-Control"] = JSON_HEADERS["Cache-Control"]
  h["Content-Length"] = #b
  if extra then
    for name, value in pairs(extra) do h[name] = value end
  end
  ngx.print(b)
  return ngx.exit(ngx.HTTP_OK)
end

local function known_product(product)
  for _, r in ipairs(cfg.catalog) do
    if product >= r[1] and product <= r[2] then return true end
  end
  return false
end

-- The uid of a valid HS256 login token, or nil.
local LEEWAY = 5
local function login(token, now)
  local d1 = find(token, ".", 1, true)
  if not d1 then return nil end
  local d2 = find(token, ".", d1 + 1, true)
  if not d2 or find(token, ".", d2 + 1, true) then return nil end
  local header = decode_b64url(sub(token, 1, d1 - 1))
  if not header or not find(header, '"alg"%s*:%s*"HS256"') then return nil end
  local sig = decode_b64url(sub(token, d2 + 1))
  if not sig or #sig ~= 32 or hmac(cfg.login_secret, sub(token, 1, d2 - 1)) ~= sig then
    return nil
  end
  local claims = decode_b64url(sub(token, d1 + 1, d2 - 1))
  if not claims then return nil end
  local exp = tonumber(match(claims, '"exp"%s*:%s*(%d+)'))
  if not exp or now > exp + LEEWAY then return nil end
  local nbf = tonumber(match(claims, '"nbf"%s*:%s*(%d+)'))
  if nbf and now + LEEWAY < nbf then return nil end
  local uid = match(claims, '"sub"%s*:%s*"([^"\\]*)"') or match(claims, '"sub"%s*:%s*(%-?%d+)')
  if not uid or #uid == 0 or #uid > 128 or find(uid, "%c") then return nil end
  return uid
end

local function blocked(uid, ip)
  local list = cfg.blocklist
  if list.uids[uid] or list.ips[ip] then return true end
  if #list.nets > 0 then
    local n = ip4(ip)
    if n then
      for _, net in ipairs(list.nets) do
        if band(n, net.mask) == net.net then return true end
      end
    end
  end
  return false
end

-- Count one request on a limit; the 429's headers if it is over.
local function over(limit, key)
  local counts = ngx.shared.fg_limits
  local n = counts:incr(key, 1, 0, limit.per)
  if not n or n <= limit.requests then return nil end
  local left = counts:ttl(key) or limit.per
  local reset = ceil(left)
  if reset < 1 then reset = 1 end
  return {
    ["Retry-After"] = reset + random(0, floor(reset / 5)),
    ["RateLimit-Policy"] = format('"%s";q=%d;w=%d', limit.name, limit.requests, limit.per),
    ["RateLimit"] = format('"%s";r=0;t=%d', limit.name, reset),
  }
end

local function reserve(sale, uid)
  local red = redis:new()
  red:set_timeout(cfg.store_timeout_ms)
  local ok, err = red:connect("127.0.0.1", cfg.redis_port)
  if not ok then return nil, err end
  local res
  res, err = red:evalsha(cfg.reserve_sha, 3, sale.stock_key, sale.buyers_key, sale.ledger_key,
    uid, sale.product)
  if not res and err and find(err, "NOSCRIPT", 1, true) then
    res, err = red:eval(cfg.reserve_source, 3, sale.stock_key, sale.buyers_key, sale.ledger_key,
      uid, sale.product)
  end
  if res then
    red:set_keepalive(60000, 64)
  else
    red:close()
  end
  return res, err
end

--- access_by_lua: decide a buy. Returns (to proxy_pass) only for a winner.
function M.buy()
  if ngx.req.get_method() ~= "POST" then
    return answer(405, "method_not_allowed", { Allow = "POST" })
  end
  local product, token = match(ngx.var.uri, "^/buy/(%d+)/(.*)$")
  product = tonumber(product)
  local sale = product and known_product(product) and cfg.sales_by_product[product]
  if not sale then return answer(404, "unknown_product") end

  local now = ngx.now()
  local now_ms = floor(now * 1000)
  if now_ms < sale.starts_ms then return answer(403, "not_started") end
  if now_ms >= sale.ends_ms then return answer(403, "ended") end
  if token ~= sale.token then return answer(403, "bad_sale_path") end

  local auth = ngx.var.http_authorization
  local jwt = auth and match(auth, "^%s*[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+)%s*$")
  local uid = jwt and login(jwt, now)
  if not uid then return answer(401, "login_required") end

  local ip = ngx.var.remote_addr
  if blocked(uid, ip) then return answer(403, "blacklisted") end
  local limited = over(cfg.per_ip, "i" .. ip) or over(cfg.per_uid, "u" .. uid)
  if limited then return answer(429, "rate_limited", limited) end

  local flags = ngx.shared.fg_sale
  if flags:get(sale.sold_out_key) then return answer(410, "sold_out") end

  local res, err = reserve(sale, uid)
  if not res then
    ngx.log(ngx.WARN, "reserve failed: ", err)
    return answer(503, "store_unavailable", { ["Retry-After"] = 1 })
  end
  local verdict = res[1]
  if verdict == "sold_out" then
    flags:set(sale.sold_out_key, true, cfg.sold_out_hint)
    return answer(410, "sold_out")
  elseif verdict == "duplicate" then
    return answer(409, "duplicate")
  elseif verdict ~= "won" then
    return answer(404, "unknown_product")
  end

  -- A winner: on to the origin, signed as flashgate signs it (signing::origin_signature).
  local reservation = res[2]
  local stamp = tostring(now_ms)
  local signature = hex(hmac(cfg.edge_secret,
    format("%s\n%d\n%s\n%s", uid, sale.product, reservation, stamp)))
  ngx.req.set_header("X-Flashgate-Uid", uid)
  ngx.req.set_header("X-Flashgate-Product", sale.product)
  ngx.req.set_header("X-Flashgate-Reservation", reservation)
  ngx.req.set_header("X-Flashgate-Timestamp", stamp)
  ngx.req.set_header("X-Flashgate-Signature", signature)
  ngx.req.set_header("X-Real-IP", ip)
  ngx.req.set_uri(cfg.origin_path)
end

return M
