-- Shared preamble of every script (load_script puts it first): the time in microseconds,
-- ARGV[1] if a test gave one, else Redis's own clock.
local now
if ARGV[1] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
