-- release.lua: give the unit of one reservation back, exactly once.
--
-- KEYS[1] stock   KEYS[2] buyers (see reserve.lua)
-- ARGV[1] uid     ARGV[2] reservation id
--
-- Returns 1 when the unit came back, 0 when this reservation holds nothing: released before,
-- never made, or superseded by a later reservation of the same user.

if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[1])
return 1
