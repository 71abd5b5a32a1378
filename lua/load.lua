-- load.lua: seed one sale's stock, or restock a sale that has buyers; used by
-- `flashgate stock load`.
--
-- KEYS[1] stock   KEYS[2] buyers   KEYS[3] meta (hash: the sale's configured total)
-- ARGV[1] units: the sale's total   ARGV[2] "1" to restock a sale that has buyers
--
-- A sale without buyers gets all `units` on sale. A sale with buyers is refused unless ARGV[2]
-- is "1"; then it is restocked: every buyer keeps their unit and `units - buyers` go on sale,
-- so units on sale plus units held are the new total, and stay so whatever becomes of a
-- reservation still in flight (an order keeps its unit, a release gives it back). A total
-- below the units buyers hold is refused. The ledger, its consumer group and the reservation
-- ids are never touched, so the order backend goes on consuming. O(1) whatever the buyers.
--
-- Returns {"loaded", 0} | {"restocked", buyers} | {"has_buyers", buyers} | {"below_held", buyers}.

local units = tonumber(ARGV[1])
local buyers = redis.call('HLEN', KEYS[2])
if buyers > 0 then
  if ARGV[2] ~= '1' then
    return {'has_buyers', buyers}
  end
  if units < buyers then
    return {'below_held', buyers}
  end
end
redis.call('SET', KEYS[1], units - buyers)
redis.call('HSET', KEYS[3], 'stock', ARGV[1])
if buyers > 0 then
  return {'restocked', buyers}
end
return {'loaded', 0}
