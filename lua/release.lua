-- release.lua: the holder hands a job back to the ready sets without using
-- up an attempt.
-- KEYS[1]: job hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job id
-- ARGV[3]: worker id
-- ARGV[4]: attempt, "0" to skip the attempt check
-- ARGV[5]: "1" when ARGV[6] carries a new checkpoint
-- ARGV[6]: checkpoint (JSON object text)
-- ARGV[7]: max length of the job's event stream (approximate)
-- Returns: {"not_found"}, {"lease_lost"} or {"ok", job pairs}.
-- Invariant: only the holder releases. The job returns with its original
-- member and priority, so it keeps its place in the queue, and its attempt
-- counter goes back by one. A job with a cancel requested ends cancelled
-- instead, because the operator already decided it should not run again.
local key = KEYS[1]
local prefix = ARGV[1]
local id = ARGV[2]
local attempt = tonumber(ARGV[4])

local f = redis.call('HMGET', key, 'status', 'claimedBy', 'attempt', 'cancelRequestedAt', 'seq',
  'type', 'priority', 'member')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'running' or f[2] ~= ARGV[3] or (attempt > 0 and tonumber(f[3]) ~= attempt) then
  return {'lease_lost'}
end

local clock = redis.call('TIME')
local now = string.format('%.0f', clock[1] * 1000 + math.floor(clock[2] / 1000))
local used = tonumber(f[3])

redis.call('ZREM', prefix .. 'inflight', id)
redis.call('SREM', prefix .. 'quiesced', id)
redis.call('SREM', prefix .. 'cancelling', id)
redis.call('ZREM', prefix .. 'status:running', id)
if ARGV[5] == '1' then
  redis.call('HSET', key, 'checkpoint', ARGV[6])
end
redis.call('HSET', key, 'leaseExpiresAt', '', 'quiesced', '0', 'updatedAt', now)

local events = prefix .. 'job:' .. id .. ':events'
if f[4] and f[4] ~= '' then
  redis.call('ZADD', prefix .. 'status:cancelled', f[5], id)
  redis.call('ZADD', prefix .. 'finished', now, id)
  redis.call('HSET', key, 'status', 'cancelled', 'finishedAt', now)
  redis.call('XADD', events, 'MAXLEN', '~', ARGV[7], '*',
    'level', 'info', 'kind', 'cancelled',
    'message', 'released by the worker after a cancel request; cancelled',
    'payload', cjson.encode({attempt = used}), 'workerId', ARGV[3], 'ts', now)
  return {'ok', redis.call('HGETALL', key)}
end

local score = -tonumber(f[7])
redis.call('ZADD', prefix .. 'ready', score, f[8])
redis.call('ZADD', prefix .. 'ready:' .. f[6], score, f[8])
redis.call('ZADD', prefix .. 'status:queued', f[5], id)
redis.call('HSET', key, 'status', 'queued', 'claimedBy', '', 'attempt', math.max(used - 1, 0))
redis.call('XADD', events, 'MAXLEN', '~', ARGV[7], '*',
  'level', 'info', 'kind', 'released', 'message', 'released by the worker; the attempt is not counted',
  'payload', cjson.encode({attempt = used}), 'workerId', ARGV[3], 'ts', now)
redis.call('PUBLISH', prefix .. 'notify', 'job')
return {'ok', redis.call('HGETALL', key)}
