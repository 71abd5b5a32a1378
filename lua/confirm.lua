-- confirm.lua: the order backend claims a reservation for an order before writing the order.
-- From then on only the order backend can return its unit (see release.lua), so an edge that
-- gives up on a slow origin can never free a unit an order already owns.
--
-- KEYS[1] buyers   KEYS[2] confirmed
-- ARGV[1] uid      ARGV[2] reservation id
--
-- Returns 1 when the reservation is held (and is now confirmed; confirming twice is harmless),
-- 0 when it is not held: it was released, and no order may be made from it.

if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
