-- distkit ratelimit: hybrid_suppressed_lease
-- requires: lib/window.lua
--
-- The suppressed strategy's lease: reports the load an instance observed
-- locally, hands back the unused part of its previous lease, then leases up
-- to `want` units of the window's budget up to the hard limit, recorded as
-- admitted in the current bucket. The instance admits from the lease
-- locally until the bucket ends: the units below the capacity without a
-- draw, the rest with the suppression factor computed from the observed
-- load.
--
-- KEYS[1]  the window hash of one limited key (the same hash and layout as
--          suppressed_inc.lua)
-- ARGV[1]  bucket size, ms
-- ARGV[2]  buckets per window (n)
-- ARGV[3]  capacity (the soft limit), units per window
-- ARGV[4]  hard limit, units per window (>= capacity)
-- ARGV[5]  want: units to lease at most (0: only report and hand back)
-- ARGV[6]  min: the lease is granted only if the hard limit leaves at least
--          this many units (the cost of the call waiting for it)
-- ARGV[7]  bucket index of the previous contact (-1: none)
-- ARGV[8]  unused units of the lease taken in that bucket
-- ARGV[9]  units observed locally since that contact (admitted or not)
-- ARGV[10] cost of the call waiting for this lease (counted as observed in
--          the current bucket; 0 for none)
--
-- Returns  {granted units (0 if refused), of which below the capacity,
--           current bucket index, ms until the current bucket ends,
--           admitted units in the window after the call, observed units in
--           the window after the call, retry_after_ms for min units (-1
--           unless refused), reset_after_ms (-1 when only handing back)}
--
-- Complexity: O(1) commands for a grant (TIME, HMGET, HSET, and PEXPIREAT
-- once per bucket; an HGET and HINCRBY more for a hand-back to an older
-- bucket), one HMGET of the live buckets for a refusal, plus pruning (at
-- most n buckets, each pruned once).
-- Invariants: leased plus admitted units in the live buckets never exceed
-- the hard limit; a hand-back only lowers its own live bucket, never below
-- 0; observations of a bucket that has left the window are dropped.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local hard = tonumber(ARGV[4])
local want = tonumber(ARGV[5])
local min = tonumber(ARGV[6])
local back_bucket = tonumber(ARGV[7])
local back_units = tonumber(ARGV[8])
local back_observed = tonumber(ARGV[9])
local cost = tonumber(ARGV[10])

local w = distkit_window_open(KEYS[1], {'a', 'o'}, bucket_ms, n)

distkit_window_take_back(w, 1, back_bucket, back_units)
local live = back_bucket >= w.oldest and back_bucket <= w.current
local observed_now = cost
if back_observed > 0 and live then
  if w.exists then
    distkit_window_add(w, 2, back_bucket, back_observed)
  else
    observed_now = observed_now + back_observed
  end
end
if observed_now > 0 then distkit_window_add(w, 2, w.current, observed_now) end

local admitted = w.totals[1]
local bucket_left = (w.current + 1) * bucket_ms - w.now_ms
if want == 0 then
  distkit_window_commit(w)
  return {0, 0, w.current, bucket_left, admitted, w.totals[2], -1, -1}
end
if hard - admitted >= min then
  local granted = math.min(want, hard - admitted)
  local below = math.max(0, math.min(granted, capacity - admitted))
  distkit_window_add(w, 1, w.current, granted)
  distkit_window_commit(w)
  return {granted, below, w.current, bucket_left, w.totals[1], w.totals[2], -1,
          distkit_window_current_reset_after(w)}
end

distkit_window_commit(w)
local counts = distkit_window_buckets(w, 1)
return {0, 0, w.current, bucket_left, admitted, w.totals[2],
        distkit_window_freed_after(w, counts, admitted + min - hard),
        distkit_window_reset_after(w, counts)}
