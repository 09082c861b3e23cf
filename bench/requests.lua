-- wrk script: POST pre-signed requests from a file, each request once per thread slice.
--
--   wrk -t1 -c4 -d5s -s bench/requests.lua http://127.0.0.1:8000 -- PATH FILE THREADS
--
-- FILE has one request a line: the Stripe-Signature header, a tab, the JSON body. With several
-- threads, thread k sends lines k, k+THREADS, ... so no two threads send the same event. After its
-- slice a thread starts again at its beginning (duplicates: make the file long enough).
-- done() prints one JSON line (microseconds) for bench/ingest.py.

local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local path, file, threads = args[1], args[2], tonumber(args[3] or "1")
  requests, index, n = {}, 0, 0
  for line in io.lines(file) do
    if n % threads == id then
      local signature, body = line:match("^([^\t]*)\t(.*)$")
      local headers = {["Content-Type"] = "application/json", ["Stripe-Signature"] = signature}
      requests[#requests + 1] = wrk.format("POST", path, headers, body)
    end
    n = n + 1
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.status, e.connect, e.read, e.write,
    e.timeout))
end
