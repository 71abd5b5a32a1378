-- wrk script of the side-by-side load benchmark (benches/load). Two modes:
--
--   wrk ... -s benches/load.lua http://HOST/buy/42/TOKEN -- storm USERS_FILE BOTS_FILE [N]
--   wrk ... -s benches/load.lua http://HOST/            -- static
--
-- storm: the requests of a sale's storm, made once in init() (so the generator spends its core
-- sending, not formatting) from a fixed seed, so every server gets the same requests in the same
-- order. Each is a POST to the buy path with a login token and an X-Forwarded-For address:
--   - a quarter from 50 bot accounts (BOTS_FILE: one token a line) on 4 addresses;
--   - the rest from the users of USERS_FILE (one token a line, user n on line n), each on an
--     address of its own (10.x.y.1: as many addresses as users);
--   - independently, 5% for an unknown product (outside the catalog) and 2% with a forged
--     token (the signature's last characters changed).
-- million (benches/million): user n of USERS_FILE, once each in file order, from an address
--   of its own (10.a.b.c for n), then again from the first: a storm of as many distinct
--   users and addresses as the file has lines.
-- static: GET of the URL as given.
--
-- done() prints one line the benchmark script reads:
--   LOAD requests=N seconds=S rps=R p50_ms=A p99_ms=B max_ms=C errors=E status=200:5,410:9

local mode = "static"
local pool = {}
local n_pool = 0
local at = 0
counts = {}
local threads = {}

-- Park and Miller's minimal standard generator: the same sequence on every machine and Lua
-- version (every product stays below 2^53, exact in a double).
local seed = 12345
local function rand(n)
  seed = (seed * 16807) % 2147483647
  return seed % n + 1
end

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  if #lines == 0 then error("load.lua: no token in " .. path) end
  return lines
end

local function forged(token)
  -- Change the signature's last four characters: a well-formed token that does not verify.
  local tail = token:sub(-4)
  local other = (tail == "AAAA") and "BBBB" or "AAAA"
  return token:sub(1, -5) .. other
end

function setup(thread)
  table.insert(threads, thread)
end

local function init_million(users_file)
  local n = 0
  for jwt in io.lines(users_file) do
    if jwt ~= "" then
      n = n + 1
      pool[n] = wrk.format("POST", nil, {
        ["Authorization"] = "Bearer " .. jwt,
        ["X-Forwarded-For"] = string.format("10.%d.%d.%d",
          math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256),
        ["Content-Length"] = "0",
      }, nil)
    end
  end
  n_pool = n
end

function init(args)
  mode = args[1] or "static"
  if mode == "million" then return init_million(args[2]) end
  if mode ~= "storm" then return end
  local users = read_lines(args[2])
  local bots = read_lines(args[3])
  local n = tonumber(args[4] or "100000")
  local product, token = wrk.path:match("^/buy/(%d+)/(.+)$")
  if not product then error("load.lua: storm needs a URL /buy/PRODUCT/TOKEN, got " .. wrk.path) end
  local bot_ips = { "198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4" }
  for i = 1, n do
    local jwt, ip
    if rand(4) == 1 then
      local b = rand(#bots)
      jwt = bots[b]
      ip = bot_ips[(b % #bot_ips) + 1]
    else
      local u = rand(#users)
      jwt = users[u]
      ip = string.format("10.%d.%d.1", math.floor(u / 256) % 256, u % 256)
    end
    local path = wrk.path
    if rand(100) <= 5 then
      path = string.format("/buy/%d/%s", 100000 + rand(100000), token)
    end
    if rand(100) <= 2 then
      jwt = forged(jwt)
    end
    pool[i] = wrk.format("POST", path, {
      ["Authorization"] = "Bearer " .. jwt,
      ["X-Forwarded-For"] = ip,
      ["Content-Length"] = "0",
    }, nil)
  end
  n_pool = n
end

function request()
  if n_pool == 0 then
    return wrk.format("GET", nil, nil, nil)
  end
  at = at % n_pool + 1
  return pool[at]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for status, n in pairs(c) do
      total[status] = (total[status] or 0) + n
    end
  end
  local statuses = {}
  for status, n in pairs(total) do
    statuses[#statuses + 1] = string.format("%d:%d", status, n)
  end
  table.sort(statuses)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "LOAD requests=%d seconds=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d status=%s\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout,
    table.concat(statuses, ",")))
end
