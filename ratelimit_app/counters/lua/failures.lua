-- Record one failure on several counters atomically. Mirrors counters/failures.py.
--
-- KEYS[2i-1], KEYS[2i]: failure count key and ban key of counter i.
-- ARGV[1]: now in microseconds, or "" for Redis's own clock.
-- ARGV[2 + 3*(i-1) ...]: threshold, window in microseconds, cooldown in microseconds.
-- Returns {now, then per counter: count, banned now (0/1), ban expiry}.

-- `now` comes from clock.lua.

local reply = {now}

local function banned_until(ban_key)
  local ban = redis.call("GET", ban_key)
  if not ban then return 0 end
  return tonumber(string.match(ban, "^%d+:(%d+)$")) or 0
end

local function record(failure_key, ban_key, threshold, window, cooldown)
  local raw = redis.call("GET", failure_key)
  local count, window_end = 0, now + window
  if raw then
    local c, e = string.match(raw, "^(%d+):(%d+)$")
    if tonumber(e) > now then
      count, window_end = tonumber(c), tonumber(e)
    end
  end
  if banned_until(ban_key) > now then
    -- Already banned: a failure that was in flight is not counted (one burst, one ban).
    return {count, 0, 0}
  end
  count = count + 1
  if count >= threshold then
    local expires_at = now + cooldown
    redis.call("DEL", failure_key)
    redis.call("SET", ban_key, string.format("%.0f:%.0f", now, expires_at),
      "PX", math.ceil(cooldown / 1000))
    return {count, 1, expires_at}
  end
  redis.call("SET", failure_key, string.format("%.0f:%.0f", count, window_end),
    "PX", math.max(1, math.ceil((window_end - now) / 1000)))
  return {count, 0, 0}
end

for i = 1, #KEYS / 2 do
  local base = 2 + 3 * (i - 1)
  local result = record(KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[base]),
    tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]))
  for j = 1, 3 do
    reply[#reply + 1] = result[j]
  end
end
return reply
