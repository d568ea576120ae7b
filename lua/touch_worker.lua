-- touch_worker.lua: records the time of a worker's latest claim or
-- heartbeat and the pause version sent in the response, and removes workers
-- unseen for longer than the retention.
-- KEYS[1]: workers sorted set (worker id -> last seen, Unix ms)
-- KEYS[2]: workers version sorted set (worker id -> pause version of the
-- latest response)
-- ARGV[1]: worker id
-- ARGV[2]: pause version sent to the worker
-- ARGV[3]: retention in milliseconds
-- Returns: how many expired workers were removed (at most 100 per call).
-- Invariant: both sets hold the same members.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)

redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])

-- The LIMIT bounds the work of one call; later calls remove the rest.
local cutoff = string.format('%.0f', now - tonumber(ARGV[3]))
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff, 'LIMIT', 0, 100)
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('ZREM', KEYS[2], unpack(expired))
end
return #expired
