-- Shared by check.lua and refund.lua (load_script puts it after clock.lua).
local floor = math.floor

-- The rolling window's ring, bit-packed into a string (Redis's Lua 5.1 has no
-- string.pack; decimal text would take three times the bytes): 6 bits for the width w
-- of a count (the bit length of the ring's largest count, at most that of the rate), 53
-- bits for the time of the last admission in microseconds, then the k + 1 counts of w
-- bits each, oldest first: 9 to 34 bytes up to a rate of 300,000.
local WIDTH_BITS, TIME_HIGH, TIME_LOW = 6, 26, 27
-- Powers of two by table lookup: `^` is a C call, and a ring takes some forty of them.
-- A literal, not a loop: the table is made on every call of the script.
local POW = {[0] = 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304, 8388608, 16777216, 33554432, 67108864, 134217728, 268435456, 536870912, 1073741824, 2147483648, 4294967296, 8589934592, 17179869184, 34359738368, 68719476736, 137438953472, 274877906944, 549755813888, 1099511627776}

-- The header's 59 bits end 3 bits into the 8th byte; the counts follow. Both are read
-- and written inline, byte by byte (a function call per field cost more than its bits).
local function ring_decode(raw, slots)
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

local function ring_encode(last, counts)
  local largest = math.max(unpack(counts))
  local width = 1
  while POW[width] <= largest do width = width + 1 end
  -- The header: width (6 bits), then the time's 53 bits, most significant first.
  local low3 = last % 8
  local rest = (last - low3) / 8          -- 50 bits
  local bytes = {}
  for i = 7, 2, -1 do
    local high = floor(rest / 256)
    bytes[i] = rest - high * 256
    rest = high
  end
  bytes[1] = width * 4 + rest             -- rest: the top 2 bits
  local acc, bits, n = low3, 3, 7
  local scale = POW[width]
  for i = 1, #counts do
    acc = acc * scale + counts[i]
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
