-- post_image.lua — wrk script of the image benchmark: POSTs the file
-- $IMAGE_FILE as the multipart/form-data field `image` (the tutorial's
-- `curl -F image=@FILE`) on every request, counts non-200 answers, and at
-- the end prints one JSON line prefixed "RESULT " (requests/s, p50, p99).
local f = assert(io.open(os.getenv("IMAGE_FILE"), "rb"))
local data = f:read("*a")
f:close()
local boundary = "----inferdbench7d0b3a"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="image"; filename="' .. os.getenv("IMAGE_FILE"):match("[^/]+$") .. '"\r\n' ..
    "Content-Type: application/octet-stream\r\n\r\n" .. data .. "\r\n--" .. boundary .. "--\r\n"

function done(summary, latency, requests)
    local e = summary.errors
    local seconds = summary.duration / 1e6
    io.write(string.format(
        'RESULT {"requests":%d,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"errors_status":%d,"errors_other":%d}\n',
        summary.requests, summary.requests / seconds, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
        e.status, e.connect + e.read + e.write + e.timeout))
end
