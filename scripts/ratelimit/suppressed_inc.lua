-- distkit ratelimit: suppressed_inc
-- requires: lib/window.lua
--
-- Decides one call of the suppressed strategy and records it: its cost is
-- always counted as observed, and as admitted when admitted.
--
-- KEYS[1]  the window hash of one limited key
--          (distkit:ratelimit:<namespace>:{<key>}:suppressed): fields
--          a<bucket index> -> admitted units, o<bucket index> -> observed
--          units (admitted or not), at / ot -> running totals, h -> pruning
--          cursor (see lib/window.lua)
-- ARGV[1]  bucket size, ms
-- ARGV[2]  buckets per window (n)
-- ARGV[3]  capacity (the soft limit), units per window
-- ARGV[4]  hard limit, units per window (>= capacity)
-- ARGV[5]  cost of this call (1 <= cost <= capacity)
-- ARGV[6]  the client's uniform draw, as an integer in [0, 2^53): the draw
--          is ARGV[6] / 2^53 (exact)
--
-- Returns  {allowed (1 or 0), admitted units in the window after the call,
--           retry_after_ms (-1 when allowed), reset_after_ms, regime,
--           observed units in the window including this call}
--          regime 0: admitted + cost <= capacity (factor 0); 2: admitted +
--          cost > hard (factor 1); 1: factor f = 1 - capacity / observed,
--          refused iff draw < f (clients compute f from the reply with the
--          same double arithmetic).
--
-- Complexity: O(1) commands for an admission (TIME, HMGET, HSET, and
-- PEXPIREAT once per bucket), one HMGET of the live buckets for a refusal,
-- plus pruning (at most n buckets, each pruned once).
-- Invariants: admitted units in the live buckets never exceed the hard
-- limit; observed >= admitted.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local hard = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local draw = tonumber(ARGV[6]) / 9007199254740992

local w = distkit_window_open(KEYS[1], {'a', 'o'}, bucket_ms, n)
local admitted = w.totals[1]
local observed = w.totals[2] + cost

local allowed = 0
local regime = 1
local ceiling = capacity
if admitted + cost <= capacity then
  allowed = 1
  regime = 0
elseif admitted + cost > hard then
  regime = 2
  ceiling = hard
else
  local factor = 1 - capacity / observed
  if factor < 0 then factor = 0 end
  if draw >= factor then allowed = 1 end
end

distkit_window_add(w, 2, w.current, cost)
if allowed == 1 then
  distkit_window_add(w, 1, w.current, cost)
end
distkit_window_commit(w)
if allowed == 1 then
  return {1, w.totals[1], -1, distkit_window_current_reset_after(w), regime, w.totals[2]}
end

local counts = distkit_window_buckets(w, 1)
local retry_after
local need = admitted + cost - ceiling
if need <= 0 then
  -- Refused by the draw: the next bucket may draw differently.
  retry_after = (w.current + 1) * bucket_ms - w.now_ms
else
  retry_after = distkit_window_freed_after(w, counts, need)
end
return {0, admitted, retry_after, distkit_window_reset_after(w, counts), regime, w.totals[2]}
