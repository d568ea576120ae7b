-- resubmit.lua: enqueues a new job copied from a failed, cancelled or
-- dead_letter job. It runs whether or not the workers are paused.
-- KEYS[1]: old job hash
-- KEYS[2]: new job hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: old job id
-- ARGV[3]: new job id (a fresh UUID made by the caller)
-- ARGV[4]: actor
-- ARGV[5]: max length of an event stream (approximate)
-- Returns: {"not_found"}, {"invalid_state", status},
-- {"ok", new job pairs, "created"} or, when the old job was resubmitted
-- before, {"ok", existing copy pairs, "exists"}.
-- Invariant: a repeated request (a double click or a retry) does not run
-- the work twice while the first copy exists. The old job names
-- its copy in resubmittedAs, and while that copy exists a new resubmit
-- returns it and writes nothing. The new job is ready at once with attempt
-- 0 and a new enqueue sequence. It copies type, priority, payload,
-- affinity key, required capabilities and max attempts, and names the old
-- job in resubmittedFrom. The old job changes only in resubmittedAs,
-- updatedAt and its event.
local prefix = ARGV[1]
local old_id = ARGV[2]
local id = ARGV[3]

local f = redis.call('HMGET', KEYS[1], 'status', 'type', 'priority', 'payload', 'affinityKey',
  'requiredCapabilities', 'maxAttempts', 'resubmittedAs')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'failed' and f[1] ~= 'cancelled' and f[1] ~= 'dead_letter' then
  return {'invalid_state', f[1]}
end
-- A copy removed after its retention period no longer blocks a new one.
if f[8] and f[8] ~= '' then
  local existing = redis.call('HGETALL', prefix .. 'job:' .. f[8])
  if #existing > 0 then
    return {'ok', existing, 'exists'}
  end
end

local clock = redis.call('TIME')
local now = string.format('%.0f', clock[1] * 1000 + math.floor(clock[2] / 1000))
local seq = redis.call('INCR', prefix .. 'seq')
local member = string.format('%020d', seq) .. ':' .. id
local score = -tonumber(f[3])

redis.call('HSET', KEYS[2],
  'id', id, 'type', f[2], 'priority', f[3], 'payload', f[4],
  'affinityKey', f[5] or '', 'requiredCapabilities', f[6] or '[]',
  'maxAttempts', f[7], 'attempt', '0', 'status', 'queued',
  'claimedBy', '', 'leaseExpiresAt', '', 'nextAttemptAt', '',
  'quiesced', '0', 'idempotencyKey', '', 'resubmittedFrom', old_id,
  'createdAt', now, 'updatedAt', now, 'seq', seq, 'member', member)
redis.call('HSET', KEYS[1], 'resubmittedAs', id, 'updatedAt', now)
redis.call('ZADD', prefix .. 'status:queued', seq, id)
redis.call('ZADD', prefix .. 'ready', score, member)
redis.call('ZADD', prefix .. 'ready:' .. f[2], score, member)

local payload = cjson.encode({actor = ARGV[4], from = old_id, to = id})
redis.call('XADD', prefix .. 'job:' .. old_id .. ':events', 'MAXLEN', '~', ARGV[5], '*',
  'level', 'info', 'kind', 'resubmitted', 'message', 'resubmitted as ' .. id .. ' by ' .. ARGV[4],
  'payload', payload, 'workerId', '', 'ts', now)
redis.call('XADD', prefix .. 'job:' .. id .. ':events', 'MAXLEN', '~', ARGV[5], '*',
  'level', 'info', 'kind', 'resubmitted', 'message', 'resubmitted from ' .. old_id .. ' by ' .. ARGV[4],
  'payload', payload, 'workerId', '', 'ts', now)
redis.call('PUBLISH', prefix .. 'notify', 'job')
return {'ok', redis.call('HGETALL', KEYS[2]), 'created'}
