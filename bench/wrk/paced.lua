-- wrk pacing script: each wrk thread sends on its own fixed timeline of `rate` requests per second
-- (wrk -s paced.lua URL -- RATE_PER_THREAD). wrk calls delay() before every request of every
-- connection; the thread's next slot goes to whichever connection asks first, so while every
-- connection waits for an answer no request is sent and wrk measures each from its actual send
-- (wrk 4 has no correction for coordinated omission). wrk takes the delay in whole milliseconds.
-- done() prints the latency histogram (microseconds, value and count) as one JSON line.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } inferbox_timespec;
int clock_gettime(int clock, inferbox_timespec *tp);
]]
local clock = ffi.new("inferbox_timespec")
local CLOCK_MONOTONIC = 1

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

wrk.method = "POST"
wrk.body = '{"instances": [[6.8, 2.8, 4.8, 1.4]]}'
wrk.headers["Content-Type"] = "application/json"

local interval_ms = nil
local start_ms = nil
local slots = 0

function init(args)
  local rate = tonumber(args[1] or "0")
  if rate and rate > 0 then
    interval_ms = 1000 / rate
  end
end

function delay()
  if interval_ms == nil then
    return 0
  end
  local now = now_ms()
  if start_ms == nil then
    start_ms = now
  end
  local due = start_ms + slots * interval_ms
  slots = slots + 1
  if due <= now then
    return 0
  end
  return due - now
end

function done(summary, latency, requests)
  local pairs_out = {}
  for i = 1, #latency do
    local value, count = latency(i)
    pairs_out[#pairs_out + 1] = string.format("[%d,%d]", value, count)
  end
  local errors = summary.errors
  io.write(string.format(
    '{"inferbox_wrk": 1, "requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, "latency_us": [%s]}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    table.concat(pairs_out, ",")))
end
