-- load.lua: seed one sale's stock, or restock a sale that has buyers; used by
-- `flashgate stock load`.
--
-- KEYS[1] stock   KEYS[2] buyers   KEYS[3] meta (hash: the sale's configured total)
-- KEYS[4] confirmed (set: reservations an order holds)
-- ARGV[1] units: the sale's total   ARGV[2] "1" to restock a sale that has buyers
--
-- A sale without buyers gets all `units` on sale. A sale with buyers is refused unless ARGV[2]
-- is "1"; then it is restocked: every buyer keeps their unit and `units - buyers` go on sale.
-- A restock never drops a reservation: it is refused while any buyer's reservation has no
-- order yet (the order backend confirms each within moments; ask again), and when `units` is
-- below the units buyers hold. The ledger, its consumer group and the reservation sequence are
-- never touched, so the order backend goes on consuming and reservation ids stay unique.
--
-- Returns {"loaded", 0} | {"restocked", buyers} | {"has_buyers", buyers}
--       | {"unsettled", reservations without an order} | {"below_held", buyers}.

local units = tonumber(ARGV[1])
local buyers = redis.call('HLEN', KEYS[2])
if buyers > 0 then
  if ARGV[2] ~= '1' then
    return {'has_buyers', buyers}
  end
  local unsettled = 0
  for _, reservation in ipairs(redis.call('HVALS', KEYS[2])) do
    if redis.call('SISMEMBER', KEYS[4], reservation) == 0 then
      unsettled = unsettled + 1
    end
  end
  if unsettled > 0 then
    return {'unsettled', unsettled}
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
