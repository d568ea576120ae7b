-- cancel.lua: cancels a queued job at once, or requests that the holder of a running
-- job to stop.
-- KEYS[1]: job hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job id
-- ARGV[3]: reason
-- ARGV[4]: actor
-- ARGV[5]: max length of the job's event stream (approximate)
-- Returns: {"not_found"}, {"invalid_state", status} for a finished job, or
-- {"ok", job pairs}.
-- Invariant: a queued job leaves the ready and delayed sets in the same step
-- as it becomes cancelled, so no claim can grant it afterwards. A running job
-- keeps its lease and joins the cancelling set; a second cancel of it changes
-- nothing.
local key = KEYS[1]
local prefix = ARGV[1]
local id = ARGV[2]

local f = redis.call('HMGET', key, 'status', 'cancelRequestedAt', 'seq', 'type', 'member', 'claimedBy')
if not f[1] then
  return {'not_found'}
end

local clock = redis.call('TIME')
local now = string.format('%.0f', clock[1] * 1000 + math.floor(clock[2] / 1000))
local events = prefix .. 'job:' .. id .. ':events'
local payload = cjson.encode({actor = ARGV[4], reason = ARGV[3]})

if f[1] == 'queued' then
  redis.call('ZREM', prefix .. 'ready', f[5])
  redis.call('ZREM', prefix .. 'ready:' .. f[4], f[5])
  redis.call('ZREM', prefix .. 'delayed', id)
  redis.call('ZREM', prefix .. 'status:queued', id)
  redis.call('ZADD', prefix .. 'status:cancelled', f[3], id)
  redis.call('ZADD', prefix .. 'finished', now, id)
  redis.call('HSET', key, 'status', 'cancelled', 'cancelRequestedAt', now, 'cancelReason', ARGV[3],
    'nextAttemptAt', '', 'finishedAt', now, 'updatedAt', now)
  redis.call('XADD', events, 'MAXLEN', '~', ARGV[5], '*',
    'level', 'info', 'kind', 'cancelled', 'message', 'cancelled while queued by ' .. ARGV[4],
    'payload', payload, 'workerId', '', 'ts', now)
  return {'ok', redis.call('HGETALL', key)}
end

if f[1] == 'running' then
  if f[2] and f[2] ~= '' then
    return {'ok', redis.call('HGETALL', key)}
  end
  redis.call('SADD', prefix .. 'cancelling', id)
  redis.call('HSET', key, 'cancelRequestedAt', now, 'cancelReason', ARGV[3], 'updatedAt', now)
  redis.call('XADD', events, 'MAXLEN', '~', ARGV[5], '*',
    'level', 'info', 'kind', 'cancel_requested', 'message', 'cancel requested by ' .. ARGV[4],
    'payload', payload, 'workerId', f[6] or '', 'ts', now)
  return {'ok', redis.call('HGETALL', key)}
end

return {'invalid_state', f[1]}
