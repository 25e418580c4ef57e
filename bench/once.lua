-- wrk script: POST /verify once with each request body of a file (one per
-- line, named by the first script argument; the bearer token is the
-- second), then stop sending: exactly one request per credential (wrk itself
-- runs until its duration; the caller stops it). Use one thread.
local bodies = {}
local sent, answered = 0, 0

function init(args)
  local f = assert(io.open(args[1]))
  for line in f:lines() do bodies[#bodies + 1] = line end
  f:close()
  token = args[2]
end

function request()
  sent = sent + 1
  local body = bodies[((sent - 1) % #bodies) + 1]
  return wrk.format("POST", "/verify", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= #bodies then wrk.thread:stop() end
end
