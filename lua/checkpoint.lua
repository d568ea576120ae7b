-- checkpoint.lua: stores the runtime state (checkpoint) of a held job
-- without extending its lease.
-- KEYS[1]: job hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job id
-- ARGV[3]: worker id
-- ARGV[4]: attempt, "0" to skip the attempt check
-- ARGV[5]: checkpoint (JSON object text)
-- Returns: {"not_found"}, {"lease_lost"} or {"ok", job pairs}.
-- Invariant: only the holder (status running, claimedBy and attempt match)
-- changes the job.
local key = KEYS[1]
local attempt = tonumber(ARGV[4])

local f = redis.call('HMGET', key, 'status', 'claimedBy', 'attempt')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'running' or f[2] ~= ARGV[3] or (attempt > 0 and tonumber(f[3]) ~= attempt) then
  return {'lease_lost'}
end

local clock = redis.call('TIME')
local now = string.format('%.0f', clock[1] * 1000 + math.floor(clock[2] / 1000))
redis.call('HSET', key, 'checkpoint', ARGV[5], 'updatedAt', now)
return {'ok', redis.call('HGETALL', key)}
