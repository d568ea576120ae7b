-- outbox_ack.lua: removes audit events that reached Postgres from the
-- outbox.
-- KEYS[1]: outbox stream
-- ARGV: outbox entry ids
-- Returns: how many entries were removed. Unknown ids are skipped, so a
-- repeated acknowledgement is harmless.
-- Invariant: only the named entries are removed, so events appended after
-- the caller read the outbox stay pending.
if #ARGV == 0 then
  return 0
end
return redis.call('XDEL', KEYS[1], unpack(ARGV))
