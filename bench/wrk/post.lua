-- wrk script of scripts/bench-load: the same POST to every server.
-- BENCH_BODY is the JSON body; BENCH_TOKEN, when set, is sent as a bearer
-- token (to every server, so all parse the same request bytes).
-- At the end it prints one machine-readable line:
--   RESULT requests=… duration_us=… p50_us=… p99_us=… non2xx=… connect=… read=… write=… timeout=…
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or error("BENCH_BODY is not set")
wrk.headers["content-type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["authorization"] = "Bearer " .. token
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
