-- reserve.lua: take one unit of a sale for one user, atomically. The only code besides
-- release.lua and load.lua that changes stock in Redis. Every key of one sale shares the hash
-- tag {product}, so the script runs on one Redis Cluster slot.
--
-- KEYS[1] stock     string: units left
-- KEYS[2] buyers    hash: uid -> reservation id the user holds
-- KEYS[3] ledger    stream: one entry per reservation ever made
-- KEYS[4] confirmed set: reservations an order holds (see confirm.lua)
-- KEYS[5] attempt   string: this attempt's key (see fence.lua)
-- ARGV[1] uid
-- ARGV[2] product id
-- ARGV[3] how long the attempt key lives, ms
--
-- Returns {"won", reservation, remaining} | {"unknown_sale"} | {"duplicate", reservation,
-- confirmed (0|1)} | {"sold_out"} | {"fenced"}. Every check comes before any write: the stock is
-- never decremented and then put back.
--
-- An attempt is the edge's one try at a buy; its id is random, made by the edge. A reserve
-- whose answer never reached the edge may arrive late (a partition that heals) or twice (a
-- client's retry). Its attempt key says what happened to it:
--   "fenced"        the buyer's status URL asked about this attempt first and was told it holds
--                   nothing: this attempt takes nothing, ever (answers "fenced").
--   a reservation   the attempt took that unit; a copy of it that arrives again answers "won"
--                   with the same reservation while the user still holds it, and "fenced"
--                   (nothing taken) once that unit has gone back.
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
local attempt = redis.call('GET', KEYS[5])
local held = redis.call('HGET', KEYS[2], ARGV[1])
if attempt and attempt == held then
  return {'won', held, tonumber(stock)}
end
if held then
  return {'duplicate', held, redis.call('SISMEMBER', KEYS[4], held)}
end
if attempt then
  -- Fenced, or it took a unit that has since gone back: it takes nothing more.
  return {'fenced'}
end
local left = tonumber(stock)
if left == nil or left <= 0 then
  return {'sold_out'}
end

local remaining = redis.call('DECR', KEYS[1])
local entry = redis.call('XADD', KEYS[3], '*', 'uid', ARGV[1], 'product', ARGV[2])
local id = ARGV[2] .. '-' .. entry
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('SET', KEYS[5], id, 'PX', ARGV[3])
return {'won', id, remaining}
