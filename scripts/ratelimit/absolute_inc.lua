-- distkit ratelimit: absolute_inc
-- requires: lib/window.lua
--
-- Decides one or more calls of the absolute strategy on one key, in order,
-- and records each one admitted. Several calls in one run are decided
-- exactly as the same calls sent one after the other at the same instant
-- (a client combines calls that arrive while others are in flight).
--
-- KEYS[1]  the window hash of one limited key
--          (distkit:ratelimit:<namespace>:{<key>}:absolute): field
--          <bucket index> -> admitted units, t -> running total, h -> pruning
--          cursor (see lib/window.lua)
-- ARGV[1]  bucket size, ms
-- ARGV[2]  buckets per window (n)
-- ARGV[3]  capacity: units admitted per window at most
-- ARGV[4]  cost of the first call (1 <= cost <= capacity)
-- ARGV[5..] costs of further calls, if any
--
-- Returns  a flat list of integers: first reset_after_ms of an admitted
--          call of this run (the current bucket leaves the window then;
--          the same for every call of the run), then for each call, in
--          order:
--            admitted: one integer, the admitted units in the window after
--                      the call (>= 1);
--            refused:  three integers, -(admitted units) - 1 (<= -1),
--                      retry_after_ms, reset_after_ms.
--          One admitted call: {reset_after_ms, admitted}; one refused call:
--          {reset_after_ms, -admitted - 1, retry_after_ms, reset_after_ms}.
--          (Compact because a combined run of many calls spends most of its
--          time encoding its reply.)
--
-- Time is Redis server time. Complexity: O(1) commands (TIME, HMGET, HSET,
-- and PEXPIREAT once per bucket) plus O(1) Lua work per call, plus one
-- HMGET of the live buckets when a call is refused, plus pruning of the
-- buckets that left the window since the last run (at most n, each pruned
-- once).
-- Invariants: admitted units in the live buckets never exceed the capacity;
-- a refused call writes nothing but pruning.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])

local w = distkit_window_open(KEYS[1], {''}, bucket_ms, n)
local replies = {distkit_window_current_reset_after(w)}
local counts
for i = 4, #ARGV do
  local cost = tonumber(ARGV[i])
  local admitted = w.totals[1]
  local r = #replies
  if admitted + cost <= capacity then
    distkit_window_add(w, 1, w.current, cost)
    if counts then counts[#counts] = w.counts[1] end
    replies[r + 1] = w.totals[1]
  else
    if not counts then counts = distkit_window_buckets(w, 1) end
    replies[r + 1] = -admitted - 1
    replies[r + 2] = distkit_window_freed_after(w, counts, admitted + cost - capacity)
    replies[r + 3] = distkit_window_reset_after(w, counts)
  end
end
distkit_window_commit(w)
return replies
