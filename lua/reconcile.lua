-- reconcile.lua: rewrite one sale's stock and buyers from the order database, the source of
-- truth after a Redis failover lost writes; used by `flashgate-orders reconcile --fix`.
--
-- KEYS[1] stock   KEYS[2] buyers   KEYS[3] confirmed
-- ARGV[1] units remaining
-- ARGV[2], ARGV[3], ...: uid, reservation id pairs of every order that holds a unit
--
-- Returns the number of buyers written.

redis.call('DEL', KEYS[2], KEYS[3])
local n = 0
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('SADD', KEYS[3], ARGV[i + 1])
  n = n + 1
end
redis.call('SET', KEYS[1], ARGV[1])
return n
