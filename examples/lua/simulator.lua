-- A device simulator whose answers are computed: a line protocol on a
-- port, each `GET name` answered from a table that changes over time.
--   muxcat run examples/lua/simulator.lua     (PORT, default 7000; SECONDS to serve, default forever)
local port = os.getenv("PORT") or "7000"
local l = mux.listen("127.0.0.1:" .. port, { label = "sim" })
local values = { temp = 21.5, volt = 12.1 }

mux.on(l, "^GET (?P<name>\\w+)$", function(s, m)
  local v = values[m.name]
  if v == nil then
    return "ERROR unknown " .. m.name
  end
  return string.format("VALUE %s=%.1f", m.name, v)
end)
mux.on(l, "^SET (\\w+) ([0-9.]+)$", function(s, m)
  values[m[1]] = tonumber(m[2])
  return "OK"
end)
-- The temperature drifts.
mux.every(0.5, function()
  values.temp = values.temp + 0.1
end)
mux.serve(tonumber(os.getenv("SECONDS") or ""))  -- nil: until stopped
