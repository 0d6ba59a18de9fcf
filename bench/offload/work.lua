-- /work back to back on every connection: keeps every worker busy.
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
        'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        e.connect + e.read + e.write + e.status + e.timeout))
end
