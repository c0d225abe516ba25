-- post.lua — wrk script of the serving benchmark: POSTs the JSON body in the
-- file $BODY_FILE on every request, and at the end prints one JSON line
-- (prefixed "RESULT ") with requests/s, latency percentiles and errors, so
-- run.sh does not have to parse wrk's human-readable report.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
    local e = summary.errors
    local seconds = summary.duration / 1e6
    io.write(string.format(
        'RESULT {"requests":%d,"duration_s":%.3f,"rps":%.1f,' ..
        '"p50_ms":%.4f,"p90_ms":%.4f,"p99_ms":%.4f,"max_ms":%.4f,"mean_ms":%.4f,' ..
        '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
        summary.requests, seconds, summary.requests / seconds,
        latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
        latency.max / 1e3, latency.mean / 1e3,
        e.connect, e.read, e.write, e.status, e.timeout))
end
