-- restore.lua: recreates a missing pause hash from the newest audit event.
-- KEYS[1]: pause hash
-- KEYS[2]: outbox stream
-- ARGV[1]: audit event id of the restore (uuid made by the caller)
-- ARGV[2]: workersPaused of the restored state, "1" or "0"
-- ARGV[3]: mode of the restored state ("" when not paused)
-- ARGV[4]: reason of the restored state
-- ARGV[5]: actor of the restored state
-- ARGV[6]: requestedAt of the restored state (Unix ms, "" when unknown)
-- ARGV[7]: version of the newest audit event
-- ARGV[8]: reason recorded on the restore event
-- ARGV[9]: actor recorded on the restore event
-- ARGV[10]: notify channel
-- Returns: {"ok", new hash as HGETALL pairs, outbox entry id, event fields
-- as pairs}, or {"exists", version} when the hash exists at a version at
-- least as high as the newest audited one.
-- Invariant: an existing hash is overwritten only when its version is lower
-- than the newest audited version, which means Redis lost changes that the
-- audit log contains (an AOF fsynced once a second, a failover to a lagging
-- replica). The restored version is one higher than the newest audited
-- version, so no version appears twice in the audit log.
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

local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if current and current >= tonumber(ARGV[7]) then
  return {'exists', current}
end

-- A hash that fell behind the audit log is the state before the restore.
local before = ''
if current then
  local h = {}
  local pairs_ = redis.call('HGETALL', KEYS[1])
  for i = 1, #pairs_, 2 do
    h[pairs_[i]] = pairs_[i + 1]
  end
  before = state_json(h)
  redis.call('DEL', KEYS[1])
end

local t = redis.call('TIME')
local now = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000))
local after = {
  workersPaused = ARGV[2], mode = ARGV[3], reason = ARGV[4], actor = ARGV[5],
  requestedAt = ARGV[6], updatedAt = now,
  version = string.format('%.0f', tonumber(ARGV[7]) + 1),
}
redis.call('HSET', KEYS[1],
  'workersPaused', after.workersPaused, 'mode', after.mode, 'reason', after.reason,
  'actor', after.actor, 'requestedAt', after.requestedAt, 'updatedAt', after.updatedAt,
  'version', after.version)

-- With no hash before the restore, stateBefore stays empty.
local event = {
  'id', ARGV[1], 'control', 'worker_pause', 'action', 'restore', 'mode', ARGV[3],
  'reason', ARGV[8], 'actor', ARGV[9], 'version', after.version,
  'stateBefore', before, 'stateAfter', state_json(after), 'createdAt', now,
}
local outbox_id = redis.call('XADD', KEYS[2], '*', unpack(event))
redis.call('PUBLISH', ARGV[10], 'pause:' .. after.version)

return {'ok', redis.call('HGETALL', KEYS[1]), outbox_id, event}
