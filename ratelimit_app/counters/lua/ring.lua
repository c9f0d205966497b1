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

-- `fields[i]` in `widths[i]` bits each, most significant first, as bytes.
local function pack_bits(fields, widths)
  -- Fewer than 8 + 32 bits wait in `acc` at once: exact in a double.
  local bytes, acc, bits = {}, 0, 0
  for i = 1, #fields do
    acc = acc * POW[widths[i]] + fields[i]
    bits = bits + widths[i]
    while bits >= 8 do
      bits = bits - 8
      local byte = floor(acc / POW[bits])
      bytes[#bytes + 1] = byte
      acc = acc - byte * POW[bits]
    end
  end
  if bits > 0 then bytes[#bytes + 1] = acc * POW[8 - bits] end
  return string.char(unpack(bytes))
end

-- A reader of the successive fields of `raw`: read(width) returns the next one.
local function bit_reader(raw)
  local bytes = {string.byte(raw, 1, -1)}
  local pos, acc, bits = 1, 0, 0
  return function(width)
    while bits < width do
      acc = acc * 256 + (bytes[pos] or 0)
      pos, bits = pos + 1, bits + 8
    end
    bits = bits - width
    local value = floor(acc / POW[bits])
    acc = acc - value * POW[bits]
    return value
  end
end

local function bit_length(n)
  local width = 1
  while POW[width] <= n do width = width + 1 end
  return width
end

local function ring_encode(last, counts)
  local width = bit_length(math.max(unpack(counts)))
  local high = floor(last / POW[TIME_LOW])
  local fields = {width, high, last - high * POW[TIME_LOW]}
  local widths = {WIDTH_BITS, TIME_HIGH, TIME_LOW}
  for i = 1, #counts do
    fields[i + 3], widths[i + 3] = counts[i], width
  end
  return pack_bits(fields, widths)
end

-- (last, counts), or nil when `raw` is not a ring of `slots` counts (another format).
local function ring_decode(raw, slots)
  local read = bit_reader(raw)
  local width = read(WIDTH_BITS)
  local size = math.ceil((WIDTH_BITS + TIME_HIGH + TIME_LOW + slots * width) / 8)
  if width < 1 or width > 32 or #raw ~= size then return nil end
  local high = read(TIME_HIGH)
  local low = read(TIME_LOW)
  local counts = {}
  for i = 1, slots do counts[i] = read(width) end
  return high * POW[TIME_LOW] + low, counts
end

