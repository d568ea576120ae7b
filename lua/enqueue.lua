-- enqueue.lua: stores a new job, ready now or delayed until its run time.
-- KEYS[1]: the new job's hash ({ns}:job:<id>)
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job id (a fresh UUID made by the caller)
-- ARGV[3]: type
-- ARGV[4]: priority (integer; higher runs first)
-- ARGV[5]: payload (JSON object text)
-- ARGV[6]: affinity key or ""
-- ARGV[7]: required capabilities (JSON array text)
-- ARGV[8]: max attempts
-- ARGV[9]: run time in Unix ms, "0" for now
-- ARGV[10]: idempotency key or ""
-- ARGV[11]: retention in ms (lifetime of the idempotency key)
-- Returns: {"created", job hash pairs} or, when the idempotency key already
-- names a stored job, {"exists", that job's hash pairs}.
-- Invariant: the job enters exactly one status set (queued) and exactly one
-- of the ready sets (both the global and its type set) or the delayed set.
local prefix = ARGV[1]
local id = ARGV[2]
local jtype = ARGV[3]
local priority = tonumber(ARGV[4])
local idem = ARGV[10]

local clock = redis.call('TIME')
local now = string.format('%.0f', clock[1] * 1000 + math.floor(clock[2] / 1000))

if idem ~= '' then
  local existing = redis.call('GET', prefix .. 'idem:' .. idem)
  if existing then
    local fields = redis.call('HGETALL', prefix .. 'job:' .. existing)
    if #fields > 0 then
      return {'exists', fields}
    end
  end
end

local seq = redis.call('INCR', prefix .. 'seq')
local member = string.format('%020d', seq) .. ':' .. id
local run_at = tonumber(ARGV[9])
local delayed = run_at > tonumber(now)
local next_attempt = ''
if delayed then
  next_attempt = string.format('%.0f', run_at)
end

redis.call('HSET', KEYS[1],
  'id', id, 'type', jtype, 'priority', ARGV[4], 'payload', ARGV[5],
  'affinityKey', ARGV[6], 'requiredCapabilities', ARGV[7],
  'maxAttempts', ARGV[8], 'attempt', '0', 'status', 'queued',
  'claimedBy', '', 'leaseExpiresAt', '', 'nextAttemptAt', next_attempt,
  'quiesced', '0', 'idempotencyKey', idem, 'resubmittedFrom', '',
  'createdAt', now, 'updatedAt', now, 'seq', seq, 'member', member)
redis.call('ZADD', prefix .. 'status:queued', seq, id)

if delayed then
  redis.call('ZADD', prefix .. 'delayed', run_at, id)
else
  redis.call('ZADD', prefix .. 'ready', -priority, member)
  redis.call('ZADD', prefix .. 'ready:' .. jtype, -priority, member)
  redis.call('PUBLISH', prefix .. 'notify', 'job')
end

if idem ~= '' then
  redis.call('SET', prefix .. 'idem:' .. idem, id, 'PX', ARGV[11])
end

return {'created', redis.call('HGETALL', KEYS[1])}
