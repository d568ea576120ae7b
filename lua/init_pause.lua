-- init_pause.lua: creates the pause hash unpaused at version 1 when it is
-- missing. It writes no audit event, because no operator changed anything.
-- KEYS[1]: pause hash
-- ARGV[1]: notify channel
-- Returns: 1 when the hash was created, 0 when it already existed.
-- Invariant: an existing pause hash is never touched, so the version
-- counter only ever rises.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end

local t = redis.call('TIME')
local now = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000))

redis.call('HSET', KEYS[1],
  'workersPaused', '0', 'mode', '', 'reason', '', 'actor', '',
  'requestedAt', '', 'updatedAt', now, 'version', '1')
redis.call('PUBLISH', ARGV[1], 'pause:1')
return 1
