-- distkit ratelimit: suppressed_inc
-- requires: lib/window.lua
--
-- Decides one or more calls of the suppressed strategy on one key, in
-- order, and records each: its cost is always counted as observed, and as
-- admitted when admitted. Several calls in one run are decided exactly as
-- the same calls sent one after the other at the same instant (a client
-- combines calls that arrive while others are in flight).
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
-- ARGV[5]  cost of the first call (1 <= cost <= capacity)
-- ARGV[6]  the first call's uniform draw, as an integer in [0, 2^53): the
--          draw is ARGV[6] / 2^53 (exact)
-- ARGV[7..] cost and draw of further calls, if any, in pairs
--
-- Returns  for each call, in order, six integers: allowed (1 or 0),
--          admitted units in the window after the call, retry_after_ms (-1
--          when allowed), reset_after_ms, regime, observed units in the
--          window including this call.
--          regime 0: admitted + cost <= capacity (factor 0); 2: admitted +
--          cost > hard (factor 1); 1: factor f = 1 - capacity / observed,
--          refused iff draw < f (clients compute f from the reply with the
--          same double arithmetic).
--
-- Complexity: O(1) commands (TIME, HMGET, HSET, and PEXPIREAT once per
-- bucket) plus O(1) Lua work per call, one HMGET of the live buckets when a
-- call is refused, plus pruning (at most n buckets, each pruned once).
-- Invariants: admitted units in the live buckets never exceed the hard
-- limit; observed >= admitted.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local hard = tonumber(ARGV[4])

local w = distkit_window_open(KEYS[1], {'a', 'o'}, bucket_ms, n)
local replies = {}
-- the admitted series' live buckets, read at the first refusal; later
-- admissions only change the current (last) one
local counts
for i = 5, #ARGV, 2 do
  local cost = tonumber(ARGV[i])
  local draw = tonumber(ARGV[i + 1]) / 9007199254740992
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
  local r = #replies
  if allowed == 1 then
    distkit_window_add(w, 1, w.current, cost)
    if counts then counts[#counts] = w.counts[1] end
    replies[r + 1] = 1
    replies[r + 2] = w.totals[1]
    replies[r + 3] = -1
    replies[r + 4] = distkit_window_current_reset_after(w)
  else
    if not counts then counts = distkit_window_buckets(w, 1) end
    local retry_after
    local need = admitted + cost - ceiling
    if need <= 0 then
      -- Refused by the draw: the next bucket may draw differently.
      retry_after = (w.current + 1) * bucket_ms - w.now_ms
    else
      retry_after = distkit_window_freed_after(w, counts, need)
    end
    replies[r + 1] = 0
    replies[r + 2] = admitted
    replies[r + 3] = retry_after
    replies[r + 4] = distkit_window_reset_after(w, counts)
  end
  replies[r + 5] = regime
  replies[r + 6] = w.totals[2]
end
distkit_window_commit(w)
return replies
