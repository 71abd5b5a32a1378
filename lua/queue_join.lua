-- queue_join.lua: join one user to one sale's waiting room, or find the place they hold.
-- Atomic, one round trip; every key shares the sale's hash tag {product} (cluster-safe).
-- Whether the join counts in the pre-queue is decided by Redis's clock, not the edge's.
--
-- KEYS[1] queue     hash: pre, post, sealed (the pre-queue's final count, set at the start)
-- KEYS[2] members   hash: uid -> "{place}:{joined_ms}", place "p{n}" (pre-queue) or "a{n}" (after)
-- ARGV[1] uid
-- ARGV[2] starts_at, ms since the epoch
--
-- Returns {place, joined_ms}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  local sep = string.find(held, ':', 1, true)
  return {string.sub(held, 1, sep - 1), tonumber(string.sub(held, sep + 1))}
end
local sealed = redis.call('HGET', KEYS[1], 'sealed')
local place
if not sealed and now < tonumber(ARGV[2]) then
  place = 'p' .. redis.call('HINCRBY', KEYS[1], 'pre', 1)
else
  if not sealed then
    redis.call('HSET', KEYS[1], 'sealed', redis.call('HGET', KEYS[1], 'pre') or '0')
  end
  place = 'a' .. redis.call('HINCRBY', KEYS[1], 'post', 1)
end
redis.call('HSET', KEYS[2], ARGV[1], place .. ':' .. now)
return {place, now}
