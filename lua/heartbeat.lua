-- heartbeat.lua: extends the lease of the job's holder and returns the job
-- with the pause state.
-- KEYS[1]: job hash
-- KEYS[2]: pause hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job id
-- ARGV[3]: worker id
-- ARGV[4]: attempt, "0" to skip the attempt check
-- ARGV[5]: lease length in ms
-- ARGV[6]: quiesced flag: "1" parked, "0" not parked, "" unchanged
-- ARGV[7]: "1" when ARGV[8] carries a new checkpoint
-- ARGV[8]: checkpoint (JSON object text)
-- Returns: {"not_found"}, {"lease_lost"} or {"ok", job pairs, pause pairs}
-- (pause pairs empty when the pause hash is missing).
-- Invariant: only the holder (status running, claimedBy and attempt match)
-- changes the job. A holder whose lease expired but whose job no other process moved
-- yet still holds it, so its heartbeat extends the lease.
local key = KEYS[1]
local prefix = ARGV[1]
local id = ARGV[2]
local attempt = tonumber(ARGV[4])

local f = redis.call('HMGET', key, 'status', 'claimedBy', 'attempt')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'running' or f[2] ~= ARGV[3] or (attempt > 0 and tonumber(f[3]) ~= attempt) then
  return {'lease_lost'}
end

local clock = redis.call('TIME')
local now_ms = clock[1] * 1000 + math.floor(clock[2] / 1000)
local now = string.format('%.0f', now_ms)
local lease = string.format('%.0f', now_ms + tonumber(ARGV[5]))

redis.call('ZADD', prefix .. 'inflight', lease, id)
redis.call('HSET', key, 'leaseExpiresAt', lease, 'updatedAt', now)
if ARGV[6] == '1' then
  redis.call('SADD', prefix .. 'quiesced', id)
  redis.call('HSET', key, 'quiesced', '1')
elseif ARGV[6] == '0' then
  redis.call('SREM', prefix .. 'quiesced', id)
  redis.call('HSET', key, 'quiesced', '0')
end
if ARGV[7] == '1' then
  redis.call('HSET', key, 'checkpoint', ARGV[8])
end

return {'ok', redis.call('HGETALL', key), redis.call('HGETALL', KEYS[2])}
