-- cancel_ack.lua: the holder confirms that it stopped a job whose cancel was
-- requested, and the job ends cancelled.
-- KEYS[1]: job hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job id
-- ARGV[3]: worker id
-- ARGV[4]: attempt, "0" to skip the attempt check
-- ARGV[5]: message
-- ARGV[6..9]: finish outcome code, stage, reason, summary (JSON object text
-- or "")
-- ARGV[10]: max length of the job's event stream (approximate)
-- Returns: {"not_found"}, {"lease_lost"}, {"invalid_state", status} when no
-- cancel was requested, or {"ok", job pairs}.
-- Invariant: only the holder acknowledges, and only after a cancel request.
local key = KEYS[1]
local prefix = ARGV[1]
local id = ARGV[2]
local attempt = tonumber(ARGV[4])

local f = redis.call('HMGET', key, 'status', 'claimedBy', 'attempt', 'cancelRequestedAt', 'seq')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'running' or f[2] ~= ARGV[3] or (attempt > 0 and tonumber(f[3]) ~= attempt) then
  return {'lease_lost'}
end
if not f[4] or f[4] == '' then
  return {'invalid_state', 'running (no cancel requested)'}
end

local clock = redis.call('TIME')
local now = string.format('%.0f', clock[1] * 1000 + math.floor(clock[2] / 1000))

redis.call('ZREM', prefix .. 'inflight', id)
redis.call('SREM', prefix .. 'quiesced', id)
redis.call('SREM', prefix .. 'cancelling', id)
redis.call('ZREM', prefix .. 'status:running', id)
redis.call('ZADD', prefix .. 'status:cancelled', f[5], id)
redis.call('ZADD', prefix .. 'finished', now, id)
redis.call('HSET', key, 'status', 'cancelled',
  'finishOutcomeCode', ARGV[6], 'finishOutcomeStage', ARGV[7],
  'finishOutcomeReason', ARGV[8], 'finishSummary', ARGV[9], 'cancelAckMessage', ARGV[5],
  'leaseExpiresAt', '', 'quiesced', '0', 'finishedAt', now, 'updatedAt', now)
local message = 'cancel acknowledged by the worker'
if ARGV[5] ~= '' then
  message = message .. ': ' .. ARGV[5]
end
redis.call('XADD', prefix .. 'job:' .. id .. ':events', 'MAXLEN', '~', ARGV[10], '*',
  'level', 'info', 'kind', 'cancelled', 'message', message,
  'payload', cjson.encode({attempt = tonumber(f[3])}), 'workerId', ARGV[3], 'ts', now)

return {'ok', redis.call('HGETALL', key)}
