-- list_jobs.lua: reads one page of jobs, newest first, from the status sets.
-- KEYS[1]: the sequence counter, not read: it routes the call to the
-- namespace's slot on Redis Cluster. Other keys are built from the prefix.
-- ARGV[1]: key prefix "{ns}:"
-- ARGV[2]: job type to keep, "" for every type
-- ARGV[3]: cursor: list only jobs with an enqueue sequence below it, "" for
-- no bound
-- ARGV[4]: page size
-- ARGV[5]: read limit: the most members read from each status set
-- ARGV[6..]: the job states to list
-- Returns: {next cursor ("" on the last page), job pairs, job pairs, ...}.
-- Invariant: read only. The work is bounded by ARGV[5] members per status
-- set, however many jobs a type filter skips. A page may then contain fewer
-- jobs than requested, with a cursor to continue.
local prefix = ARGV[1]
local jtype = ARGV[2]
local upper = '+inf'
if ARGV[3] ~= '' then
  upper = '(' .. ARGV[3]
end
local limit = tonumber(ARGV[4])
local reads = tonumber(ARGV[5])

-- Merge the heads of the status sets. A set that returned a full read may
-- hold more members below its last one, so the merged order is complete
-- only down to the highest such last score (the floor).
local entries = {}
local floor = nil
for i = 6, #ARGV do
  local head = redis.call('ZREVRANGEBYSCORE', prefix .. 'status:' .. ARGV[i], upper, '-inf',
    'WITHSCORES', 'LIMIT', 0, reads)
  for j = 1, #head, 2 do
    entries[#entries + 1] = {id = head[j], seq = tonumber(head[j + 1])}
  end
  if #head / 2 == reads then
    local last = tonumber(head[#head])
    if not floor or last > floor then
      floor = last
    end
  end
end
table.sort(entries, function(a, b) return a.seq > b.seq end)

local out = {''}
local listed = 0
for _, e in ipairs(entries) do
  if floor and e.seq < floor then
    break
  end
  local key = prefix .. 'job:' .. e.id
  if jtype == '' or redis.call('HGET', key, 'type') == jtype then
    local fields = redis.call('HGETALL', key)
    if #fields > 0 then
      out[#out + 1] = fields
      listed = listed + 1
    end
  end
  if listed == limit then
    out[1] = string.format('%.0f', e.seq)
    return out
  end
end

if floor then
  out[1] = string.format('%.0f', floor)
end
return out
