-- muxcat's Lua API, built on the raw functions of the Rust side (`raw`).
-- Raw functions answer `true, results...` or `false, code, text`; here a
-- failure becomes a Lua error that is a table { code, text, where } (so
-- `pcall` can read `e.code`), and printing it gives "where: CODE: text".
local raw = ...

local Error = {}
Error.__index = Error
Error.__tostring = function(e)
  if e.where then
    return e.where .. ": " .. e.code .. ": " .. e.text
  end
  return e.code .. ": " .. e.text
end

-- `file:line` of the script's code that called the API: the first
-- caller outside this prelude (the debug library is not loaded: `error`
-- says where, caught by pcall; tail calls make the depth vary).
local function where()
  for level = 3, 16 do
    local _, msg = pcall(error, "", level)
    if type(msg) == "string" and msg ~= "" and msg:sub(1, 7) ~= "muxcat:" then
      return (msg:gsub(":%s*$", ""))
    end
  end
  return nil
end

-- A raw answer: its results, or the error it carries raised.
local function check(_, ok, ...)
  if ok then
    return ...
  end
  local code, text = ...
  error(setmetatable({ code = code, text = text, where = where() }, Error), 0)
end

local Session = {}
Session.__index = Session
Session.__tostring = function(s)
  return "session " .. s.id
end

local Listener = {}
Listener.__index = Listener
Listener.__tostring = function(l)
  return "listener " .. l.id
end

local function session(id)
  return setmetatable({ id = id }, Session)
end

local function listener(id)
  return setmetatable({ id = id }, Listener)
end

-- An opening command: a session, or a listener (`listen`, `udp --per-peer`).
local function opened(kind, id)
  if kind == "listener" then
    return listener(id)
  end
  return session(id)
end

function Session:send(data, opts)
  return check(2, raw.send(self.id, data, opts and opts.raw or false))
end

function Session:sendhex(hex)
  return check(2, raw.sendhex(self.id, hex))
end

function Session:expect(patterns, timeout, opts)
  if type(patterns) == "string" then
    patterns = { patterns }
  end
  opts = opts or {}
  return check(2, raw.expect(self.id, patterns, timeout, opts.partial or false, opts.fresh or false))
end

function Session:close()
  return check(2, raw.command({ "disconnect", self.id }))
end

function Session:shutdown()
  return check(2, raw.command({ "shutdown", self.id }))
end

function Session:record(path)
  return check(2, raw.command({ "record", self.id, path or "off" }))
end

function Session:line(name, action, length)
  local words = { "line", self.id, name, action }
  if length then
    words[#words + 1] = raw.duration_word(length)
  end
  return check(2, raw.command(words))
end

function Session:sendbreak(length)
  local words = { "break", self.id }
  if length then
    words[#words + 1] = raw.duration_word(length)
  end
  return check(2, raw.command(words))
end

function Listener:accept(timeout)
  local words = { "accept", "--on", self.id }
  if timeout then
    words[#words + 1] = "--timeout"
    words[#words + 1] = raw.duration_word(timeout)
  end
  local kind, id = check(2, raw.open(words))
  return opened(kind, id)
end

function Listener:close()
  return check(2, raw.command({ "close", self.id }))
end

mux = {}

-- `opts` are the command's own options: { label = "x", reconnect = true,
-- max_connections = 4 } is `--label x --reconnect --max-connections 4`.
local function open(command)
  return function(target, opts)
    local kind, id = check(2, raw.open(raw.words(command, target, opts)))
    return opened(kind, id)
  end
end

mux.connect = open("connect")
mux.listen = open("listen")
mux.udp = open("udp")
mux.serial = open("serial")

function mux.command(line)
  return check(2, raw.line(line))
end

function mux.sleep(length)
  return check(2, raw.sleep(length))
end

-- Keeps the script alive for `mux.on` and `mux.every` (until stopped, or
-- for `length`).
function mux.serve(length)
  return check(2, raw.sleep(length or math.huge))
end

function mux.sessions()
  local list = check(2, raw.sessions())
  for i, s in ipairs(list) do
    list[i] = setmetatable(s, Session)
  end
  return list
end

function mux.log(...)
  local parts = {}
  for i = 1, select("#", ...) do
    parts[i] = tostring(select(i, ...))
  end
  return check(2, raw.log(table.concat(parts, "\t")))
end

function mux.record(s, path)
  return s:record(path)
end

local callbacks = {}

-- A trigger whose reply is computed: fn(session, m) gets the matched line
-- (m[0]) and its captures (m[1]…, m.name); what it returns is sent back
-- (like `send`; nil sends nothing).
function mux.on(target, pattern, fn, opts)
  local ref = nil
  if target ~= nil then
    ref = target.id
  end
  local id = check(2, raw.on(ref, pattern, opts and opts.once or false))
  callbacks[id] = { fn = fn, pattern = pattern }
  return id
end

function mux.off(id)
  callbacks[id] = nil
  return check(2, raw.command({ "off", id }))
end

local timers = {}

function mux.every(length, fn)
  local id = check(2, raw.every(length))
  timers[id] = fn
  return id
end

mux.hex = raw.hex
function mux.unhex(text)
  return check(2, raw.unhex(text))
end
function mux.crc(name, data)
  return check(2, raw.crc(name, data))
end

-- Called by the Rust side while the script waits.
local function dispatch_hit(trigger, id, data)
  local cb = callbacks[trigger]
  if not cb then
    return
  end
  local s = session(id)
  local reply = cb.fn(s, raw.captures(cb.pattern, data))
  if reply ~= nil then
    s:send(reply)
  end
end

local function dispatch_timer(id)
  local fn = timers[id]
  if fn then
    fn()
  end
end

return dispatch_hit, dispatch_timer
