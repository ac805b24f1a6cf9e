-- wrk script: every request is an announce with its own info_hash and peer_id, drawn from
-- a fixed set of 64 torrents (the same set is whitelisted for opentracker).
local counter = 0
local hashes = {}

local function pct(bytes)
  return (bytes:gsub(".", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function sha_like(i)
  -- 20 bytes derived from i; must match run.py's info_hash(i)
  local s = ""
  for k = 0, 19 do
    s = s .. string.char((i * 31 + k * 7 + 13) % 256)
  end
  return s
end

init = function(args)
  for i = 0, 63 do
    hashes[i] = pct(sha_like(i))
  end
end

request = function()
  counter = counter + 1
  local ih = hashes[counter % 64]
  local pid = pct(string.format("-WR0001-%012d", counter % 100000))
  local port = 1024 + (counter % 60000)
  local path = "/announce?info_hash=" .. ih .. "&peer_id=" .. pid .. "&port=" .. port ..
    "&uploaded=0&downloaded=0&left=1000&compact=1&numwant=50"
  return wrk.format("GET", path)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.1f %.3f %d %d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000.0,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
