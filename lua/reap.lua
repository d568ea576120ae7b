-- reap.lua: runs one batch of the lease reaper. It ends expired jobs whose
-- cancel was requested as cancelled. Unless the workers are paused, it also
-- requeues or dead-letters jobs whose lease expired more than the grace ago,
-- promotes due delayed jobs and purges finished jobs past the retention.
-- KEYS[1]: pause hash
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: lease grace in ms
-- ARGV[3]: retention of finished jobs in ms
-- ARGV[4]: batch size: the most jobs each of the steps handles
-- ARGV[5]: max length of a job's event stream (approximate)
-- Returns: {paused (0 or 1), retried, dead-lettered, cancelled, purged,
-- promoted}.
-- Invariant: while the pause hash marks the workers paused, or is missing, the only
-- change is that running jobs in the cancelling set whose lease expired
-- (score <= now, no grace) end cancelled. Stale jobs stay stale, delayed
-- jobs stay delayed and finished jobs stay stored. Several API servers may
-- run this at once: every step re-reads the sets inside one script, so no job
-- is moved twice.
local prefix = ARGV[1]
local grace = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local batch = tonumber(ARGV[4])
local maxlen = ARGV[5]

local paused = redis.call('HGET', KEYS[1], 'workersPaused')
paused = (not paused) or paused == '1'

local clock = redis.call('TIME')
local now_ms = clock[1] * 1000 + math.floor(clock[2] / 1000)
local now = string.format('%.0f', now_ms)
local inflight = prefix .. 'inflight'

local function leave_running(id)
  redis.call('ZREM', inflight, id)
  redis.call('SREM', prefix .. 'quiesced', id)
  redis.call('SREM', prefix .. 'cancelling', id)
  redis.call('ZREM', prefix .. 'status:running', id)
end

local function event(id, level, kind, message, payload, worker)
  redis.call('XADD', prefix .. 'job:' .. id .. ':events', 'MAXLEN', '~', maxlen, '*',
    'level', level, 'kind', kind, 'message', message, 'payload', cjson.encode(payload),
    'workerId', worker, 'ts', now)
end

local function finish(key, id, seq, status)
  redis.call('ZADD', prefix .. 'status:' .. status, seq, id)
  redis.call('ZADD', prefix .. 'finished', now, id)
  redis.call('HSET', key, 'status', status, 'leaseExpiresAt', '', 'quiesced', '0',
    'finishedAt', now, 'updatedAt', now)
end

-- Running jobs whose cancel was requested and whose lease expired end
-- cancelled, paused or not: the operator already decided their fate. The
-- cancelling set contains only running jobs, so reading it whole is cheap.
local cancelled = 0
for _, id in ipairs(redis.call('SMEMBERS', prefix .. 'cancelling')) do
  if cancelled >= batch then
    break
  end
  local key = prefix .. 'job:' .. id
  local lease = redis.call('ZSCORE', inflight, id)
  local f = redis.call('HMGET', key, 'status', 'seq', 'claimedBy', 'attempt')
  if f[1] ~= 'running' then
    redis.call('SREM', prefix .. 'cancelling', id)
  elseif lease and tonumber(lease) <= now_ms then
    leave_running(id)
    finish(key, id, f[2], 'cancelled')
    redis.call('HSET', key, 'errorMessage', 'lease expired after a cancel request; cancelled')
    event(id, 'warn', 'cancelled', 'lease of ' .. (f[3] or '') .. ' expired after a cancel request; cancelled',
      {attempt = tonumber(f[4])}, f[3] or '')
    cancelled = cancelled + 1
  end
end

if paused then
  return {1, 0, 0, cancelled, 0, 0}
end

-- Expired leases past the grace: the attempt counts as used.
local retried, dead = 0, 0
local expired = redis.call('ZRANGEBYSCORE', inflight, '-inf', '(' .. string.format('%.0f', now_ms - grace),
  'LIMIT', 0, batch)
for _, id in ipairs(expired) do
  local key = prefix .. 'job:' .. id
  local f = redis.call('HMGET', key, 'status', 'seq', 'claimedBy', 'attempt', 'maxAttempts',
    'type', 'priority', 'member')
  leave_running(id)
  if f[1] == 'running' then
    local used, max = tonumber(f[4]), tonumber(f[5])
    local holder = f[3] or ''
    local payload = {attempt = used, previousWorker = holder}
    if used >= max then
      finish(key, id, f[2], 'dead_letter')
      redis.call('HSET', key, 'errorMessage', 'lease expired after ' .. used .. ' of ' .. max ..
        ' attempts (last holder ' .. holder .. '); no attempts left')
      event(id, 'error', 'lease_lost', 'lease of ' .. holder .. ' expired; no attempts left, dead-lettered',
        payload, holder)
      dead = dead + 1
    else
      local score = -tonumber(f[7])
      redis.call('ZADD', prefix .. 'ready', score, f[8])
      redis.call('ZADD', prefix .. 'ready:' .. f[6], score, f[8])
      redis.call('ZADD', prefix .. 'status:queued', f[2], id)
      redis.call('HSET', key, 'status', 'queued', 'claimedBy', '', 'leaseExpiresAt', '',
        'quiesced', '0', 'updatedAt', now, 'errorMessage', 'lease expired after ' .. used .. ' of ' .. max ..
        ' attempts (last holder ' .. holder .. '); requeued')
      event(id, 'warn', 'lease_lost', 'lease of ' .. holder .. ' expired; requeued', payload, holder)
      retried = retried + 1
    end
  end
end

-- Due delayed jobs move to the ready sets, so a long poll wakes for them.
local due = redis.call('ZRANGEBYSCORE', prefix .. 'delayed', '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(due) do
  local f = redis.call('HMGET', prefix .. 'job:' .. id, 'type', 'priority', 'member')
  if f[1] then
    redis.call('ZADD', prefix .. 'ready', -tonumber(f[2]), f[3])
    redis.call('ZADD', prefix .. 'ready:' .. f[1], -tonumber(f[2]), f[3])
  end
  redis.call('ZREM', prefix .. 'delayed', id)
end

if retried > 0 or #due > 0 then
  redis.call('PUBLISH', prefix .. 'notify', 'job')
end

-- Finished jobs past the retention: the hash, the events, the set members
-- and the idempotency key when it still names this job.
local purged = 0
local old = redis.call('ZRANGEBYSCORE', prefix .. 'finished', '-inf', string.format('%.0f', now_ms - retention),
  'LIMIT', 0, batch)
for _, id in ipairs(old) do
  local key = prefix .. 'job:' .. id
  local f = redis.call('HMGET', key, 'status', 'idempotencyKey')
  if f[1] then
    redis.call('ZREM', prefix .. 'status:' .. f[1], id)
  end
  if f[2] and f[2] ~= '' then
    local idem = prefix .. 'idem:' .. f[2]
    if redis.call('GET', idem) == id then
      redis.call('DEL', idem)
    end
  end
  redis.call('DEL', key, key .. ':events')
  redis.call('ZREM', prefix .. 'finished', id)
  purged = purged + 1
end

return {0, retried, dead, cancelled, purged, #due}
