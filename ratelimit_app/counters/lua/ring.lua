-- Shared by check.lua and refund.lua (load_script puts it after clock.lua).
local floor = math.floor

-- The rolling window's ring, bit-packed into a string (Redis's Lua 5.1 has no
-- string.pack; decimal text would take three times the bytes). Two formats:
--
-- v2 (written since): 6 bits for 32 + the width w of a count (1 to 31, the bit length
-- of the largest count), 53 bits for the time of the last admission in microseconds,
-- the newest count, then the k older counts, oldest first, each of w bits: as many bytes
-- as v1 (9 to 34 up to a rate of 300,000), with the newest count in the head. An
-- admission in the newest sub-window (most of them) adds up the older counts and
-- rewrites the head only; nothing else is encoded again.
--
-- v1 (read only, for rings written before): 6 bits for the width w (1 to 32, the bit
-- length of the largest count), the 53-bit time, then the k + 1 counts of w bits each,
-- oldest first.
local WIDTH_BITS, TIME_HIGH, TIME_LOW = 6, 26, 27
-- Powers of two by table lookup: `^` is a C call, and a ring takes some forty of them.
-- A literal, not a loop: the table is made on every call of the script.
local POW = {[0] = 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304, 8388608, 16777216, 33554432, 67108864, 134217728, 268435456, 536870912, 1073741824, 2147483648, 4294967296, 8589934592, 17179869184, 34359738368, 68719476736, 137438953472, 274877906944, 549755813888, 1099511627776}

-- The header's 59 bits end 3 bits into the 8th byte; the counts follow. Both are read
-- and written inline, byte by byte (a function call per field cost more than its bits).
local function ring_decode_v1(raw, slots)
  local b = {string.byte(raw, 1, -1)}
  local width = floor((b[1] or 0) / 4)
  if width < 1 or width > 32 or #raw ~= math.ceil((59 + slots * width) / 8) then
    return nil
  end
  -- 2 bits of b[1], 6 bytes, then the top 3 bits of b[8]: 2 + 48 + 3 = 53 bits.
  local last = b[1] % 4
  for i = 2, 7 do last = last * 256 + b[i] end
  local acc = b[8]
  last = last * 8 + floor(acc / 32)
  acc = acc % 32
  local bits, pos, counts = 5, 9, {}
  for i = 1, slots do
    while bits < width do
      acc = acc * 256 + (b[pos] or 0)
      pos, bits = pos + 1, bits + 8
    end
    bits = bits - width
    local unit = POW[bits]
    local value = floor(acc / unit)
    counts[i] = value
    acc = acc - value * unit
  end
  return last, counts
end

-- The 6-bit field (the width, plus 32 in v2) and the 53-bit time: the first seven bytes,
-- and the time's last 3 bits, which start the eighth.
local function time_header(field, last)
  local low3 = last % 8
  local rest = (last - low3) / 8          -- 50 bits
  local bytes = {}
  for i = 7, 2, -1 do
    local high = floor(rest / 256)
    bytes[i] = rest - high * 256
    rest = high
  end
  bytes[1] = field * 4 + rest             -- rest: the top 2 bits
  return bytes, low3
end

-- A ring's string: the header, then ``values`` in the order given, ``width`` bits each.
local function pack_ring(field, width, last, values)
  local bytes, acc = time_header(field, last)
  local bits, n = 3, 7
  local scale = POW[width]
  for i = 1, #values do
    acc = acc * scale + values[i]
    bits = bits + width
    while bits >= 8 do
      bits = bits - 8
      local unit = POW[bits]
      local byte = floor(acc / unit)
      n = n + 1
      bytes[n] = byte
      acc = acc - byte * unit
    end
  end
  if bits > 0 then bytes[n + 1] = acc * POW[8 - bits] end
  return string.char(unpack(bytes))
end

local function bit_length(largest)
  local width = 1
  while POW[width] <= largest do width = width + 1 end
  return width
end

-- v2. The head is the 59 + w bits of width, time and newest count; its last byte also
-- holds the first bits of the older counts.
local V2 = 32

-- (width, last, newest, sum of the older counts, head length in bytes) of a v2 ring,
-- or nil for anything else.
local function ring_head(raw, slots)
  local b = {string.byte(raw, 1, -1)}
  local width = floor((b[1] or 0) / 4) - V2
  if width < 1 or #raw ~= math.ceil((59 + slots * width) / 8) then return nil end
  local last = b[1] % 4
  for i = 2, 7 do last = last * 256 + b[i] end
  local acc = b[8]
  last = last * 8 + floor(acc / 32)
  acc = acc % 32
  local bits, pos, newest, older = 5, 9, 0, 0
  for i = 1, slots do
    while bits < width do
      acc = acc * 256 + (b[pos] or 0)
      pos, bits = pos + 1, bits + 8
    end
    bits = bits - width
    local unit = POW[bits]
    local value = floor(acc / unit)
    acc = acc - value * unit
    if i == 1 then newest = value else older = older + value end
  end
  return width, last, newest, older, math.ceil((59 + width) / 8)
end

-- The head's bytes for (width, last, newest); the last one keeps ``tail``'s low bits
-- (the older counts' first bits, when the head does not end on a byte).
local function head_encode(width, last, newest, tail)
  local bytes, low3 = time_header(V2 + width, last)
  local acc, bits, n = low3 * POW[width] + newest, 3 + width, 7
  while bits >= 8 do
    bits = bits - 8
    local unit = POW[bits]
    local byte = floor(acc / unit)
    n = n + 1
    bytes[n] = byte
    acc = acc - byte * unit
  end
  if bits > 0 then
    local spare = POW[8 - bits]
    bytes[n + 1] = acc * spare + tail % spare
  end
  return string.char(unpack(bytes))
end

-- The counts, oldest first, of a v2 ring (their order in the string: newest, then older).
local function v2_counts(raw, slots, width)
  local b = {string.byte(raw, 1, -1)}
  local acc = b[8] % 32
  local bits, pos, counts = 5, 9, {}
  for i = 1, slots do
    while bits < width do
      acc = acc * 256 + (b[pos] or 0)
      pos, bits = pos + 1, bits + 8
    end
    bits = bits - width
    local unit = POW[bits]
    local value = floor(acc / unit)
    acc = acc - value * unit
    counts[i] = value
  end
  local newest = table.remove(counts, 1)
  counts[slots] = newest
  return counts
end

-- (last, counts oldest first) of a ring of either format, or nil.
local function ring_decode(raw, slots)
  local width, last = ring_head(raw, slots)
  if width then return last, v2_counts(raw, slots, width) end
  return ring_decode_v1(raw, slots)
end

-- The v2 ring of ``counts`` (oldest first) last charged at ``last``; v1 for a count
-- beyond 31 bits.
local function ring_encode(last, counts)
  local slots = #counts
  local width = bit_length(math.max(unpack(counts)))
  if width > 31 then return pack_ring(width, width, last, counts) end  -- v1
  -- The newest first, then the older ones from the oldest.
  local ordered = {counts[slots]}
  for i = 1, slots - 1 do ordered[i + 1] = counts[i] end
  return pack_ring(V2 + width, width, last, ordered)
end
