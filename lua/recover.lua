-- recover.lua: an operator requeues or cancels a running job whose lease has
-- expired. It runs whether or not the workers are paused.
-- KEYS[1]: job hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job id
-- ARGV[3]: mode, "requeue" or "cancel"
-- ARGV[4]: actor
-- ARGV[5]: max length of the job's event stream (approximate)
-- Returns: {"not_found"}, {"invalid_state", status} for a job not running,
-- {"lease_active"} when the lease has not expired (score > now),
-- {"attempts_exhausted"} for a requeue with no attempts left, or
-- {"ok", job pairs}.
-- Invariant: the job leaves running and the in-flight set in the same step,
-- so the previous holder's next heartbeat or complete gets lease_lost. A
-- requeued job keeps its original member and priority; the attempt it used
-- stays counted.
local key = KEYS[1]
local prefix = ARGV[1]
local id = ARGV[2]
local mode = ARGV[3]

local f = redis.call('HMGET', key, 'status', 'attempt', 'maxAttempts', 'seq', 'type', 'priority', 'member', 'claimedBy')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'running' then
  return {'invalid_state', f[1]}
end

local clock = redis.call('TIME')
local now_ms = clock[1] * 1000 + math.floor(clock[2] / 1000)
local now = string.format('%.0f', now_ms)
local lease = redis.call('ZSCORE', prefix .. 'inflight', id)
if lease and tonumber(lease) > now_ms then
  return {'lease_active'}
end
local used = tonumber(f[2])
if mode == 'requeue' and used >= tonumber(f[3]) then
  return {'attempts_exhausted'}
end

redis.call('ZREM', prefix .. 'inflight', id)
redis.call('SREM', prefix .. 'quiesced', id)
redis.call('SREM', prefix .. 'cancelling', id)
redis.call('ZREM', prefix .. 'status:running', id)
redis.call('HSET', key, 'leaseExpiresAt', '', 'quiesced', '0', 'claimedBy', '', 'updatedAt', now)

local message
if mode == 'requeue' then
  local score = -tonumber(f[6])
  redis.call('ZADD', prefix .. 'ready', score, f[7])
  redis.call('ZADD', prefix .. 'ready:' .. f[5], score, f[7])
  redis.call('ZADD', prefix .. 'status:queued', f[4], id)
  redis.call('HSET', key, 'status', 'queued', 'errorMessage',
    'lease of ' .. (f[8] or '') .. ' expired on attempt ' .. used .. '; requeued by ' .. ARGV[4])
  redis.call('PUBLISH', prefix .. 'notify', 'job')
  message = 'stale job requeued by ' .. ARGV[4]
else
  redis.call('ZADD', prefix .. 'status:cancelled', f[4], id)
  redis.call('ZADD', prefix .. 'finished', now, id)
  redis.call('HSET', key, 'status', 'cancelled', 'finishedAt', now, 'errorMessage',
    'lease of ' .. (f[8] or '') .. ' expired on attempt ' .. used .. '; cancelled by ' .. ARGV[4])
  message = 'stale job cancelled by ' .. ARGV[4]
end
redis.call('XADD', prefix .. 'job:' .. id .. ':events', 'MAXLEN', '~', ARGV[5], '*',
  'level', 'warn', 'kind', 'recovered', 'message', message,
  'payload', cjson.encode({actor = ARGV[4], mode = mode, attempt = used, previousWorker = f[8] or ''}),
  'workerId', '', 'ts', now)
return {'ok', redis.call('HGETALL', key)}
