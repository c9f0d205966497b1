-- Publish a policy revision: the key only ever moves forward, so that a process with an
-- older snapshot (or an edit whose publication arrives late) cannot take it back.
--
-- KEYS[1]: the revision key. ARGV[1]: "" (the clock preamble), ARGV[2]: the revision,
-- ARGV[3]: TTL in seconds. Returns the revision the key holds afterwards.

local current = tonumber(redis.call("GET", KEYS[1]) or "0") or 0
local offered = tonumber(ARGV[2])
if offered > current then
  redis.call("SET", KEYS[1], ARGV[2], "EX", tonumber(ARGV[3]))
  return offered
end
redis.call("EXPIRE", KEYS[1], tonumber(ARGV[3]))
return current
