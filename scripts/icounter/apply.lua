-- requires: lib/int64.lua
--
-- icounter/apply.lua: every instance-aware counter call is one run of this
-- script: housekeeping (heartbeat, dead-instance detection, a bounded slice
-- of dead-instance cleanup), then a batch of operations for one instance.
--
-- KEYS (all under distkit:icounter:{<prefix>}, one hash tag):
--   1 instances     zset  instance id -> last heartbeat (server ms)
--   2 dead          zset  instance id -> time it was declared dead (cleanup queue)
--   3 meta          hash  seq (call sequence, also the epoch source), cleared_at
--   4 totals        hash  key -> cumulative (decimal string)
--   5 epochs        hash  key -> epoch of the key (set by global set/del)
--   6 slices        hash  "<instance>:<key>" -> slice (decimal string)
--   7 slice_epochs  hash  "<instance>:<key>" -> epoch the slice belongs to
--   8 contrib       zset  "<instance>:<key>" (score 0): index of the entries,
--                         ordered so one instance's entries form one lex range
--   9 flushes       hash  instance id -> last applied lax flush sequence
--
-- ARGV:
--   1 instance id          2 dead-instance threshold (ms)
--   3 cleanup budget (entries per call)
--   4 flush sequence ("0": not a lax flush; otherwise the batch is applied at
--     most once per instance and sequence)
--   5 number of operations n, then n groups of 7 arguments:
--     op, key, value, comparator code, comparator operand, local slice,
--     local epoch
--     ops: get | inc (value = delta, comparator on cumulative)
--          | set (global: cumulative := value, new epoch, comparator on cumulative)
--          | seti (this slice := value, comparator on this slice)
--          | del (global) | deli (this slice := 0)
--          | clear (global, every key) | cleari (one page of this
--            instance's entries set to 0; value = cursor entry, "" to start)
--
-- Reply: { rejoined (0/1), seq, duplicate_flush (0/1), results }
--   result for key ops: { status, cumulative, slice, epoch }
--     status "ok" | "nomatch" (comparator false, nothing written)
--            | "overflow" (nothing written for this op)
--   del: cumulative is the old cumulative.
--   cleari: { "ok", next cursor ("" when done) }
--
-- Complexity: O(log N) per key operation, plus at most `budget` entries of
-- cleanup (O(budget log N)), plus at most 16 expired instances moved to the
-- dead queue; a cleari page is O(budget log N); clear is O(1) calls
-- (UNLINK frees the hashes in the background).
--
-- Invariant (kept by every write below, all inside this one script):
--   totals[k] == sum of slices[i:k] over the entries i:k present in `slices`
--   whose slice_epochs[i:k] equals the current epoch of k.
-- Entries are deleted only by dead-instance cleanup (which subtracts the
-- slice in the same step) and by clear (which also deletes the totals), so
-- every slice is subtracted at most once. Once the dead queue is drained,
-- the cumulative is the sum of the current-epoch slices of live instances.

local instances, dead, meta, totals = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local epochs, slices, slice_epochs, contrib, flushes = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]

local me = ARGV[1]
local threshold = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local flush_seq = ARGV[4]
local nops = tonumber(ARGV[5])

local I64_MAX = "9223372036854775807"
local I64_MIN = "-9223372036854775808"

local function neg(s)
  if s == "0" then return "0" end
  if string.sub(s, 1, 1) == "-" then return string.sub(s, 2) end
  return "-" .. s
end

-- a - b, or nil on overflow (b may be i64::MIN: its negation is handled by
-- distkit_checked_add, which works on magnitudes)
local function sub(a, b)
  return distkit_checked_add(a, neg(b))
end

-- hash[field] += delta with HINCRBY: exact, and refuses to overflow
-- (nothing written). The reply (a Lua number) is never used as a count.
local function incr(hash, field, delta)
  return type(redis.pcall('HINCRBY', hash, field, delta)) == 'number'
end

