-- Give back what one check charged, when another shard's limit denied the same request
-- (Redis Cluster: a request's limits in several slots are checked with one call per
-- slot, and a request denied anywhere must leave every count as it was).
--
-- KEYS[i]: a counter key the check charged (never a ban key).
-- ARGV[1]: now ("" for Redis's clock, see clock.lua); ARGV[2]: the charged check's own
--   now, in microseconds (it names the window the charge went to); ARGV[3]: the cost.
-- ARGV[4 + 4*(i-1) ...]: check.lua's first four arguments of the limit: algorithm (1
--   gcra, 2 rolling window, 3 fixed), capacity, period in microseconds, then the emission
--   interval in microseconds (gcra) or the number of sub-windows (rolling window).
-- Returns the number of keys given back to.

local charged_at = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local given = 0

local function keep(key, value)
  redis.call("SET", key, value, "KEEPTTL")
  given = given + 1
end

local function gcra(key, raw, interval)
  local tat = tonumber(raw) - interval * cost
  if tat <= now then
    redis.call("DEL", key)
    given = given + 1
  else
    redis.call("SET", key, string.format("%.0f", tat), "PX", math.ceil((tat - now) / 1000))
    given = given + 1
  end
end

local function fixed(key, raw, period)
  local index, count = string.match(raw, "^(%d+):(%d+)$")
  if tonumber(index) ~= math.floor(charged_at / period) then return end
  keep(key, string.format("%s:%.0f", index, math.max(0, tonumber(count) - cost)))
end

-- The ring (ring.lua): the charge went to the slot of its own sub-window, which is
-- the newest slot if no later charge moved the ring on, else an older one; a slot that
-- has left the ring has nothing left to give back.
local function sliding(key, raw, period, subwindows)
  local slots = subwindows + 1
  local last, counts = ring_decode(raw, slots)
  if not last then return end
  local size = math.floor(period / subwindows)
  local slot = math.floor(charged_at / size) - math.floor(last / size) + slots
  if slot < 1 or slot > slots then return end
  counts[slot] = math.max(0, counts[slot] - cost)
  keep(key, ring_encode(last, counts))
end

for i = 1, #KEYS do
  local base = 4 + 4 * (i - 1)
  local raw = redis.call("GET", KEYS[i])
  if raw then
    local algorithm = tonumber(ARGV[base])
    if algorithm == 1 then
      gcra(KEYS[i], raw, tonumber(ARGV[base + 3]))
    elseif algorithm == 2 then
      sliding(KEYS[i], raw, tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]))
    elseif algorithm == 3 then
      fixed(KEYS[i], raw, tonumber(ARGV[base + 2]))
    end
  end
end
return given
