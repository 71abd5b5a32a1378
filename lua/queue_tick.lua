-- queue_tick.lua: advance one sale's admission frontier and read its queue. Every edge runs it
-- every few hundred ms; the pace is set by Redis's clock, so more edges do not admit faster.
-- The same steps as src/stock/queue/frontier.rs (keep them in step); read that file's doc.
--
-- KEYS[1] queue     hash: pre, post, sealed, admitted, credit, last, window_total, used, seen
-- KEYS[2] window    list: "{at_ms}:{count}:{buyers}" of recent admissions, oldest first (the
--                   buyers then are read only when `used` is missing: a queue an earlier
--                   version ticked, whose estimate `used` then starts from)
-- KEYS[3] stock     string: units left (the sale's stock key)
-- KEYS[4] buyers    hash: the sale's buyers
-- ARGV[1] starts_at (ms)   ARGV[2] admit_per_second   ARGV[3] stock_multiple   ARGV[4] pass_ttl (ms)
--
-- Returns {now, pre, post, sealed (-1: not yet), admitted, admitted_now, remaining (-1: no
-- sale), buyers}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local starts = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local multiple = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])

local q = redis.call('HMGET', KEYS[1], 'pre', 'post', 'sealed', 'admitted', 'credit', 'last',
  'window_total', 'used', 'seen')
local pre = tonumber(q[1] or '0')
local post = tonumber(q[2] or '0')
local sealed = q[3] and tonumber(q[3])
local admitted = tonumber(q[4] or '0')
local credit = tonumber(q[5] or '0')
local last = tonumber(q[6] or '0')
local wtotal = tonumber(q[7] or '0')
local used = q[8] and tonumber(q[8])
local seen = tonumber(q[9] or '0')
local stock = redis.call('GET', KEYS[3])
local remaining = stock and tonumber(stock) or -1
local buyers = redis.call('HLEN', KEYS[4])
if not used then
  -- Ticked by an earlier version until now: the buys since the window's oldest admission,
  -- as it counted them.
  used = admitted - wtotal
  local oldest = redis.call('LINDEX', KEYS[2], 0)
  if oldest then
    used = used + math.max(0, buyers - tonumber(string.match(oldest, ':(%d+)$')))
  end
  used = math.min(used, admitted)
  seen = buyers
end

local function answer(n)
  return {now, pre, post, sealed or -1, admitted, n, remaining, buyers}
end

-- Buyers come or gone since the last tick, against the window's passes: a new buyer uses up
-- the oldest pass not yet counted, a unit handed back frees the newest pass counted.
if buyers >= seen then
  used = math.min(admitted, used + buyers - seen)
else
  used = math.max(admitted - wtotal, used - (seen - buyers))
end
seen = buyers

if not sealed and now >= starts then
  sealed = pre
  redis.call('HSET', KEYS[1], 'sealed', sealed)
end
if not sealed then
  redis.call('HSET', KEYS[1], 'last', now, 'used', used, 'seen', seen)
  return answer(0)
end
-- Admissions older than pass_ttl: their passes expired.
while true do
  local oldest = redis.call('LINDEX', KEYS[2], 0)
  if not oldest then break end
  local at, count = string.match(oldest, '^(%d+):(%d+):')
  if tonumber(at) + ttl > now then break end
  wtotal = wtotal - tonumber(count)
  redis.call('LPOP', KEYS[2])
end
-- Admissions before the window's oldest are gone, bought or not.
used = math.max(used, admitted - wtotal)
if last == 0 then last = starts end
if remaining <= 0 then
  redis.call('HSET', KEYS[1], 'credit', 0, 'last', now, 'window_total', wtotal, 'used', used,
    'seen', seen)
  return answer(0)
end
local elapsed = now - last
if elapsed < 0 then elapsed = 0 end
credit = math.min(rate, credit + elapsed * rate / 1000)
local outstanding = math.max(0, admitted - used)
local room = math.max(0, multiple * remaining - outstanding)
local waiting = math.max(0, sealed + post - admitted)
local n = math.min(math.floor(credit), room, waiting)
if n > 0 then
  admitted = admitted + n
  credit = credit - n
  wtotal = wtotal + n
  redis.call('RPUSH', KEYS[2], now .. ':' .. n .. ':' .. buyers)
end
redis.call('HSET', KEYS[1], 'admitted', admitted, 'credit', tostring(credit), 'last', now,
  'window_total', wtotal, 'used', used, 'seen', seen)
return answer(n)
