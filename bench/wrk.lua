-- wrk script of the bench (bench/wrk.py): requests come from a file written by the bench, one per
-- line: method TAB path TAB authorization TAB body (empty fields allowed). Each thread cycles
-- through them from its own offset. Status codes are counted; done() prints one JSON line.
--
-- Latencies and the duration are measured here, on CLOCK_MONOTONIC, not taken from wrk: wrk 4
-- "corrects" its latency histogram for coordinated omission before done() sees it (every
-- latency of at least twice the mean interval per connection adds made-up samples down to that
-- interval: one 2.6 s answer at one connection became ~400 samples and p95 1.86 s), and it
-- times both the run and each request on the wall clock, which this machine's clock steps move.
-- wrk.py runs one connection per thread, so a thread's responses answer its own requests in
-- turn and request() → response() is one request's latency. done() merges the threads' answers
-- into a histogram (whole µs → count); the percentiles are computed by bench/wrk.py.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
   return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local requests = {}
local position = 0
local sent_at = nil
local count = 0
first_sent = nil -- when this thread sent the first request it had answered
answered = {} -- per response: when it came (µs, monotonic), how long it took (µs), its status
took = {}
codes = {}

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
   sent_at = now_us()
   return requests[position]
end

function response(status, headers, body)
   local now = now_us()
   count = count + 1
   answered[count] = now
   took[count] = now - sent_at
   codes[count] = status
   if first_sent == nil then first_sent = sent_at end
end

-- The figures count the answers that came while every thread was sending: from the moment the
-- last thread sent its first request (wrk starts the threads one after another, each after
-- reading the request file) to the last answer of the thread that stopped first.
function done(summary, latency, requests)
   local runs, from, to = {}, nil, nil
   for _, thread in ipairs(threads) do
      local run = {
         first = thread:get("first_sent"),
         answered = thread:get("answered"),
         took = thread:get("took"),
         codes = thread:get("codes"),
      }
      if run.first ~= nil then
         local last = run.answered[#run.answered]
         if from == nil or run.first > from then from = run.first end
         if to == nil or last < to then to = last end
         table.insert(runs, run)
      end
   end
   local counts, histogram, answers = {}, {}, 0
   for _, run in ipairs(runs) do
      for i, at in ipairs(run.answered) do
         if at >= from and at <= to then
            local code, us = run.codes[i], math.floor(run.took[i])
            counts[code] = (counts[code] or 0) + 1
            histogram[us] = (histogram[us] or 0) + 1
            answers = answers + 1
         end
      end
   end
   local parts, bins = {}, {}
   for code, count in pairs(counts) do
      table.insert(parts, string.format('"%d":%d', code, count))
   end
   for us, count in pairs(histogram) do
      table.insert(bins, string.format('"%d":%d', us, count))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH-JSON {"duration_s":%.6f,"wall_duration_s":%.6f,"requests":%d,"socket_errors":%d,'
         .. '"timeouts":%d,"statuses":{%s},"latency_us":{%s}}\n',
      from and math.max(0, to - from) / 1e6 or 0, summary.duration / 1e6, answers,
      e.connect + e.read + e.write, e.timeout, table.concat(parts, ","), table.concat(bins, ",")))
end
