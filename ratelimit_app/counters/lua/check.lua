-- Check and charge every limit of one request atomically, in one round trip.
-- Mirrors ratelimit_app/counters/algorithms.py exactly (integer microseconds).
--
-- KEYS[i]: the counter key of limit i; with ARGV[3] == "1" the last key is the policy
--   revision key instead, whose value is returned (processes learn of admin edits from
--   it without a database query).
-- ARGV[1]: now in microseconds, or "" to use Redis's own clock (production).
-- ARGV[2]: cost of the request.
-- ARGV[4 + 5*(i-1) ...]: algorithm (1 gcra, 2 sliding, 3 fixed, 4 ban check), capacity,
--   period in microseconds, emission interval in microseconds (gcra), the number of
--   sub-windows (sliding) or the extend flag (ban), shadow (0/1).
-- Returns {now, charged, policy revision (0 if unknown), then per limit: allowed, limit,
--   remaining, reset_after, retry_after}.

-- `now` comes from clock.lua.
local cost = tonumber(ARGV[2])
local limits = #KEYS
if ARGV[3] == "1" then
  limits = #KEYS - 1
end
local floor = math.floor

local function fdiv(a, b)
  return floor(a / b)
end

local function gcra(raw, capacity, period, interval)
  local offset = interval * capacity
  local tat = now
  if raw then
    tat = math.max(tonumber(raw), now)
  end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - offset
  if cost > capacity or allow_at > now then
    local retry = allow_at - now
    if cost > capacity then retry = period end
    local remaining = math.max(0, fdiv(offset - (tat - now), interval))
    return 0, capacity, remaining, tat - now, retry, nil, 0
  end
  local remaining = fdiv(offset - (new_tat - now), interval)
  return 1, capacity, remaining, new_tat - now, 0, string.format("%.0f", new_tat), new_tat - now
end

-- The ring's encoding (ring_encode, ring_decode, POW) comes from ring.lua.

-- When each slot stops counting (algorithms._ring_expiries): a slot's end plus the
-- window, the newest one `window` after the last admission.
local function ring_expiries(last, window, subwindows)
  local size = fdiv(window, subwindows)
  local newest = fdiv(last, size)
  local expiries = {}
  for i = 1, subwindows do expiries[i] = (newest + i) * size end
  expiries[subwindows + 1] = last + window
  return expiries
end

local function ring_wait(counts, expiries, excess)
  local freed = 0
  for i = 1, #counts do
    freed = freed + counts[i]
    if freed >= excess then return expiries[i] end
  end
end

local function ring_reset(counts, expiries, at)
  for i = #counts, 1, -1 do
    if counts[i] > 0 then return expiries[i] - at end
  end
  return 0
end

-- A rolling window: algorithms.sliding_window.
local function sliding(raw, rate, window, subwindows)
  local slots = subwindows + 1
  local size = fdiv(window, subwindows)
  if raw then
    -- Still in the newest sub-window: no count has expired, so the ring holds what it
    -- counts, and an admission rewrites the head only (ring.lua).
    local width, last, newest, older, head = ring_head(raw, slots)
    if width and last <= now + window then
      local at = math.max(now, last)
      local used = newest + older + cost
      if fdiv(at, size) == fdiv(last, size) and used <= rate and newest + cost < POW[width] then
        local tail = string.byte(raw, head)
        local ring = head_encode(width, at, newest + cost, tail) .. string.sub(raw, head + 1)
        return 1, rate, rate - used, window, 0, ring, at + window - now
      end
    end
  end
  local last, counts
  if raw then last, counts = ring_decode(raw, slots) end
  if not last or last > now + window then
    last, counts = now, {}
    for i = 1, slots do counts[i] = 0 end
  end
  local at = math.max(now, last)
  local expiries = ring_expiries(last, window, subwindows)
  local used = 0
  for i = 1, slots do
    if expiries[i] <= at then counts[i] = 0 end
    used = used + counts[i]
  end
  if cost > rate or used + cost > rate then
    local retry = window
    if cost <= rate then retry = ring_wait(counts, expiries, used + cost - rate) - at end
    return 0, rate, math.max(0, rate - used), ring_reset(counts, expiries, at), retry, nil, 0
  end
  local moved = fdiv(at, size) - fdiv(last, size)
  local ring = {}
  for i = 1, slots do ring[i] = counts[i + moved] or 0 end
  ring[slots] = ring[slots] + cost
  return 1, rate, rate - used - cost, window, 0, ring_encode(at, ring), at + window - now
