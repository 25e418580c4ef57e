-- wrk script: the redeem as etcd would do it — a transaction that puts the
-- credential's key only if it was never created (create_revision == 0), one
-- fresh key per request, through etcd's JSON gateway (/v3/kv/txn).
-- Latency of every request is what wrk reports; succeeded/failed counts go to
-- the summary via the response() hook.
local b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({'', '==', '='})[#data % 3 + 1])
end

local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = (args[1] or "run") .. "-" .. tid .. "-"
  n = 0
  ok = 0
  dup = 0
  used = b64("used")
end

function request()
  n = n + 1
  local k = b64(prefix .. n)
  local body = '{"compare":[{"key":"' .. k .. '","result":"EQUAL","target":"CREATE",' ..
               '"create_revision":"0"}],"success":[{"request_put":{"key":"' .. k ..
               '","value":"' .. used .. '"}}]}'
  return wrk.format("POST", "/v3/kv/txn", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 200 and body:find('"succeeded":true', 1, true) then ok = ok + 1 else dup = dup + 1 end
end

function done(summary, latency, requests)
  local o, d = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); d = d + t:get("dup") end
  io.write(string.format("txn_succeeded %d\ntxn_other %d\n", o, d))
end
