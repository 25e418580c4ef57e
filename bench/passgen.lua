-- wrk script: issues a pass for tickets PREFIX1..PREFIXN through the API
-- (POST /tickets/{id}/methods/pass/generate, each one a Raft write) and
-- appends every reply to OUT, one per line; once the ids run out it polls
-- /healthz until wrk's duration ends. Args: PREFIX N TOKEN OUT. Run it
-- with one thread (-t1): the ids are handed out in order.
function init(args)
  prefix, total, token = args[1], tonumber(args[2]), args[3]
  out = io.open(args[4], "w")
  i = 0
end

function request()
  i = i + 1
  if i <= total then
    return wrk.format("POST", "/tickets/" .. prefix .. i .. "/methods/pass/generate",
                      {["Authorization"] = "Bearer " .. token}, "")
  end
  return wrk.format("GET", "/healthz")
end

function response(status, headers, body)
  if status == 200 and body:find('"pass_id"', 1, true) then
    out:write(body, "\n")
    out:flush()
  end
end
