-- fail.lua: records a failed attempt of a held job and decides its next
-- state: retry after a backoff, failed, dead_letter, or cancelled.
-- KEYS[1]: job hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job id
-- ARGV[3]: worker id
-- ARGV[4]: attempt, "0" to skip the attempt check
-- ARGV[5]: error message
-- ARGV[6]: "1" when the failure is retryable
-- ARGV[7..10]: finish outcome code, stage, reason, summary (JSON object text
-- or "")
-- ARGV[11]: max length of the job's event stream (approximate)
-- ARGV[12]: backoff base in ms
-- ARGV[13]: backoff cap in ms
-- ARGV[14]: jitter, uniform in [0, 1)
-- Returns: {"not_found"}, {"lease_lost"} or {"ok", job pairs}.
-- Invariant: only the holder fails the job. A job with a cancel requested
-- ends cancelled and is never retried. A retry delay is
-- min(cap, base * 2^(attempt-1) * (1 + jitter/2)): never below base, never
-- above cap, and never shorter than the delay of an earlier attempt. The
-- exponent is clamped at 60 so a large attempt cannot overflow.
local key = KEYS[1]
local prefix = ARGV[1]
local id = ARGV[2]
local attempt = tonumber(ARGV[4])

local f = redis.call('HMGET', key, 'status', 'claimedBy', 'attempt', 'cancelRequestedAt', 'seq', 'maxAttempts')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'running' or f[2] ~= ARGV[3] or (attempt > 0 and tonumber(f[3]) ~= attempt) then
  return {'lease_lost'}
end

local clock = redis.call('TIME')
local now_ms = clock[1] * 1000 + math.floor(clock[2] / 1000)
local now = string.format('%.0f', now_ms)
local used = tonumber(f[3])
local seq = f[5]

redis.call('ZREM', prefix .. 'inflight', id)
redis.call('SREM', prefix .. 'quiesced', id)
redis.call('SREM', prefix .. 'cancelling', id)
redis.call('ZREM', prefix .. 'status:running', id)
redis.call('HSET', key, 'errorMessage', ARGV[5],
  'finishOutcomeCode', ARGV[7], 'finishOutcomeStage', ARGV[8],
  'finishOutcomeReason', ARGV[9], 'finishSummary', ARGV[10],
  'leaseExpiresAt', '', 'quiesced', '0', 'updatedAt', now)

local status, kind, level, message
local payload = {attempt = used}
if f[4] and f[4] ~= '' then
  status, kind, level = 'cancelled', 'cancelled', 'warn'
  message = 'attempt ' .. used .. ' failed after a cancel request; cancelled'
elseif ARGV[6] == '1' and used < tonumber(f[6]) then
  local base = tonumber(ARGV[12])
  local cap = tonumber(ARGV[13])
  local exponent = math.min(math.max(used - 1, 0), 60)
  local delay = math.floor(math.min(cap, base * 2 ^ exponent * (1 + tonumber(ARGV[14]) / 2)))
  local due = string.format('%.0f', now_ms + delay)
  redis.call('ZADD', prefix .. 'status:queued', seq, id)
  redis.call('ZADD', prefix .. 'delayed', due, id)
  redis.call('HSET', key, 'status', 'queued', 'claimedBy', '', 'nextAttemptAt', due)
  payload.delayMs = delay
  redis.call('XADD', prefix .. 'job:' .. id .. ':events', 'MAXLEN', '~', ARGV[11], '*',
    'level', 'warn', 'kind', 'retry_scheduled',
    'message', 'attempt ' .. used .. ' failed; retry in ' .. delay .. ' ms: ' .. ARGV[5],
    'payload', cjson.encode(payload), 'workerId', ARGV[3], 'ts', now)
  return {'ok', redis.call('HGETALL', key)}
elseif ARGV[6] ~= '1' then
  status, kind, level = 'failed', 'failed', 'error'
  message = 'attempt ' .. used .. ' failed, not retryable: ' .. ARGV[5]
else
  status, kind, level = 'dead_letter', 'dead_lettered', 'error'
  message = 'attempt ' .. used .. ' of ' .. f[6] .. ' failed, no attempts left: ' .. ARGV[5]
end

redis.call('ZADD', prefix .. 'status:' .. status, seq, id)
redis.call('ZADD', prefix .. 'finished', now, id)
redis.call('HSET', key, 'status', status, 'finishedAt', now)
redis.call('XADD', prefix .. 'job:' .. id .. ':events', 'MAXLEN', '~', ARGV[11], '*',
  'level', level, 'kind', kind, 'message', message,
  'payload', cjson.encode(payload), 'workerId', ARGV[3], 'ts', now)
return {'ok', redis.call('HGETALL', key)}
