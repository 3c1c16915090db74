-- distkit lib: window
--
-- Sliding windows of counting buckets kept in one hash, with running totals,
-- for the ratelimit scripts. Defines only local functions.
--
-- A window has one or more series (absolute: admitted units; suppressed:
-- admitted and observed units), each named by a field prefix p ('' or 'a',
-- 'o'). Fields of the hash:
--   <p><i>  units of series p in bucket i
--   <p>t    units of series p in the buckets not yet pruned (running total)
--   h       pruning cursor: buckets below h hold nothing any more
-- Bucket i covers [i*bucket_ms, (i+1)*bucket_ms) of Redis server time; at
-- bucket c the window is buckets c-n+1 .. c.
--
-- Invariants: for every series, <p>t = sum of <p><i> over i >= h; every
-- <p><i> with i < h is deleted; counts are integers below 2^53 (the client
-- guarantees it), exact as Lua numbers, and written either with HINCRBY or
-- with HSET of the exact value formatted by '%d'. The hash expires at
-- (c+n+1)*bucket_ms, set when bucket c gets its first units, so it outlives
-- its newest bucket's stay in the window and no cleanup loop is needed.
-- While the hash lives, h >= (newest bucket) - n + 1, so a call prunes at
-- most n buckets, and each bucket is pruned once.
--
-- Use: w = distkit_window_open(...); read w.totals; distkit_window_add(...);
-- distkit_window_commit(w) before returning (writes everything changed in
-- one HSET).

-- Opens the window of `key` at Redis server time: reads the running totals
-- and the current bucket's counts (one HMGET), and prunes the buckets that
-- left the window since the last call (one HMGET and one HDEL of at most n
-- fields per series, once per bucket of time).
-- Returns a table w: w.now_ms, w.current, w.oldest, w.totals[s] (units of
-- series s = position in `prefixes`, in the window).
local function distkit_window_open(key, prefixes, bucket_ms, n)
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local current = math.floor(now_ms / bucket_ms)
  local w = {
    key = key, prefixes = prefixes, bucket_ms = bucket_ms, n = n,
    now_ms = now_ms, current = current, oldest = current - n + 1,
    totals = {}, counts = {}, dirty = {}, exists = false, cursor = false,
    fresh = false,
  }
  local series = #prefixes
  local fields = {'h'}
  for s, p in ipairs(prefixes) do
    fields[s + 1] = p .. 't'
    fields[series + s + 1] = p .. current
  end
  local values = redis.call('HMGET', key, unpack(fields))
  for s = 1, series do
    w.totals[s] = tonumber(values[s + 1]) or 0
    w.counts[s] = tonumber(values[series + s + 1]) or 0
  end
  local h = tonumber(values[1])
  if h == nil then
    w.cursor = true
    return w
  end
  w.exists = true
  if h < w.oldest then
    local stale = {}
    for _, p in ipairs(prefixes) do
      for i = h, w.oldest - 1 do stale[#stale + 1] = p .. i end
    end
    local counts = redis.call('HMGET', key, unpack(stale))
    local per_series = w.oldest - h
    for s = 1, series do
      local gone = 0
      for j = (s - 1) * per_series + 1, s * per_series do
        gone = gone + (tonumber(counts[j]) or 0)
      end
      if gone ~= 0 then
        w.totals[s] = w.totals[s] - gone
        w.dirty[prefixes[s] .. 't'] = w.totals[s]
      end
    end
    redis.call('HDEL', key, unpack(stale))
    w.cursor = true
  end
  return w
end

-- Adds `units` (may be negative, for hand-backs) to series s in live bucket
-- `index` and to its total. Changes to the current bucket and the totals
-- are written by distkit_window_commit; an older live bucket is changed at
-- once (hand-backs only).
local function distkit_window_add(w, s, index, units)
  local p = w.prefixes[s]
  if index == w.current then
    if w.counts[s] == 0 and units > 0 then w.fresh = true end
    w.counts[s] = w.counts[s] + units
    w.dirty[p .. index] = w.counts[s]
  else
    redis.call('HINCRBY', w.key, p .. index, units)
  end
  w.totals[s] = w.totals[s] + units
  w.dirty[p .. 't'] = w.totals[s]
end

-- Writes what changed (one HSET, nothing if nothing changed), and sets the
-- expiry when the current bucket got its first units.
local function distkit_window_commit(w)
  local args = {}
  for field, value in pairs(w.dirty) do
    args[#args + 1] = field
    args[#args + 1] = string.format('%d', value)
  end
  if #args == 0 and not w.exists then return end
  if w.cursor then
    args[#args + 1] = 'h'
    args[#args + 1] = string.format('%d', w.oldest)
  end
  if #args > 0 then redis.call('HSET', w.key, unpack(args)) end
  if w.fresh then
    redis.call('PEXPIREAT', w.key, (w.current + w.n + 1) * w.bucket_ms)
  end
end

-- Units of series s in live bucket `index` (0 outside the window).
local function distkit_window_count(w, s, index)
  if index < w.oldest or index > w.current then return 0 end
  if index == w.current then return w.counts[s] end
  return tonumber(redis.call('HGET', w.key, w.prefixes[s] .. index)) or 0
end

-- Takes back up to `units` of series s from bucket `index` (a hybrid
-- instance returning the unused part of a lease): only while that bucket
-- is live, and never below 0.
local function distkit_window_take_back(w, s, index, units)
  if units <= 0 then return end
  local back = math.min(units, distkit_window_count(w, s, index))
  if back > 0 then distkit_window_add(w, s, index, -back) end
end

-- Units of series s per live bucket, oldest first (one HMGET of n - 1
-- fields, plus the current bucket as changed so far; for refusals, which
-- need the buckets in order).
local function distkit_window_buckets(w, s)
  local counts = {}
  if w.current > w.oldest then
    local fields = {}
    for i = w.oldest, w.current - 1 do fields[#fields + 1] = w.prefixes[s] .. i end
    local values = redis.call('HMGET', w.key, unpack(fields))
    for j = 1, #fields do counts[j] = tonumber(values[j]) or 0 end
  end
  counts[#counts + 1] = w.counts[s]
  return counts
end

-- Ms until the oldest buckets holding `need` units (of `counts`, from
-- distkit_window_buckets) have left the window; 0 if need <= 0.
local function distkit_window_freed_after(w, counts, need)
  if need <= 0 then return 0 end
  local freed = 0
  for j = 1, #counts do
    freed = freed + counts[j]
    if freed >= need then
      return (w.oldest + j - 1 + w.n) * w.bucket_ms - w.now_ms
    end
  end
  return 0
end

-- Ms until the newest non-empty bucket of `counts` leaves the window.
local function distkit_window_reset_after(w, counts)
  for j = #counts, 1, -1 do
    if counts[j] > 0 then
      return (w.oldest + j - 1 + w.n) * w.bucket_ms - w.now_ms
    end
  end
  return 0
end

-- Ms until the current bucket leaves the window (reset after an admission).
local function distkit_window_current_reset_after(w)
  return (w.current + w.n) * w.bucket_ms - w.now_ms
end
