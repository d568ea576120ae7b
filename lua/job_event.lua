-- job_event.lua: appends a worker's event to the event stream of the job it
-- holds.
-- KEYS[1]: job hash
-- KEYS[2]: the job's event stream ({ns}:job:<id>:events)
-- ARGV[1]: worker id
-- ARGV[2]: attempt, "0" to skip the attempt check
-- ARGV[3]: level (debug, info, warn or error)
-- ARGV[4]: message
-- ARGV[5]: payload (JSON object text)
-- ARGV[6]: max length of the event stream (approximate)
-- Returns: {"not_found"}, {"lease_lost"} or {"ok", event id, ts (Unix ms)}.
-- Invariant: only the holder (status running, claimedBy and attempt match)
-- appends; lifecycle events come from the state-change scripts.
local attempt = tonumber(ARGV[2])

local f = redis.call('HMGET', KEYS[1], 'status', 'claimedBy', 'attempt')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'running' or f[2] ~= ARGV[1] or (attempt > 0 and tonumber(f[3]) ~= attempt) then
  return {'lease_lost'}
end

local clock = redis.call('TIME')
local now = string.format('%.0f', clock[1] * 1000 + math.floor(clock[2] / 1000))
local event_id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
  'level', ARGV[3], 'kind', 'worker', 'message', ARGV[4], 'payload', ARGV[5],
  'workerId', ARGV[1], 'ts', now)
return {'ok', event_id, now}
