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
-- <p><i> with i < h is deleted; counts are integers only ever written with
-- HINCRBY (exact while below 2^53, which the client guarantees). The hash
-- expires at (c+n+1)*bucket_ms, set when bucket c gets its first units, so
-- it outlives its newest bucket's stay in the window and no cleanup loop is
-- needed. While the hash lives, h >= (newest bucket) - n + 1, so a call
-- prunes at most n buckets, and each bucket is pruned once.

-- Opens the window of `key` at Redis server time: prunes the buckets that
-- left it and reads the running totals. Commands: TIME, HMGET; plus HMGET,
-- HDEL, HINCRBY per series and HSET once per bucket of time (when buckets
-- left the window since the last call).
-- Returns a table w: w.now_ms, w.current, w.oldest, w.totals[s] (units of
-- series s = position in `prefixes`, in the window).
local function distkit_window_open(key, prefixes, bucket_ms, n)
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local current = math.floor(now_ms / bucket_ms)
  local w = {
    key = key, prefixes = prefixes, bucket_ms = bucket_ms, n = n,
    now_ms = now_ms, current = current, oldest = current - n + 1,
    totals = {}, exists = false,
  }
  local fields = {'h'}
  for s, p in ipairs(prefixes) do fields[s + 1] = p .. 't' end
  local values = redis.call('HMGET', key, unpack(fields))
  for s = 1, #prefixes do w.totals[s] = tonumber(values[s + 1]) or 0 end
  local h = tonumber(values[1])
  if h == nil then return w end
  w.exists = true
  if h < w.oldest then
    local stale = {}
    for _, p in ipairs(prefixes) do
      for i = h, w.oldest - 1 do stale[#stale + 1] = p .. i end
    end
    local counts = redis.call('HMGET', key, unpack(stale))
    local per_series = w.oldest - h
    for s = 1, #prefixes do
      local gone = 0
      for j = (s - 1) * per_series + 1, s * per_series do
        gone = gone + (tonumber(counts[j]) or 0)
      end
      if gone ~= 0 then
        w.totals[s] = redis.call('HINCRBY', key, prefixes[s] .. 't', -gone)
      end
    end
    redis.call('HDEL', key, unpack(stale))
    redis.call('HSET', key, 'h', w.oldest)
  end
  return w
end

-- Adds `units` (may be negative, for hand-backs) to series s in live bucket
-- `index` and to its total; returns the bucket's new count. The first units
-- of the current bucket set the hash's expiry.
local function distkit_window_add(w, s, index, units)
  if not w.exists then
    redis.call('HSET', w.key, 'h', w.oldest)
    w.exists = true
  end
  local p = w.prefixes[s]
  local count = redis.call('HINCRBY', w.key, p .. index, units)
  w.totals[s] = redis.call('HINCRBY', w.key, p .. 't', units)
  if index == w.current and units > 0 and count == units then
    redis.call('PEXPIREAT', w.key, (w.current + w.n + 1) * w.bucket_ms)
  end
  return count
end

-- Units of series s in live bucket `index` (0 outside the window).
local function distkit_window_count(w, s, index)
  if index < w.oldest or index > w.current then return 0 end
  return tonumber(redis.call('HGET', w.key, w.prefixes[s] .. index)) or 0
end

-- Units of series s per live bucket, oldest first (one HMGET of n fields;
-- for refusals, which need the buckets in order).
local function distkit_window_buckets(w, s)
  local fields = {}
  for i = w.oldest, w.current do fields[#fields + 1] = w.prefixes[s] .. i end
  local values = redis.call('HMGET', w.key, unpack(fields))
  local counts = {}
  for j = 1, #fields do counts[j] = tonumber(values[j]) or 0 end
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
