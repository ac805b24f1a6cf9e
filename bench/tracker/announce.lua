-- wrk script: every request is an announce with its own info_hash and peer_id, drawn from
-- a fixed set of 64 torrents (the same set is whitelisted for opentracker), numwant=50.
-- With the script argument "close" (wrk ... -s announce.lua URL -- close) every request
-- carries "Connection: close", so each announce has its own TCP connection (opentracker
-- closes every connection after its answer whatever the request says).
-- Every answer is checked: status 200 and a bencoded dictionary with a "peers" string and no
-- "failure reason"; the others are counted as bad (the RESULT line's last field).
local counter = 0
local hashes = {}
local headers = {}
local threads = {}
bad = 0

local function pct(bytes)
  return (bytes:gsub(".", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function sha_like(i)
  -- 20 bytes derived from i; must match procs.py's info_hash(i)
  local s = ""
  for k = 0, 19 do
    s = s .. string.char((i * 31 + k * 7 + 13) % 256)
  end
  return s
end

setup = function(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

init = function(args)
  if args[1] == "close" then
    headers["Connection"] = "close"
  end
  for i = 0, 63 do
    hashes[i] = pct(sha_like(i))
  end
  counter = id * 1000003
end

request = function()
  counter = counter + 1
  local ih = hashes[counter % 64]
  local pid = pct(string.format("-WR0001-%012d", counter % 100000))
  local port = 1024 + (counter % 60000)
  local path = "/announce?info_hash=" .. ih .. "&peer_id=" .. pid .. "&port=" .. port ..
    "&uploaded=0&downloaded=0&left=1000&compact=1&numwant=50"
  return wrk.format("GET", path, headers)
end

response = function(status, hdrs, body)
  if status ~= 200 or body:sub(1, 1) ~= "d" or not body:find("5:peers", 1, true)
     or body:find("failure reason", 1, true) then
    bad = bad + 1
  end
end

done = function(summary, latency, requests)
  local nbad = 0
  for _, t in ipairs(threads) do
    nbad = nbad + t:get("bad")
  end
  io.write(string.format("RESULT %d %d %.1f %.3f %d %d %d %d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000.0,
    summary.errors.connect + summary.errors.write + summary.errors.timeout,
    summary.errors.read, summary.errors.status, nbad))
end
