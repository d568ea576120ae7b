-- claim.lua: leases the best ready job to a worker, unless the workers are
-- paused.
-- KEYS[1]: pause hash ({ns}:pause)
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: worker id
-- ARGV[3]: lease length in ms
-- ARGV[4]: scan limit: members inspected at the head of each ready set
-- ARGV[5]: promote limit: due delayed jobs moved to ready per call
-- ARGV[6]: max length of a job's event stream (approximate)
-- ARGV[7]: number of allowed types n (0 means any type)
-- ARGV[8 .. 7+n]: allowed types
-- ARGV[8+n]: number of worker capabilities m
-- ARGV[9+n .. 8+n+m]: worker capabilities
-- Returns: {"missing"} when the pause hash does not exist;
-- {"paused", pause pairs} when workersPaused is "1";
-- {"empty", pause pairs} when no ready job matches;
-- {"ok", pause pairs, job pairs} for the claimed job.
-- Invariant: the pause hash is read first, and when it is missing or paused
-- the script writes nothing, not even a promotion of due delayed jobs. The
-- work is bounded by ARGV[5] promotions plus ARGV[4] members per ready set
-- read (one set without a type filter, one per allowed type with it).
local pause = redis.call('HGETALL', KEYS[1])
if #pause == 0 then
  return {'missing'}
end
for i = 1, #pause, 2 do
  if pause[i] == 'workersPaused' and pause[i + 1] == '1' then
    return {'paused', pause}
  end
end

local prefix = ARGV[1]
local worker = ARGV[2]
local scan_limit = tonumber(ARGV[4])
local maxlen = ARGV[6]
local ntypes = tonumber(ARGV[7])
local ncaps = tonumber(ARGV[8 + ntypes])

local clock = redis.call('TIME')
local now_ms = clock[1] * 1000 + math.floor(clock[2] / 1000)
local now = string.format('%.0f', now_ms)

-- Promote due delayed jobs (scheduled or backing off) into the ready sets,
-- keeping their original member so priority and FIFO order hold.
local due = redis.call('ZRANGEBYSCORE', prefix .. 'delayed', '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(due) do
  local f = redis.call('HMGET', prefix .. 'job:' .. id, 'type', 'priority', 'member')
  if f[1] then
    redis.call('ZADD', prefix .. 'ready', -tonumber(f[2]), f[3])
    redis.call('ZADD', prefix .. 'ready:' .. f[1], -tonumber(f[2]), f[3])
  end
  redis.call('ZREM', prefix .. 'delayed', id)
end

local caps = {}
for i = 1, ncaps do
  caps[ARGV[8 + ntypes + i]] = true
end

-- capable reports whether the worker has every capability the job needs.
-- A member whose job hash is gone is dropped from the ready sets.
-- The second result is true when the member was dropped.
local function capable(id, set, member)
  local f = redis.call('HMGET', prefix .. 'job:' .. id, 'type', 'requiredCapabilities')
  if not f[1] then
    redis.call('ZREM', set, member)
    redis.call('ZREM', prefix .. 'ready', member)
    return false, true
  end
  local required = f[2]
  if not required or required == '' or required == '[]' then
    return true
  end
  for _, c in ipairs(cjson.decode(required)) do
    if not caps[c] then
      return false
    end
  end
  return true
end

local sets = {}
if ntypes == 0 then
  sets[1] = prefix .. 'ready'
else
  for i = 1, ntypes do
    sets[i] = prefix .. 'ready:' .. ARGV[7 + i]
  end
end

-- Each set's first capable member is its candidate; the best candidate has
-- the lowest score (highest priority), then the lowest member (oldest).
-- Pages grow 1, 4, 16, ... members, because the head member is usually
-- capable and reading the whole scan limit each time would dominate a claim.
local best_member, best_score
local function scan(set)
  local from, size, dropped = 0, 1, 0
  while from < scan_limit do
    local to = math.min(scan_limit, from + size) - 1
    local page = redis.call('ZRANGE', set, from - dropped, to - dropped, 'WITHSCORES')
    for i = 1, #page, 2 do
      local member = page[i]
      local score = tonumber(page[i + 1])
      if best_member and (score > best_score or (score == best_score and member > best_member)) then
        return
      end
      local ok, gone = capable(string.sub(member, 22), set, member)
      if ok then
        best_member, best_score = member, score
        return
      end
      if gone then
        dropped = dropped + 1
      end
    end
    if #page < (to - from + 1) * 2 then
      return
    end
    from, size = to + 1, size * 4
  end
end
for _, set in ipairs(sets) do
  scan(set)
end

if not best_member then
  return {'empty', pause}
end

local id = string.sub(best_member, 22)
local key = prefix .. 'job:' .. id
local f = redis.call('HMGET', key, 'type', 'seq')
local lease = string.format('%.0f', now_ms + tonumber(ARGV[3]))
local attempt = redis.call('HINCRBY', key, 'attempt', 1)

redis.call('ZREM', prefix .. 'ready', best_member)
redis.call('ZREM', prefix .. 'ready:' .. f[1], best_member)
redis.call('ZREM', prefix .. 'status:queued', id)
redis.call('ZADD', prefix .. 'status:running', f[2], id)
redis.call('ZADD', prefix .. 'inflight', lease, id)
redis.call('SREM', prefix .. 'quiesced', id)
redis.call('HSET', key, 'status', 'running', 'claimedBy', worker,
  'startedAt', now, 'leaseExpiresAt', lease, 'nextAttemptAt', '',
  'quiesced', '0', 'updatedAt', now)
redis.call('XADD', prefix .. 'job:' .. id .. ':events', 'MAXLEN', '~', maxlen, '*',
  'level', 'info', 'kind', 'claimed', 'message', 'claimed by ' .. worker .. ' (attempt ' .. attempt .. ')',
  'payload', cjson.encode({attempt = attempt}), 'workerId', worker, 'ts', now)

return {'ok', pause, redis.call('HGETALL', key)}
