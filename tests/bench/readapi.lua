-- wrk's requests for the read API benchmark (tests/bench/bench_readapi.py): a closed loop of
-- proofs or audit pages of records spread over the ledger, a bearer token per wrk thread.
-- Arguments after `--`: the view (proofs, pages, fixed), the ledger's size, and the step between
-- consecutive records. The last line printed is the summary as JSON, read by the benchmark.
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  view, size, step = args[1], tonumber(args[2]), tonumber(args[3])
  i = (id or 0) * 104729 % size
  token = string.format("Bearer bench-token-%03d", id or 0)
end

function request()
  i = (i + step) % size
  local path
  if view == "pages" then
    path = string.format("/api/v1/audit?tenant=tenant-%d&limit=100&seqFrom=%d", i % 50, i + 1)
  else
    path = "/api/v1/proofs/" .. (i + 1)
  end
  return wrk.format("GET", path, {["Authorization"] = token})
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"seconds":%.6f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
