-- Shared by the wrk scripts: one machine-readable summary line,
--   WRK requests=N seconds=S rps=R p50_ms=A p99_ms=B non2xx=N errors=N
-- where errors counts connect/read/write errors and timeouts (requests
-- that timed out are not in the latency percentiles).
local report = {}

function report.done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d seconds=%.3f rps=%.2f p50_ms=%.3f p99_ms=%.3f non2xx=%d errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end

return report
