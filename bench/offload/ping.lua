-- /ping at a steady, light rate: each connection waits delay_ms between
-- its requests, so the latency measured is that of an occasional request
-- arriving while /work keeps the server busy (not of a saturating flood).
local delay_ms = tonumber(os.getenv("PING_DELAY_MS") or "10")

function delay()
    return delay_ms
end

function done(summary, latency, requests)
    -- Every latency and its count (wrk's latency(i): the i-th distinct
    -- value in microseconds and how many requests took it), so that runs
    -- can be merged into one distribution (bench/offload/shootout.py).
    local hist = {}
    for i = 1, #latency do
        local us, count = latency(i)
        hist[#hist + 1] = string.format("%d:%d", us, count)
    end
    io.write("HIST ", table.concat(hist, ","), "\n")
    local e = summary.errors
    io.write(string.format(
        'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
        '"max_us":%d,"errors":%d}\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max,
        e.connect + e.read + e.write + e.status + e.timeout))
end
