-- release_worker.lua: hands every running job held by one worker id back to
-- the ready sets without using up an attempt, as release.lua does for one
-- job. A worker calls it when it stops, so a claim the broker granted while
-- the worker was cancelling its request does not wait for the lease to
-- expire. It runs whether or not the workers are paused, because releasing
-- is the holder's own decision.
-- KEYS[1]: in-flight set ({ns}:inflight)
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: worker id
-- ARGV[3]: max length of a job's event stream (approximate)
-- Returns: the ids of the jobs taken from the worker, in lease expiry
-- order; an empty array when it held none.
-- Bound: there is no per-worker index, so the script walks the whole
-- in-flight set and reads claimedBy of every running job. Its work grows
-- with the number of running jobs in the namespace, not with the jobs of
-- this worker.
-- Invariant: only jobs whose claimedBy equals ARGV[2] change. Each returns
-- with its original member and priority, its attempt counter goes back by
-- one and its checkpoint stays. A job with a cancel requested ends
-- cancelled instead, as in release.lua.
local prefix = ARGV[1]
local worker = ARGV[2]
local maxlen = ARGV[3]

local clock = redis.call('TIME')
local now = string.format('%.0f', clock[1] * 1000 + math.floor(clock[2] / 1000))

local released = {}
local requeued = false
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = prefix .. 'job:' .. id
  local f = redis.call('HMGET', key, 'status', 'claimedBy', 'attempt', 'cancelRequestedAt', 'seq',
    'type', 'priority', 'member')
  if f[1] == 'running' and f[2] == worker then
    local used = tonumber(f[3])
    local events = prefix .. 'job:' .. id .. ':events'
    redis.call('ZREM', KEYS[1], id)
    redis.call('SREM', prefix .. 'quiesced', id)
    redis.call('SREM', prefix .. 'cancelling', id)
    redis.call('ZREM', prefix .. 'status:running', id)
    redis.call('HSET', key, 'leaseExpiresAt', '', 'quiesced', '0', 'updatedAt', now)

    if f[4] and f[4] ~= '' then
      redis.call('ZADD', prefix .. 'status:cancelled', f[5], id)
      redis.call('ZADD', prefix .. 'finished', now, id)
      redis.call('HSET', key, 'status', 'cancelled', 'finishedAt', now)
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
        'level', 'info', 'kind', 'cancelled',
        'message', 'released by the worker at shutdown after a cancel request; cancelled',
        'payload', cjson.encode({attempt = used}), 'workerId', worker, 'ts', now)
    else
      local score = -tonumber(f[7])
      redis.call('ZADD', prefix .. 'ready', score, f[8])
      redis.call('ZADD', prefix .. 'ready:' .. f[6], score, f[8])
      redis.call('ZADD', prefix .. 'status:queued', f[5], id)
      redis.call('HSET', key, 'status', 'queued', 'claimedBy', '', 'attempt', math.max(used - 1, 0))
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
        'level', 'info', 'kind', 'released',
        'message', 'released by the worker at shutdown; the attempt is not counted',
        'payload', cjson.encode({attempt = used}), 'workerId', worker, 'ts', now)
      requeued = true
    end
    released[#released + 1] = id
  end
end

if requeued then
  redis.call('PUBLISH', prefix .. 'notify', 'job')
end
return released
