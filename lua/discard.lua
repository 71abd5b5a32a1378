-- discard.lua: take the unit of one reservation out of the sale for good: the buyer no longer
-- holds it, and it is NOT put back on sale. The edge runs it when the origin answers
-- `410 sold_out` to a forward (its own stock is spent, so this unit exists only in Redis:
-- after a failover that lost writes, or a stock loaded higher than the origin's), and the
-- order backend when its database refuses a reservation for want of stock.
--
-- KEYS[1] buyers   KEYS[2] confirmed   KEYS[3] meta (hash: counts "discarded")
-- ARGV[1] uid      ARGV[2] reservation id
-- ARGV[3] "order" when the order backend discards a reservation it confirmed itself
--
-- Returns 1 when the unit was discarded, 0 when this reservation holds nothing (released or
-- discarded before, or superseded) or an order holds it and the caller is not the order
-- backend: an order's unit is real.

if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then
  if ARGV[3] ~= 'order' then
    return 0
  end
  redis.call('SREM', KEYS[2], ARGV[2])
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'discarded', 1)
return 1
