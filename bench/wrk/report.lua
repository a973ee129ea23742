-- wrk script of the bench runner (bench/src/wrk.rs embeds it and writes it next to the run).
--
-- Adds the headers the run needs from the environment (BENCH_AUTH: the whole Jellyfin
-- `Authorization` value, token included; BENCH_RANGE: a `Range` value) and, when wrk is done,
-- prints one machine-readable line that the runner parses. wrk's own `--latency` report is
-- printed above it and kept in build/bench/wrk.log.

local auth = os.getenv("BENCH_AUTH")
local range = os.getenv("BENCH_RANGE")
if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
end
if range and range ~= "" then
    wrk.headers["Range"] = range
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d "
            .. "connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.duration, summary.bytes,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
end
