-- requires: lib/int64.lua
--
-- icounter/apply.lua: every instance-aware counter call is one run of this
-- script: housekeeping (heartbeat when due, dead-instance detection when
-- due, a bounded slice of dead-instance cleanup while instances wait for
-- it), then a batch of operations for one instance.
--
-- KEYS (all under distkit:icounter:{<prefix>}, one hash tag):
--   1 instances  zset  instance id -> last written heartbeat (server ms)
--   2 dead       zset  instance id -> time it was declared dead (cleanup queue)
--   3 meta       hash  seq (write sequence, also the epoch source),
--                      cleared_at (epoch of the last clear),
--                      check_at (server ms from which an instance may have
--                      expired; "0" while the dead queue is not empty),
--                      "h:<instance>" -> the instance's score in `instances`
--   4 data       hash  "<key>" -> "<epoch>:<cumulative>"
--                      "<instance>:<key>" -> "<epoch>:<slice>" (an entry)
--   5 contrib    zset  "<instance>:<key>" (score 0): index of the entries,
--                      ordered so one instance's entries form one lex range
--   6 flushes    hash  instance id -> last applied lax flush sequence
--
-- ARGV:
--   1 instance id          2 dead-instance threshold T (ms)
--   3 cleanup budget (entries per call)
--   4 flush sequence ("0": not a lax flush; otherwise the batch is applied at
--     most once per instance and sequence)
--   5 number of operations n, then n groups of 8 arguments:
--     op, key, value, comparator code, comparator operand, local slice,
--     local epoch, pending ("<flush sequence>:<delta>" when a lax flush
--     carrying <delta> for this key is unconfirmed: sent, reply not seen;
--     else "0")
--     ops: get | inc (value = delta, comparator on cumulative)
--          | set (global: cumulative := value, new epoch, comparator on cumulative)
--          | seti (this slice := value, comparator on this slice)
--          | del (global) | deli (this slice := 0)
--          | clear (global, every key) | cleari (one page of this
--            instance's entries set to 0; value = cursor entry, "" to start)
--
-- Reply: { rejoined (0/1), seq, duplicate_flush (0/1), results, flushed,
--          joined }
--   seq: this call's sequence if it may write (any op but get, or a flush),
--   else the last one (a read-only call sees the state of that write).
--   joined: the number of this instance's current membership (meta
--   j:<id>, from the counter meta.joins, drawn when it joined or rejoined):
--   a run after a rejoin tells the instance so even when another of its
--   runs got `rejoined`.
--   flushed: for a flush, or a run whose ops carry a pending flush, the
--   last lax flush sequence of this instance applied at the end of this run
--   (the results include that flush's deltas); else 0.
--   result for key ops: { status, cumulative, slice, epoch }
--     status "ok" | "nomatch" (comparator false, nothing written)
--            | "overflow" (nothing written for this op)
--   del: cumulative is the old cumulative.
--   cleari: { "ok", next cursor ("" when done) }
--
-- Commands per call: TIME, HMGET meta, HINCRBY meta seq (writing calls
-- only), then (a lone inc or get with nothing else due takes the fast path
-- of step 0 and stops after its HMGET and HSET of `data`) one HMGET of `data` for every key and entry the batch names
-- and one HSET of what changed (per 1 000 fields), plus ZADD contrib for new
-- entries. The heartbeat is written (ZADD + HSET) at most every T/10 per
-- instance; the dead-instance scan runs only once `check_at` has passed.
--
-- Complexity: O(log N) per key operation, plus at most `budget` entries of
-- cleanup (O(budget log N)), plus at most 16 expired instances moved to the
-- dead queue; a cleari page is O(budget log N); clear is O(1) calls
-- (UNLINK frees the hashes in the background).
--
-- Invariant (kept by every write below, all inside this one script):
--   cumulative(k) == sum of the slices of the entries i:k whose epoch equals
--   the current epoch of k (the epoch of data[k], else meta.cleared_at, else
--   "0"); data[k] is present whenever such an entry has a non-zero slice.
-- Entries are deleted only by dead-instance cleanup (which subtracts the
-- slice in the same step) and by clear (which also deletes the cumulatives),
-- so every slice is subtracted at most once. Once the dead queue is drained,
-- the cumulative is the sum of the current-epoch slices of live instances.
--
-- Liveness: a heartbeat is written when the stored one is at least T/10
-- old, so the stored heartbeat lags the last call by less than T/10; an
-- instance is declared dead when its stored heartbeat is more than T + T/10
-- old, i.e. only after more than T of silence, and at most T/10 later.

local instances, dead, meta, data = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local contrib, flushes = KEYS[5], KEYS[6]

local me = ARGV[1]
local threshold = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local flush_seq = ARGV[4]
local nops = tonumber(ARGV[5])
local beat_every = math.floor(threshold / 10)
local expiry = threshold + beat_every

local I64_MAX = "9223372036854775807"
local I64_MIN = "-9223372036854775808"

local function neg(s)
  if s == "0" then return "0" end
  if string.sub(s, 1, 1) == "-" then return string.sub(s, 2) end
  return "-" .. s
end

-- a + b on canonical decimal strings, or nil when it leaves i64. Operands of
-- at most 15 characters are below 10^15 in magnitude: their sum is exact in
-- a double, so the digit-by-digit library is only needed for large values.
local function add(a, b)
  if #a < 16 and #b < 16 then
    return string.format('%d', tonumber(a) + tonumber(b))
  end
  return distkit_checked_add(a, b)
end

-- a - b, or nil on overflow (b may be i64::MIN: its negation is handled by
-- distkit_checked_add, which works on magnitudes)
local function sub(a, b)
  return add(a, neg(b))
end

-- "<epoch>:<count>" -> epoch, count
local function split(v)
  local at = string.find(v, ':', 1, true)
  return string.sub(v, 1, at - 1), string.sub(v, at + 1)
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local writes = flush_seq ~= "0"
for i = 0, nops - 1 do
  if ARGV[6 + i * 8] ~= 'get' then writes = true end
end

local m = redis.call('HMGET', meta, 'seq', 'cleared_at', 'check_at', 'h:' .. me, 'j:' .. me)
local seq
if writes then
  seq = redis.call('HINCRBY', meta, 'seq', 1)
else
  seq = tonumber(m[1]) or 0
end
local seq_s = string.format('%d', seq)
local cleared_at = m[2] or "0"
local check_at = tonumber(m[3]) or 0
local my_beat = tonumber(m[4])

-- The current epoch, cumulative and counted slice of a key, from its record
-- and this instance's entry as stored (false when missing): the epoch of
-- the record, else `cleared_at`; a stale or missing entry counts as "0".
local function current(record, stored)
  local epoch, total, slice = cleared_at, "0", "0"
  if record then epoch, total = split(record) end
  if stored then
    local entry_epoch, entry_slice = split(stored)
    if entry_epoch == epoch then slice = entry_slice end
  end
  return epoch, total, slice
end

-- An inc of `value` under the comparator (on the cumulative): "ok" with the
-- new cumulative and slice, or "nomatch" / "overflow" (nothing to write).
local function inc_values(total, slice, value, cmp, operand)
  if not distkit_matches(cmp, total, operand) then return "nomatch" end
  local new_total, new_slice = add(total, value), add(slice, value)
  if new_total and new_slice then return "ok", new_total, new_slice end
  return "overflow"
end

-- 0. Fast path: one inc or get on a key this instance already has an entry
-- for, with no heartbeat, scan or flush due. It does what the steps below
-- would do in that case (they would all find nothing to do but the op),
-- without setting up their state; any other case goes on below.
if nops == 1 and flush_seq == "0" and ARGV[13] == "0" and my_beat
    and now - my_beat < beat_every and now <= check_at
    and (ARGV[6] == 'inc' or ARGV[6] == 'get') then
  local key = ARGV[7]
  local entry = me .. ':' .. key
  local stored = redis.call('HMGET', data, key, entry)
  if stored[2] then
    local epoch, total, slice = current(stored[1], stored[2])
    local status = "ok"
    if ARGV[6] == 'inc' then
      local new_total, new_slice
      status, new_total, new_slice = inc_values(total, slice, ARGV[8], ARGV[9], ARGV[10])
      if status == "ok" then
        redis.call('HSET', data, key, epoch .. ':' .. new_total, entry, epoch .. ':' .. new_slice)
        total, slice = new_total, new_slice
      end
    end
    return { 0, seq, 0, { { status, total, slice, epoch } }, 0, tonumber(m[5]) or 0 }
  end
end

local meta_updates = {}

-- 1. Heartbeat. An instance missing from `instances` (no h:<id>) is new or
-- was declared dead: its remaining entries stay (they are still counted)
-- and any cleanup of them stops; entries already removed are restored from
-- its local memory.
local rejoined = 0
local joined = tonumber(m[5]) or 0
if not my_beat then
  rejoined = 1
  redis.call('ZREM', dead, me)
  joined = redis.call('HINCRBY', meta, 'joins', 1)
  meta_updates[#meta_updates + 1] = 'j:' .. me
  meta_updates[#meta_updates + 1] = string.format('%d', joined)
end
if not my_beat or now - my_beat >= beat_every then
  redis.call('ZADD', instances, now, me)
  meta_updates[#meta_updates + 1] = 'h:' .. me
  meta_updates[#meta_updates + 1] = string.format('%d', now)
end

-- Removes `entries` (all of instance `victim`), subtracting each current
-- non-zero slice from its cumulative in the same step.
local function remove_entries(victim, entries)
  local keys = {}
  for n, entry in ipairs(entries) do keys[n] = string.sub(entry, #victim + 2) end
  local stored = redis.call('HMGET', data, unpack(entries))
  local records = redis.call('HMGET', data, unpack(keys))
  local updated = {}
  for n, value in ipairs(stored) do
    local record = records[n]
    if value and record then
      local epoch, slice = split(value)
      local key_epoch, total = split(record)
      if slice ~= "0" and epoch == key_epoch then
        local result = sub(total, slice)
        if not result then
          -- the other slices sum past i64: saturate (documented limit)
          if string.sub(slice, 1, 1) == "-" then result = I64_MAX else result = I64_MIN end
        end
        -- one entry per key and instance: a key appears once in `entries`
        updated[#updated + 1] = keys[n]
        updated[#updated + 1] = key_epoch .. ':' .. result
      end
    end
  end
  if #updated > 0 then redis.call('HSET', data, unpack(updated)) end
  redis.call('HDEL', data, unpack(entries))
  redis.call('ZREM', contrib, unpack(entries))
end

-- 2. When due: expired instances move to the dead queue (at most 16 per
-- call), then bounded cleanup removes at most `budget` entries of dead
-- instances. `check_at` becomes "0" while the queue is not empty, else the
-- time the oldest stored heartbeat expires.
if now > check_at then
  local expired = redis.call('ZRANGEBYSCORE', instances, '-inf',
    '(' .. string.format('%d', now - expiry), 'LIMIT', 0, 16)
  for _, id in ipairs(expired) do
    redis.call('ZREM', instances, id)
    redis.call('ZADD', dead, now, id)
    redis.call('HDEL', meta, 'h:' .. id, 'j:' .. id)
  end
  local remaining = budget
  local rounds = 0
  local queued = false
  while remaining > 0 and rounds < 64 do
    rounds = rounds + 1
    local victim = redis.call('ZRANGE', dead, 0, 0)[1]
    if not victim then break end
    queued = true
    local entries = redis.call('ZRANGEBYLEX', contrib, '[' .. victim .. ':',
      '(' .. victim .. ';', 'LIMIT', 0, remaining)
    if #entries > 0 then remove_entries(victim, entries) end
    if #entries < remaining then
      redis.call('ZREM', dead, victim)
      redis.call('HDEL', flushes, victim)
      queued = false
    end
    remaining = remaining - #entries
  end
  if queued or redis.call('ZCARD', dead) > 0 then
    check_at = 0
  else
    local oldest = redis.call('ZRANGE', instances, 0, 0, 'WITHSCORES')[2]
    check_at = (tonumber(oldest) or now) + expiry
  end
  meta_updates[#meta_updates + 1] = 'check_at'
  meta_updates[#meta_updates + 1] = string.format('%d', check_at)
end
if #meta_updates > 0 then redis.call('HSET', meta, unpack(meta_updates)) end

-- 3. Lax flush idempotency. `prior_flush` is the last flush sequence
-- applied before this run, read for a flush and for a run whose ops carry a
-- pending flush.
local duplicate = 0
local prior_flush
if flush_seq ~= "0" then
  prior_flush = tonumber(redis.call('HGET', flushes, me)) or 0
  if prior_flush >= tonumber(flush_seq) then
    duplicate = 1
  else
    redis.call('HSET', flushes, me, flush_seq)
  end
end
if not prior_flush then
  for i = 0, nops - 1 do
    if ARGV[6 + i * 8 + 7] ~= "0" then
      prior_flush = tonumber(redis.call('HGET', flushes, me)) or 0
      break
    end
  end
end
local function applied_before_this_run(seq)
  return (prior_flush or 0) >= tonumber(seq)
end

-- Operations read and write `data` through a cache: one HMGET (per 1 000
-- fields) reads every key record and entry the batch names, and one HSET
-- (per 1 000 fields) writes back what changed, at the end or before an op
-- that works on `data` directly (clear, cleari). Later ops of a batch see
-- the writes of earlier ones, as if each had run alone.
local cache = {}       -- field -> value, or false when missing
local dirty = {}       -- field -> true when written
local dirty_list = {}  -- written fields, in order
local new_entries = {} -- entries to add to `contrib`

local CHUNK = 1000

local function field(f)
  local v = cache[f]
  if v == nil then
    v = redis.call('HGET', data, f)
    cache[f] = v
  end
  return v
end

local function put(f, v)
  if not dirty[f] then
    dirty[f] = true
    dirty_list[#dirty_list + 1] = f
  end
  cache[f] = v
end

local function write_back()
  local args = {}
  for _, f in ipairs(dirty_list) do
    args[#args + 1] = f
    args[#args + 1] = cache[f]
    if #args >= 2 * CHUNK then
      redis.call('HSET', data, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('HSET', data, unpack(args)) end
  args = {}
  for _, entry in ipairs(new_entries) do
    args[#args + 1] = 0
    args[#args + 1] = entry
    if #args >= 2 * CHUNK then
      redis.call('ZADD', contrib, 'NX', unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZADD', contrib, 'NX', unpack(args)) end
  dirty, dirty_list, new_entries = {}, {}, {}
end

local function prefetch()
  local fields, seen = {}, {}
  local function want(f)
    if not seen[f] then
      seen[f] = true
      fields[#fields + 1] = f
    end
  end
  for i = 0, nops - 1 do
    local base = 6 + i * 8
    local op = ARGV[base]
    if op ~= 'clear' and op ~= 'cleari' then
      want(ARGV[base + 1])
      want(me .. ':' .. ARGV[base + 1])
    end
  end
  for from = 1, #fields, CHUNK do
    local last = math.min(from + CHUNK - 1, #fields)
    local values = redis.call('HMGET', data, unpack(fields, from, last))
    for n = from, last do cache[fields[n]] = values[n - from + 1] end
  end
end

-- Loads the cumulative of `key` and this instance's entry: its counted
-- slice ("0" for a stale or missing entry). A missing entry whose local
-- epoch is current is restored here: dead-instance cleanup removed it while
-- this instance still holds it in its local memory. The local slice is what
-- the instance last saw confirmed; an unconfirmed lax flush (`pending`)
-- that Redis had applied before this run was in the removed entry too, so
-- its delta is restored with it (and a flush that had not been applied is
-- applied by its own resend, on top of the restored slice).
local function load(key, local_slice, local_epoch, pending)
  local entry = me .. ':' .. key
  local record, stored = field(key), field(entry)
  local epoch, total, slice = current(record, stored)
  local state = { entry = entry, key = key, epoch = epoch, total = total,
    slice = slice, exists = stored ~= false }
  if not stored and local_epoch == epoch then
    if pending ~= "0" then
      local seq, delta = split(pending)
      if applied_before_this_run(seq) then
        local_slice = add(local_slice, delta) or local_slice
      end
    end
    if local_slice ~= "0" then
      local restored = add(total, local_slice)
      if restored then
        put(key, epoch .. ':' .. restored)
        put(entry, epoch .. ':' .. local_slice)
        new_entries[#new_entries + 1] = entry
        state.total, state.slice, state.exists = restored, local_slice, true
      end
    end
  end
  return state
end

-- Writes the entry (in the state's epoch) and the cumulative.
local function write(state, slice, total)
  put(state.key, state.epoch .. ':' .. total)
  put(state.entry, state.epoch .. ':' .. slice)
  if not state.exists then
    new_entries[#new_entries + 1] = state.entry
    state.exists = true
  end
  state.slice, state.total = slice, total
end

-- Sets to 0 one page of this instance's current-epoch slices, from `cursor`
-- (exclusive).
local function clear_page(cursor)
  local lo = '[' .. me .. ':'
  if cursor ~= "" then lo = '(' .. cursor end
  local entries = redis.call('ZRANGEBYLEX', contrib, lo, '(' .. me .. ';', 'LIMIT', 0, budget)
  if #entries > 0 then
    local keys = {}
    for n, entry in ipairs(entries) do keys[n] = string.sub(entry, #me + 2) end
    local stored = redis.call('HMGET', data, unpack(entries))
    local records = redis.call('HMGET', data, unpack(keys))
    local updated = {}
    for n, value in ipairs(stored) do
      if value then
        -- a stale entry counts as 0: nothing to take away
        local epoch, total, slice = current(records[n], value)
        local others = slice ~= "0" and sub(total, slice)
        if others then
          updated[#updated + 1] = keys[n]
          updated[#updated + 1] = epoch .. ':' .. others
          updated[#updated + 1] = entries[n]
          updated[#updated + 1] = epoch .. ':0'
        end
      end
    end
    if #updated > 0 then redis.call('HSET', data, unpack(updated)) end
  end
  local next_cursor = ""
  if #entries == budget then next_cursor = entries[#entries] end
  return { "ok", next_cursor }
end

prefetch()
local results = {}
for i = 0, nops - 1 do
  local base = 6 + i * 8
  local op, key, value = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local cmp, operand = ARGV[base + 3], ARGV[base + 4]
  local local_slice, local_epoch = ARGV[base + 5], ARGV[base + 6]
  local pending = ARGV[base + 7]

  if op == 'clear' then
    -- earlier writes of the batch are wiped with everything else
    dirty, dirty_list, new_entries = {}, {}, {}
    redis.call('UNLINK', data, contrib)
    redis.call('HSET', meta, 'cleared_at', seq_s)
    cleared_at = seq_s
    cache = {}
    results[#results + 1] = { "ok", "0", "0", seq_s }
  elseif op == 'cleari' then
    write_back()
    results[#results + 1] = clear_page(value)
    cache = {}
  else
    local state = load(key, local_slice, local_epoch, pending)
    local reported = state
    local status = "ok"
    if duplicate == 1 or op == 'get' then
      -- read only (a retried flush that already landed is not applied again)
    elseif op == 'inc' then
      local total, slice
      status, total, slice = inc_values(state.total, state.slice, value, cmp, operand)
      if status == "ok" then write(state, slice, total) end
    elseif op == 'seti' then
      if not distkit_matches(cmp, state.slice, operand) then
        status = "nomatch"
      else
        local others = sub(state.total, state.slice)
        local total = others and add(others, value)
        if total then write(state, value, total) else status = "overflow" end
      end
    elseif op == 'deli' then
      local removed = state.slice
      local others = sub(state.total, removed)
      if others then
        write(state, "0", others)
        state.slice = removed
      else
        status = "overflow"
      end
    elseif op == 'set' then
      if not distkit_matches(cmp, state.total, operand) then
        status = "nomatch"
      else
        state.epoch = seq_s
        write(state, value, value)
      end
    elseif op == 'del' then
      local old = state.total
      state.epoch = seq_s
      write(state, "0", "0")
      state.total = old
    else
      return redis.error_reply('distkit:unknown icounter op ' .. tostring(op))
    end
    results[#results + 1] = { status, reported.total, reported.slice, reported.epoch }
  end
end
write_back()

local flushed = 0
if prior_flush then
  flushed = prior_flush
  if flush_seq ~= "0" and duplicate == 0 then flushed = tonumber(flush_seq) end
end
return { rejoined, seq, duplicate, results, flushed, joined }
