-- wrk script for the flashgate storm benchmark (see benches/storm.sh).
-- Each request is a buy by the next user in the token file, so the edge sees a crowd of
-- distinct logged-in users. Answers are counted by status and printed at the end.

local tokens = {}
local next_token = 1
counts = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
  -- Threads start at different users.
  next_token = (math.random(#tokens))
end

function request()
  local t = tokens[next_token]
  next_token = next_token % #tokens + 1
  return wrk.format("POST", nil, { ["Authorization"] = "Bearer " .. t }, nil)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for status, n in pairs(c) do
      total[status] = (total[status] or 0) + n
    end
  end
  io.write("status counts:")
  for status, n in pairs(total) do
    io.write(string.format(" %d=%d", status, n))
  end
  io.write("\n")
  io.write(string.format("requests/s: %.0f  p50: %.2f ms  p99: %.2f ms  max: %.2f ms\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
