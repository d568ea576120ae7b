-- ping.lua: a trivial script, the round-trip ceiling for benchmarks.
-- KEYS: none
-- ARGV: none
-- Returns: 1
return 1
