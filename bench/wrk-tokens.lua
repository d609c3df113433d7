-- wrk script for bench/load.py: every request carries one token from a file, cycling through
-- it (one token a line); or no Authorization header at all when the file is "none".
-- Usage: wrk ... -s bench/wrk-tokens.lua URL -- TOKENS_FILE [START [HEADER [METHOD [BODY_FILE
--        [NAME:VALUE ...]]]]]
-- HEADER (default, or "": Authorization, sent as "Bearer TOKEN") names another header that
-- carries the token as it is, e.g. x-api-key for a usage plan's client token, or Cookie for a
-- whole "name=value" cookie.
-- METHOD (default GET), BODY_FILE (default "none": no body) and NAME:VALUE headers are the same
-- on every request (e.g. POST, a JSON body, "Content-Type:application/json", or
-- "Connection:close" for a new connection per request).
-- START (default 0) is where in the file to begin: load.py passes the count of requests already
-- sent to that target, so successive runs carry on through the file instead of starting over.
-- Requests are formatted once, in init(), so wrk's own cost per request is the same for one
-- token, 100k tokens and no token. done() prints one JSON line that load.py reads.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests = {}
local index = 1

function init(args)
  local file = args[1] or "none"
  local method = args[4] or "GET"
  if #method == 0 then
    method = "GET"
  end
  local body = nil
  if args[5] and #args[5] > 0 and args[5] ~= "none" then
    local f = assert(io.open(args[5], "rb"))
    body = f:read("*a")
    f:close()
  end
  local function headers(name, value)
    local out = {}
    for i = 6, #args do
      local n, v = string.match(args[i], "^([^:]+):(.*)$")
      if n then
        out[n] = v
      end
    end
    if name then
      out[name] = value
    end
    return out
  end
  local start = tonumber(args[2] or "0") or 0
  -- WRK_TOKENS_LIMIT (optional): format only this many lines from START on (a file of millions
  -- of one-use values takes wrk many seconds to format whole; load.py sets it to more than a run
  -- can send, and checks that no value repeats).
  local limit = tonumber(os.getenv("WRK_TOKENS_LIMIT") or "")
  local skip = 0
  if file == "none" then
    requests[1] = wrk.format(method, nil, headers(), body)
  else
    local header = args[3]
    for line in io.lines(file) do
      if limit and skip < start then
        skip = skip + 1
      elseif limit and #requests >= limit then
        break
      elseif #line > 0 then
        if header and #header > 0 then
          requests[#requests + 1] = wrk.format(method, nil, headers(header, line), body)
        else
          requests[#requests + 1] = wrk.format(method, nil, headers("Authorization", "Bearer " .. line), body)
        end
      end
    end
  end
  -- Threads start at different places in the file, so they do not send the same token at once.
  if limit then
    start = 0  -- the lines kept begin at START already
  end
  index = (start + id * 7919) % #requests + 1
end

function request()
  local r = requests[index]
  index = index + 1
  if index > #requests then
    index = 1
  end
  return r
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