end

local function fixed(raw, rate, window)
  local index = fdiv(now, window)
  local elapsed = now - index * window
  local count = 0
  if raw then
    local si, sc = string.match(raw, "^(%d+):(%d+)$")
    if tonumber(si) == index then count = tonumber(sc) end
  end
  local to_end = window - elapsed
  if cost > rate or count + cost > rate then
    local retry = to_end
    if cost > rate then retry = window end
    local reset = 0
    if count > 0 then reset = to_end end
    return 0, rate, rate - count, reset, retry, nil, 0
  end
  count = count + cost
  return 1, rate, rate - count, to_end, 0, string.format("%.0f:%.0f", index, count), to_end
end

local function ban(raw, threshold, cooldown, extend)
  if raw then
    local banned_at, expires_at = string.match(raw, "^(%d+):(%d+)$")
    banned_at, expires_at = tonumber(banned_at), tonumber(expires_at)
    if expires_at and expires_at > now then
      local state = nil
      if extend == 1 then
        expires_at = now + cooldown
        state = string.format("%.0f:%.0f", banned_at, expires_at)
      end
      return 0, threshold, 0, expires_at - now, expires_at - now, state, expires_at - now
    end
  end
  return 1, threshold, threshold, 0, 0, nil, 0
end

-- One read for every limit's key: a redis.call costs more than the arithmetic around
-- it. (The revision is read apart: in the same MGET, Redis's reuse of Lua argument
-- objects leaves the SET keys with larger allocations.) Figures go straight into
-- the reply: no table per limit.
local raws = redis.call("MGET", unpack(KEYS, 1, limits))
local revision = 0
if limits < #KEYS then
  revision = tonumber(redis.call("GET", KEYS[#KEYS]) or "0") or 0
end
local reply = {now, 1, revision}
local states, ttls, bans = {}, {}, {}
local charged = 1
for i = 1, limits do
  local base = 4 + 5 * (i - 1)
  local algorithm = tonumber(ARGV[base])
  local capacity = tonumber(ARGV[base + 1])
  local period = tonumber(ARGV[base + 2])
  local raw = raws[i]
  if not raw then raw = nil end
  local allowed, limit, remaining, reset, retry, state, ttl
  if algorithm == 1 then
    allowed, limit, remaining, reset, retry, state, ttl =
      gcra(raw, capacity, period, tonumber(ARGV[base + 3]))
  elseif algorithm == 2 then
    allowed, limit, remaining, reset, retry, state, ttl =
      sliding(raw, capacity, period, tonumber(ARGV[base + 3]))
  elseif algorithm == 4 then
    allowed, limit, remaining, reset, retry, state, ttl =
      ban(raw, capacity, period, tonumber(ARGV[base + 3]))
    bans[i] = true
  else
    allowed, limit, remaining, reset, retry, state, ttl = fixed(raw, capacity, period)
  end
  if allowed == 0 and ARGV[base + 4] ~= "1" then charged = 0 end
  -- The reply's figures sit where the limit's arguments sit in ARGV (three values first).
  reply[base], reply[base + 1], reply[base + 2], reply[base + 3], reply[base + 4] =
    allowed, limit, remaining, reset, retry
  states[i], ttls[i] = state, ttl
end
reply[2] = charged

-- A test's clock (ARGV[1]) may stand still while Redis's runs on: its keys live a minute
-- longer, so that a long burst at one frozen instant is not forgotten half-way by an
-- expiry on Redis's clock. Production (Redis's own clock) has no slack.
local test_slack = 0
if ARGV[1] ~= "" then
  test_slack = 60000
end
for i = 1, limits do
  -- An extended ban is stored even when the request is denied; limits only if charged.
  if states[i] and (charged == 1 or bans[i]) then
    -- Milliseconds, rounded up: a key never expires before its state is empty.
    redis.call("SET", KEYS[i], states[i], "PX", math.max(1, math.ceil(ttls[i] / 1000)) + test_slack)
  end
end
return reply