local function total_of(key)
  return distkit_or_zero(redis.call('HGET', totals, key))
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local seq_s = string.format('%d', seq)
local cleared_at = redis.call('HGET', meta, 'cleared_at') or "0"

local function current_epoch(key)
  return redis.call('HGET', epochs, key) or cleared_at
end

-- 1. Heartbeat. An instance missing from `instances` is new or was declared
-- dead: its remaining entries stay (they are still counted) and any cleanup
-- of them stops; entries already removed are restored from its local memory.
local rejoined = 0
if not redis.call('ZSCORE', instances, me) then
  rejoined = 1
  redis.call('ZREM', dead, me)
end
redis.call('ZADD', instances, now, me)

-- 2. Expired instances move to the dead queue (at most 16 per call).
local expired = redis.call('ZRANGEBYSCORE', instances, '-inf',
  '(' .. string.format('%d', now - threshold), 'LIMIT', 0, 16)
for _, id in ipairs(expired) do
  redis.call('ZREM', instances, id)
  redis.call('ZADD', dead, now, id)
end

-- 3. Bounded cleanup: remove at most `budget` entries of dead instances,
-- subtracting each current-epoch slice in the same step as its removal.
local remaining = budget
local rounds = 0
while remaining > 0 and rounds < 64 do
  rounds = rounds + 1
  local victim = redis.call('ZRANGE', dead, 0, 0)[1]
  if not victim then break end
  local entries = redis.call('ZRANGEBYLEX', contrib, '[' .. victim .. ':',
    '(' .. victim .. ';', 'LIMIT', 0, remaining)
  for _, entry in ipairs(entries) do
    local key = string.sub(entry, #victim + 2)
    local slice = redis.call('HGET', slices, entry)
    if slice and slice ~= "0" and redis.call('HGET', slice_epochs, entry) == current_epoch(key)
        and not incr(totals, key, neg(slice)) then
      local updated = sub(total_of(key), slice)
      if not updated then
        -- the other slices sum past i64: saturate (documented limit)
        if string.sub(slice, 1, 1) == "-" then updated = I64_MAX else updated = I64_MIN end
      end
      redis.call('HSET', totals, key, updated)
    end
    redis.call('HDEL', slices, entry)
    redis.call('HDEL', slice_epochs, entry)
    redis.call('ZREM', contrib, entry)
  end
  if #entries < remaining then
    redis.call('ZREM', dead, victim)
    redis.call('HDEL', flushes, victim)
  end
  remaining = remaining - #entries
end

-- 4. Lax flush idempotency.
local duplicate = 0
if flush_seq ~= "0" then
  local last = redis.call('HGET', flushes, me)
  if last and tonumber(last) >= tonumber(flush_seq) then
    duplicate = 1
  else
    redis.call('HSET', flushes, me, flush_seq)
  end
end

-- Loads this instance's entry for `key`: its counted slice (0 for a stale
-- or missing entry). A missing entry whose local epoch is current is
-- restored here: dead-instance cleanup removed it while this instance still
-- holds it in its local memory.
local function load(key, local_slice, local_epoch)
  local entry = me .. ':' .. key
  local epoch = current_epoch(key)
  local stored = redis.call('HGET', slices, entry)
  local state = { entry = entry, key = key, epoch = epoch, slice = "0", current = false }
  if stored then
    if redis.call('HGET', slice_epochs, entry) == epoch then
      state.slice, state.current = stored, true
    end
  elseif local_epoch == epoch and local_slice ~= "0" and incr(totals, key, local_slice) then
    redis.call('HSET', slices, entry, local_slice)
    redis.call('HSET', slice_epochs, entry, epoch)
    redis.call('ZADD', contrib, 'NX', 0, entry)
    state.slice, state.current = local_slice, true
  end
  return state
end

-- Makes the entry current: a stale or missing entry becomes 0 in the
-- current epoch (its old slice was never counted).
local function claim(state)
  if not state.current then
    redis.call('HSET', slices, state.entry, "0")
    redis.call('HSET', slice_epochs, state.entry, state.epoch)
    redis.call('ZADD', contrib, 'NX', 0, state.entry)
    state.current = true
  end
