-- restore.lua: put back an order's unit that Redis lost (a failover to a replica that had not
-- seen the reservation), so the buyer holds it again and the unit is no longer on sale. Run
-- by the order backend's live reconcile for an active order in the database whose buyer
-- Redis does not list; the reconcile reads Redis before the database, so a unit the payment
-- timeout returned (cancelled in the database first) is never taken for a lost one.
--
-- KEYS[1] stock   KEYS[2] buyers   KEYS[3] confirmed   KEYS[4] meta (hash: counts "short")
-- ARGV[1] uid     ARGV[2] reservation id (the order's)
--
-- Returns "restored" (the buyer holds it again, one unit taken off sale), "short" (the buyer
-- holds it again, but no unit was left on sale to take back: the lost unit was sold again to
-- a reservation the database will refuse and discard), "held" (already so), or "other" (the
-- user holds another reservation, in flight: the database refuses it as a duplicate, and a
-- later pass restores this one).

local held = redis.call('HGET', KEYS[2], ARGV[1])
if held == ARGV[2] then
  redis.call('SADD', KEYS[3], ARGV[2])
  return 'held'
end
if held then
  return 'other'
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left and left > 0 then
  redis.call('DECR', KEYS[1])
  return 'restored'
end
redis.call('HINCRBY', KEYS[4], 'short', 1)
return 'short'
