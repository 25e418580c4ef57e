-- wrk script: POST /verify with a different request body (a fresh, unused
-- credential) every time. Bodies come one per line from the file named by
-- the first script argument; the bearer token is the second. Each wrk thread
-- takes every nth line, so no two requests share a credential.
local bodies = {}
local idx = 0
local threads = 0
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  threads = counter
end

function init(args)
  local f = assert(io.open(args[1]))
  for line in f:lines() do bodies[#bodies + 1] = line end
  f:close()
  token = args[2]
  step = tonumber(args[3] or "1")
  idx = tid
end

function request()
  local body = bodies[(idx % #bodies) + 1]
  idx = idx + step
  return wrk.format("POST", "/verify", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end
