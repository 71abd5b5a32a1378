-- release.lua: give the unit of one reservation back, exactly once.
--
-- KEYS[1] stock   KEYS[2] buyers   KEYS[3] confirmed (set: reservations an order holds)
-- ARGV[1] uid     ARGV[2] reservation id
-- ARGV[3] "order" when the order backend returns the unit of its own (cancelled) order
--
-- Returns 1 when the unit came back, 0 when this reservation holds nothing — released before,
-- never made, or superseded by a later reservation of the same user — or when an order holds
-- it and the caller is not the order backend (the edge giving up on an origin that may have
-- taken the order must not free a unit an order owns).

if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then
  if ARGV[3] ~= 'order' then
    return 0
  end
  redis.call('SREM', KEYS[3], ARGV[2])
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[1])
return 1
