-- Lua workload for tools/compare.py: a growing heap. Builds N records (a table each,
-- with a name string and a small array), keeps every one alive, concatenates them
-- into one text, scans it with gmatch, and prints checksums. Deterministic (an LCG).
--
--     lua5.4 tables.lua [N]      -- default 200000

local n = tonumber(arg[1]) or 200000

local seed = 12345
local function rand(m)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % m
end

-- Building: one table per record plus its array and strings; nothing is freed.
local records = {}
for i = 1, n do
  local values = {}
  for j = 1, rand(8) do values[j] = rand(1000) end
  records[i] = {id = i, name = "rec" .. rand(1000000) .. string.rep("x", rand(24)), values = values}
end

-- String building: one line per record, joined into one text.
local lines = {}
for i = 1, n do
  local r = records[i]
  lines[i] = r.name .. "=" .. #r.values .. ":" .. table.concat(r.values, ",")
end
local text = table.concat(lines, "\n")

-- Scanning: every name and count back out of the text, tallied by name length.
local by_length, scanned = {}, 0
for name, count in text:gmatch("rec(%d+)x*=(%d+)") do
  by_length[#name] = (by_length[#name] or 0) + tonumber(count)
  scanned = scanned + 1
end

local sum = 0
for i = 1, n do
  local r = records[i]
  for j = 1, #r.values do sum = (sum * 31 + r.values[j]) % 4294967291 end
end

local tally = {}
for len = 1, 7 do tally[#tally + 1] = len .. ":" .. (by_length[len] or 0) end
print("records", #records, "text bytes", #text, "scanned", scanned)
print("values checksum", sum)
print("counts by name length", table.concat(tally, " "))
