-- /ping at a steady, light rate: each connection waits delay_ms between
-- its requests, so the latency measured is that of an occasional request
-- arriving while /work keeps the server busy (not of a saturating flood).
local delay_ms = tonumber(os.getenv("PING_DELAY_MS") or "10")

function delay()
    return delay_ms
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
        '"max_us":%d,"errors":%d}\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max,
        e.connect + e.read + e.write + e.status + e.timeout))
end
