-- pause.lua: pauses the workers, or changes the mode or reason of a pause
-- already in force.
-- KEYS[1]: pause hash
-- KEYS[2]: outbox stream
-- ARGV[1]: audit event id (uuid made by the caller)
-- ARGV[2]: mode, "drain" or "quiesce"
-- ARGV[3]: reason (trimmed, not empty)
-- ARGV[4]: actor ("" when unknown)
-- ARGV[5]: expected version, "" to accept any
-- ARGV[6]: notify channel
-- Returns: {"ok", new hash as HGETALL pairs, outbox entry id, event fields
-- as pairs}, or {"missing"}, {"version_conflict", version} or
-- {"already_paused", version}.
-- Invariant: every accepted change raises version by exactly 1 and appends
-- exactly one audit event in this same script; a rejected request writes
-- nothing.
local function json_string(s)
  if s == nil or s == '' then
    return 'null'
  end
  return cjson.encode(s)
end

local function state_json(h)
  return '{"workersPaused":' .. (h.workersPaused == '1' and 'true' or 'false') ..
    ',"mode":' .. json_string(h.mode) ..
    ',"reason":' .. json_string(h.reason) ..
    ',"actor":' .. json_string(h.actor) ..
    ',"version":' .. h.version .. '}'
end

local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return {'missing'}
end
local before = {}
for i = 1, #fields, 2 do
  before[fields[i]] = fields[i + 1]
end
local version = tonumber(before.version)

if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= version then
  return {'version_conflict', version}
end
if before.workersPaused == '1' and before.mode == ARGV[2] and before.reason == ARGV[3] then
  return {'already_paused', version}
end

local t = redis.call('TIME')
local now = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000))
local after = {
  workersPaused = '1', mode = ARGV[2], reason = ARGV[3], actor = ARGV[4],
  requestedAt = now, updatedAt = now, version = tostring(version + 1),
}
redis.call('HSET', KEYS[1],
  'workersPaused', after.workersPaused, 'mode', after.mode, 'reason', after.reason,
  'actor', after.actor, 'requestedAt', after.requestedAt, 'updatedAt', after.updatedAt,
  'version', after.version)

local event = {
  'id', ARGV[1], 'control', 'worker_pause', 'action', 'pause', 'mode', ARGV[2],
  'reason', ARGV[3], 'actor', ARGV[4], 'version', after.version,
  'stateBefore', state_json(before), 'stateAfter', state_json(after), 'createdAt', now,
}
local outbox_id = redis.call('XADD', KEYS[2], '*', unpack(event))
redis.call('PUBLISH', ARGV[6], 'pause:' .. after.version)

return {'ok', redis.call('HGETALL', KEYS[1]), outbox_id, event}
