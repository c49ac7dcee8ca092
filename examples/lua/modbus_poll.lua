-- A Modbus/TCP poll loop: read a holding register every 200 ms, check the
-- answer's frame, stop when the value crosses a threshold.
--   muxcat run examples/lua/modbus_poll.lua    (DEVICE=host:port, default 127.0.0.1:5020)
local device = os.getenv("DEVICE") or "127.0.0.1:5020"
local threshold = tonumber(os.getenv("THRESHOLD") or "80")
local s = mux.connect(device, { mode = "binary", label = "plc" })

local transaction = 0
local function read_register(address)
  transaction = transaction + 1
  -- MBAP header (transaction, protocol 0, length 6, unit 1), then
  -- function 3: read 1 holding register at `address`.
  s:send(string.pack(">I2I2I2BBI2I2", transaction, 0, 6, 1, 3, address, 1), { raw = true })
  -- 7 header bytes, then the registers (03, 2 bytes, the value) or an exception.
  local i, frame = s:expect("(?s-u)^.{7}(?:\\x03\\x02..|\\x83.)", 2)
  if i == nil then
    return nil, "no answer"
  end
  local tid, _, _, _, fn = string.unpack(">I2I2I2BB", frame)
  if tid ~= transaction then
    return nil, "answer to transaction " .. tid
  end
  if fn == 0x83 then
    return nil, "exception " .. frame:byte(9)
  end
  return (string.unpack(">I2", frame, 10))
end

for poll = 1, 100 do
  local value, err = read_register(0)
  if value == nil then
    mux.log("poll " .. poll .. ": " .. err)
  else
    mux.log("poll " .. poll .. ": register 0 = " .. value)
    if value >= threshold then
      mux.log("threshold " .. threshold .. " crossed")
      break
    end
  end
  mux.sleep(0.2)
end
s:close()
