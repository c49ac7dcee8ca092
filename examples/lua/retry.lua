-- A flaky device: retry a request three times, reconnecting when the
-- connection drops, and fail with the last error.
--   muxcat run examples/lua/retry.lua           (DEVICE=host:port, default 127.0.0.1:7001)
local device = os.getenv("DEVICE") or "127.0.0.1:7001"

local function ask(question)
  local last
  for attempt = 1, 3 do
    local ok, err = pcall(function()
      local s = mux.connect(device, { timeout = "5s" })
      s:send(question)
      local i, answer = s:expect({ "^OK (.*)$", "^BUSY" }, 1)
      s:close()
      if i == 1 then
        last = answer
      elseif i == 2 then
        error({ code = "BUSY", text = "the device is busy" })
      else
        error({ code = "WAITFOR_TIMEOUT", text = "no answer" })
      end
    end)
    if ok then
      return last
    end
    mux.log("attempt " .. attempt .. " failed: " .. (err.code or tostring(err)))
    mux.sleep(0.2 * attempt)
  end
  error("no answer after 3 attempts")
end

mux.log("answer: " .. ask("STATUS"))
