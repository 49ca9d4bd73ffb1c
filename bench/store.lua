-- wrk script for the store path: every request asks for a URL no system
-- has seen, so each one is a miss that the cache must fetch and store.
-- run.sh passes a prefix unique to the system and round: wrk ... -- PREFIX
local prefix = "p"
local n = 0

function init(args)
  prefix = args[1] or tostring(os.time())
end

function request()
  n = n + 1
  return wrk.format("GET", "/store/" .. prefix .. "/" .. n)
end