end

local function write(state, slice, total)
  claim(state)
  redis.call('HSET', slices, state.entry, slice)
  redis.call('HSET', totals, state.key, total)
  state.slice, state.total = slice, total
end

local function reply(status, state)
  return { status, state.total or total_of(state.key), state.slice, state.epoch }
end

-- Sets to 0 one page of this instance's current-epoch slices, from `cursor`
-- (exclusive).
local function clear_page(cursor)
  local lo = '[' .. me .. ':'
  if cursor ~= "" then lo = '(' .. cursor end
  local entries = redis.call('ZRANGEBYLEX', contrib, lo, '(' .. me .. ';', 'LIMIT', 0, budget)
  for _, entry in ipairs(entries) do
    local key = string.sub(entry, #me + 2)
    local epoch = current_epoch(key)
    local slice = redis.call('HGET', slices, entry)
    if slice and redis.call('HGET', slice_epochs, entry) == epoch then
      if slice ~= "0" and incr(totals, key, neg(slice)) then
        redis.call('HSET', slices, entry, "0")
      end
    end
  end
  local next_cursor = ""
  if #entries == budget then next_cursor = entries[#entries] end
  return { "ok", next_cursor }
end

local results = {}
for i = 0, nops - 1 do
  local base = 6 + i * 7
  local op, key, value = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local cmp, operand = ARGV[base + 3], ARGV[base + 4]
  local local_slice, local_epoch = ARGV[base + 5], ARGV[base + 6]

  if op == 'clear' then
    redis.call('UNLINK', totals, epochs, slices, slice_epochs, contrib)
    redis.call('HSET', meta, 'cleared_at', seq_s)
    cleared_at = seq_s
    results[#results + 1] = { "ok", "0", "0", seq_s }
  elseif op == 'cleari' then
    results[#results + 1] = clear_page(value)
  else
    local state = load(key, local_slice, local_epoch)
    local status = "ok"
    if duplicate == 1 or op == 'get' then
      -- read only (a retried flush that already landed is not applied again)
    elseif op == 'inc' then
      if cmp ~= 'nil' and not distkit_matches(cmp, total_of(key), operand) then
        status = "nomatch"
      elseif not incr(totals, key, value) then
        status = "overflow"
      else
        claim(state)
        if incr(slices, state.entry, value) then
          state.slice = redis.call('HGET', slices, state.entry)
        else
          -- undo the total exactly (value = i64::MIN has no i64 negation)
          if value == I64_MIN then
            incr(totals, key, I64_MAX)
            incr(totals, key, "1")
          else
            incr(totals, key, neg(value))
          end
          status = "overflow"
        end
      end
    elseif op == 'seti' then
      if not distkit_matches(cmp, state.slice, operand) then
        status = "nomatch"
      else
        local others = sub(total_of(key), state.slice)
        local total = others and distkit_checked_add(others, value)
        if total then write(state, value, total) else status = "overflow" end
      end
    elseif op == 'deli' then
      local removed = state.slice
      local others = sub(total_of(key), removed)
      if others then
        write(state, "0", others)
        state.slice = removed
      else
        status = "overflow"
      end
    elseif op == 'set' then
      if not distkit_matches(cmp, total_of(key), operand) then
        status = "nomatch"
      else
        redis.call('HSET', epochs, key, seq_s)
        state.epoch, state.current = seq_s, false
        write(state, value, value)
      end
    elseif op == 'del' then
      state.total = total_of(key)
      redis.call('HSET', epochs, key, seq_s)
      redis.call('HDEL', totals, key)
      state.epoch, state.current, state.slice = seq_s, false, "0"
      claim(state)
    else
      return redis.error_reply('distkit:unknown icounter op ' .. tostring(op))
    end
    results[#results + 1] = reply(status, state)
  end
end

return { rejoined, seq, duplicate, results }
