-- snapshot.lua: reads the pause state, drain metrics, worker counts,
-- per-state job counts and outbox depth at one instant.
-- KEYS[1]: pause hash
-- KEYS[2]: ready sorted set (all types)
-- KEYS[3]: delayed sorted set
-- KEYS[4]: in-flight sorted set (lease expiry, Unix ms)
-- KEYS[5]: quiesced set
-- KEYS[6]: workers sorted set (worker id -> last seen, Unix ms)
-- KEYS[7]: workers version sorted set (worker id -> pause version)
-- KEYS[8]: outbox stream
-- KEYS[9..]: one status sorted set per job state, in the order of ARGV[2..]
-- ARGV[1]: worker live window in milliseconds
-- ARGV[2..]: job state names matching KEYS[9..]
-- Returns: {pause hash as HGETALL pairs (empty when missing),
-- {queued, delayed, running, staleRunning, quiesced}, {live, acknowledged},
-- {state, count, ...}, outbox length}.
-- Invariant: read only, and every count is a cardinality or a range count,
-- so the cost does not grow with the number of jobs. The acknowledged count
-- reads one score per live worker.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local now_s = string.format('%.0f', now)

local pause = redis.call('HGETALL', KEYS[1])
local version = redis.call('HGET', KEYS[1], 'version')

-- A lease that expires exactly now counts as stale.
local metrics = {
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCOUNT', KEYS[4], '(' .. now_s, '+inf'),
  redis.call('ZCOUNT', KEYS[4], '-inf', now_s),
  redis.call('SCARD', KEYS[5]),
}

local since = string.format('%.0f', now - tonumber(ARGV[1]))
local live = redis.call('ZRANGEBYSCORE', KEYS[6], since, '+inf')
local acknowledged = 0
if version then
  local current = tonumber(version)
  for _, id in ipairs(live) do
    if tonumber(redis.call('ZSCORE', KEYS[7], id)) == current then
      acknowledged = acknowledged + 1
    end
  end
end

local counts = {}
for i = 2, #ARGV do
  counts[#counts + 1] = ARGV[i]
  counts[#counts + 1] = redis.call('ZCARD', KEYS[7 + i])
end

return {pause, metrics, {#live, acknowledged}, counts, redis.call('XLEN', KEYS[8])}
