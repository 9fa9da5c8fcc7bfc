-- wrk script of the bench (bench/wrk.py): requests come from a file written by the bench, one per
-- line: method TAB path TAB authorization TAB body (empty fields allowed). Each thread cycles
-- through them from its own offset. Status codes are counted; done() prints one JSON line.
local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local requests = {}
local position = 0
statuses = {}

function init(args)
   local file = assert(io.open(args[1], "r"))
   for line in file:lines() do
      local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      if auth ~= "" then headers["Authorization"] = auth end
      if body == "" then
         body = nil
      else
         headers["Content-Type"] = "application/json"
      end
      table.insert(requests, wrk.format(method, path, headers, body))
   end
   file:close()
   position = ((id - 1) * 7919) % #requests
end

function request()
   position = position % #requests + 1
   return requests[position]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local counts = {}
   for _, thread in ipairs(threads) do
      for code, count in pairs(thread:get("statuses")) do
         counts[code] = (counts[code] or 0) + count
      end
   end
   local parts = {}
   for code, count in pairs(counts) do
      table.insert(parts, string.format('"%d":%d', code, count))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH-JSON {"duration_s":%.6f,"requests":%d,"socket_errors":%d,"timeouts":%d,'
         .. '"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"statuses":{%s}}\n',
      summary.duration / 1e6, summary.requests, e.connect + e.read + e.write, e.timeout,
      latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3,
      table.concat(parts, ",")))
end
