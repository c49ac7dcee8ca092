-- An expect-style login with branches: answer the prompts a device shows,
-- whichever comes, and give up cleanly after three wrong passwords.
--   muxcat run examples/lua/login.lua          (DEVICE=host:port, default 127.0.0.1:2323)
local device = os.getenv("DEVICE") or "127.0.0.1:2323"
local s = mux.connect(device, { label = "console", eol = "crlf" })

for attempt = 1, 3 do
  local i = s:expect({ "login: ?$", "[Pp]assword: ?$", "[#$>] ?$", "Login incorrect" }, 5, { partial = true })
  if i == nil then
    error("the device said nothing we know")
  elseif i == 1 then
    s:send(os.getenv("DEVICE_USER") or "admin")
    s:expect("[Pp]assword: ?$", 5, { partial = true })
    s:send(os.getenv("DEVICE_PASSWORD") or "admin")
  elseif i == 2 then
    s:send(os.getenv("DEVICE_PASSWORD") or "admin")
  elseif i == 3 then
    break
  end
  local j = s:expect({ "[#$>] ?$", "Login incorrect" }, 5, { partial = true })
  if j == 1 then
    mux.log("logged in after " .. attempt .. " attempt(s)")
    s:send("uname -a")
    local _, _, m = s:expect("Linux|BusyBox", 5)
    mux.log("device: " .. m.line)
    break
  end
  mux.log("attempt " .. attempt .. " refused")
  if attempt == 3 then
    error("login refused three times")
  end
end
s:close()
