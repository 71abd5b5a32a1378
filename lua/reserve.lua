-- reserve.lua: take one unit of a sale for one user, atomically. The only code besides
-- release.lua and load.lua that changes stock in Redis. Every key of one sale shares the hash
-- tag {product}, so the script runs on one Redis Cluster slot.
--
-- KEYS[1] stock     string: units left
-- KEYS[2] buyers    hash: uid -> reservation id the user holds
-- KEYS[3] ledger    stream: one entry per reservation ever made
-- KEYS[4] sequence  string: last reservation number of this sale
-- ARGV[1] uid
-- ARGV[2] product id
--
-- Returns {"won", reservation, remaining} | {"unknown_sale"} | {"duplicate"} | {"sold_out"}.
-- Every check comes before any write: the stock is never decremented and then put back.

local stock = redis.call('GET', KEYS[1])
if not stock then
  return {'unknown_sale'}
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return {'duplicate'}
end
local left = tonumber(stock)
if left == nil or left <= 0 then
  return {'sold_out'}
end

local id = ARGV[2] .. '-' .. redis.call('INCR', KEYS[4])
local now = redis.call('TIME')
local ms = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
local remaining = redis.call('DECR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('XADD', KEYS[3], '*', 'reservation', id, 'uid', ARGV[1], 'product', ARGV[2], 'time', ms)
return {'won', id, remaining}
