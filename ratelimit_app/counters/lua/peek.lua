-- Prepended to check.lua (and its clock) to make the peek script: the same check, with
-- every write skipped, so that what a request would get now is read without charging
-- anything. A local `redis` hides the global one from the code that follows.
local real_redis = redis
local redis = {
  call = function(command, ...)
    if command == "SET" then return false end
    return real_redis.call(command, ...)
  end,
}
