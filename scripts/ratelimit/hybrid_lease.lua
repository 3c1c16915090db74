-- distkit ratelimit: hybrid_lease
-- requires: lib/window.lua
--
-- Hands back the unused part of an instance's previous lease, then leases up
-- to `want` units of the current window's remaining budget to it, recorded
-- as admitted in the current bucket (the instance admits from the lease
-- locally, until the bucket ends). Absolute strategy.
--
-- KEYS[1]  the window hash of one limited key (the same hash and layout as
--          absolute_inc.lua)
-- ARGV[1]  bucket size, ms
-- ARGV[2]  buckets per window (n)
-- ARGV[3]  capacity, units per window
-- ARGV[4]  want: units to lease at most (0: only hand back)
-- ARGV[5]  min: the lease is granted only if at least this many units are
--          free (the cost of the call waiting for it)
-- ARGV[6]  bucket index of the lease handed back (-1: none)
-- ARGV[7]  unused units of that lease
--
-- Returns  {granted units (0 if fewer than min were free), current bucket
--           index, ms until the current bucket ends, admitted units in the
--           window after the call, retry_after_ms for min units (-1 when
--           granted or only handing back), reset_after_ms (-1 when only
--           handing back)}
--
-- Complexity: O(1) commands for a grant (TIME, HMGET, HSET, and PEXPIREAT
-- once per bucket; an HGET and HINCRBY more for a hand-back to an older
-- bucket), one HMGET of the live buckets for a refusal, plus pruning (at
-- most n buckets, each pruned once).
-- Invariants: leased plus admitted units in the live buckets never exceed
-- the capacity; a handed-back amount is subtracted from its own bucket only
-- while that bucket is live, and never below 0.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local min = tonumber(ARGV[5])
local back_bucket = tonumber(ARGV[6])
local back_units = tonumber(ARGV[7])

local w = distkit_window_open(KEYS[1], {''}, bucket_ms, n)

distkit_window_take_back(w, 1, back_bucket, back_units)

local admitted = w.totals[1]
local bucket_left = (w.current + 1) * bucket_ms - w.now_ms
if want == 0 then
  distkit_window_commit(w)
  return {0, w.current, bucket_left, admitted, -1, -1}
end
if capacity - admitted >= min then
  local granted = math.min(want, capacity - admitted)
  distkit_window_add(w, 1, w.current, granted)
  distkit_window_commit(w)
  return {granted, w.current, bucket_left, w.totals[1], -1,
          distkit_window_current_reset_after(w)}
end

distkit_window_commit(w)
local counts = distkit_window_buckets(w, 1)
return {0, w.current, bucket_left, admitted,
        distkit_window_freed_after(w, counts, admitted + min - capacity),
        distkit_window_reset_after(w, counts)}
