-- reserve.lua: take one unit of a sale for one user, atomically. The only code besides
-- release.lua and load.lua that changes stock in Redis. Every key of one sale shares the hash
-- tag {product}, so the script runs on one Redis Cluster slot.
--
-- KEYS[1] stock     string: units left
-- KEYS[2] buyers    hash: uid -> reservation id the user holds
-- KEYS[3] ledger    stream: one entry per reservation ever made
-- ARGV[1] uid
-- ARGV[2] product id
--
-- Returns {"won", reservation, remaining} | {"unknown_sale"} | {"duplicate"} | {"sold_out"}.
-- Every check comes before any write: the stock is never decremented and then put back.
--
-- The reservation id is "{product}-{ledger entry id}", the entry id Redis gives the ledger
-- entry: "{ms}-{n}", increasing within the stream and taken from the clock, so an id is never
-- given twice — not after a reload, and not after a restart or failover that lost a counter —
-- and it has the shape of the embedded store's ids. The ledger entry names uid and product;
-- its reservation id is its own id.

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

local remaining = redis.call('DECR', KEYS[1])
local entry = redis.call('XADD', KEYS[3], '*', 'uid', ARGV[1], 'product', ARGV[2])
local id = ARGV[2] .. '-' .. entry
redis.call('HSET', KEYS[2], ARGV[1], id)
return {'won', id, remaining}
