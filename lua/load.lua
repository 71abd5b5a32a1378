-- load.lua: seed (or re-seed) one sale's stock; used by `flashgate stock load`.
--
-- KEYS[1] stock   KEYS[2] buyers   KEYS[3] ledger   KEYS[4] meta (hash: configured stock)
-- KEYS[5] confirmed
-- ARGV[1] units   ARGV[2] "1" to overwrite a sale that has buyers (drops buyers, confirmations
--                 and the ledger)
--
-- Returns {"loaded", buyers_dropped} | {"has_buyers", buyers}. The reservation sequence is never
-- reset, so reservation ids stay unique across reloads.

local buyers = redis.call('HLEN', KEYS[2])
if buyers > 0 and ARGV[2] ~= '1' then
  return {'has_buyers', buyers}
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[4], 'stock', ARGV[1])
return {'loaded', buyers}
