-- fence.lua: what a user holds of a sale, asked about one reserve attempt whose answer the
-- edge never got (the status URL of a `202 pending`). If the user holds nothing, the attempt is
-- fenced: should its reserve still reach Redis (a partition that heals), reserve.lua refuses it.
-- Whichever of the two runs first decides, in Redis, for every edge: the attempt took a unit
-- and the user holds it, or it never will.
--
-- KEYS[1] buyers    hash: uid -> reservation id
-- KEYS[2] confirmed set: reservations an order holds
-- KEYS[3] attempt   string: the attempt's key (see reserve.lua)
-- ARGV[1] uid
-- ARGV[2] how long the fence lives, ms
--
-- Returns {"held", reservation, confirmed (0|1)} | {"nothing"}.

local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  return {'held', held, redis.call('SISMEMBER', KEYS[2], held)}
end
-- An attempt that took a unit since released keeps its reservation id: it stays spent.
redis.call('SET', KEYS[3], 'fenced', 'NX', 'PX', ARGV[2])
return {'nothing'}
