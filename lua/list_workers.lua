-- list_workers.lua: reads the worker registry with the current pause
-- version and the Redis clock, so the live and acknowledged flags are
-- computed from one consistent view.
-- KEYS[1]: workers sorted set (worker id -> last seen, Unix ms)
-- KEYS[2]: workers version sorted set (worker id -> pause version)
-- KEYS[3]: pause hash
-- ARGV: none
-- Returns: {now ms, pause version or -1 when the hash is missing,
-- {id, last seen ms, version, ...} most recent first}.
-- Invariant: read only.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local version = redis.call('HGET', KEYS[3], 'version')

local seen = redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local rows = {}
for i = 1, #seen, 2 do
  local v = redis.call('ZSCORE', KEYS[2], seen[i]) or '-1'
  rows[#rows + 1] = seen[i]
  rows[#rows + 1] = seen[i + 1]
  rows[#rows + 1] = v
end
return {string.format('%.0f', now), version or '-1', rows}
