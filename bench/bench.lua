-- wrk script for `make bench` (bench/run.py). Every target gets the same request:
--   GET $BENCH_PATH with the session cookie and `X-CSRF: 1`.
-- BENCH_COOKIE       one cookie header value (static request: wrk's fast path)
-- BENCH_COOKIE_FILE  a file of cookie header values, one a line: each request takes the
--                    next one (round robin, each thread from its own offset)
-- BENCH_LIMIT        stop each thread after this many responses (0: run for -d)
-- done() prints one line `BENCH_JSON {...}` that bench/wrk.py parses.
local path = os.getenv("BENCH_PATH") or "/api/bench"
local cookie = os.getenv("BENCH_COOKIE")
local cookie_file = os.getenv("BENCH_COOKIE_FILE")
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0") or 0

wrk.method = "GET"
wrk.path = path
wrk.headers["X-CSRF"] = "1"
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end

local counter = 1
local threads = {}

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

if cookie_file and cookie_file ~= "" then
  local requests = {}
  local index = 0
  function init(args)
    for line in io.lines(cookie_file) do
      if line ~= "" then
        table.insert(requests, wrk.format("GET", path, { ["Cookie"] = line, ["X-CSRF"] = "1" }))
      end
    end
    index = ((offset or 1) * 7919) % #requests
  end
  function request()
    index = index % #requests + 1
    return requests[index]
  end
end

if limit > 0 then
  local seen = 0
  function response(status, headers, body)
    seen = seen + 1
    if seen >= limit then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,'
      .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
