-- The sandbox's host side: run once per runtime by engine_core/lua/sandbox.py
-- (Sandbox), with the full standard library, before any script is loaded.
-- Arguments: max_instructions (per call), period (instructions between two
-- runs of the budget hook), and for the time budget max_call_ms (per call; nil:
-- the instruction budget), now (Python: the monotonic clock, seconds) and
-- enter (Python: a coroutine is resumed, by its address) and forget (Python:
-- the coroutines entered so far may go). Returns the host's
-- toolkit: guarded, reset, compile, readonly, return_line, share_budget, and
-- main (the address of this runtime's main thread). Nothing here is reachable
-- from a script's environment (see new_env below for what a script sees).
--
-- The instruction budget: a count hook, always set, raises once a call has
-- run max_instructions. The time budget: no hook at all while calls run; the
-- watchdog (watchdog.py) sets a count hook on a call that has run
-- max_call_ms, and the hook looks at the bar (the call) running: seen for the
-- first time, it notes when; seen again max_call_ms later, it raises. Either
-- way a spent budget raises again every `period` instructions until the call
-- ends, and pcall, xpcall and coroutines re-raise it.

local max_instructions, period, max_call_ms, now, enter, forget = ...
local sethook, getinfo, getupvalue, upvaluejoin = debug.sethook, debug.getinfo, debug.getupvalue, debug.upvaluejoin
local error, pcall, xpcall, type, tostring, next = error, pcall, xpcall, type, tostring, next
local co_create, co_resume, running = coroutine.create, coroutine.resume, coroutine.running
local MEMORY = "not enough memory"
local timed = max_call_ms ~= nil
local max_call = timed and max_call_ms / 1000
if timed then max_instructions = -1 end  -- `left` is the time the running call was first seen; -1: not yet

local left = max_instructions   -- instructions left in the current call (time budget: see above)
local spent = nil               -- the budget error, once raised in this call
local source = nil              -- chunk name of the running script ("@file")
local calling = false           -- a guarded call runs
local anchored = {}             -- coroutines resumed in this call, kept alive until the next (time budget)
local host = {}                 -- this file's functions a spent budget does not interrupt
local hook

-- Both hooks raise only in a call, and never in the host's own frames (the
-- message handler, or on the way out of the protected call): getinfo(2) is
-- the function the hook interrupted.
local function count_hook()
  if not calling then return end  -- the host's own calls between two strategy calls
  left = left - period
  if left < 0 and not host[getinfo(2, "f").func] then
    spent = spent or ("instruction budget exceeded (" .. max_instructions .. " per call)")
    error(spent, 0)
  end
end

local function time_hook()
  if spent then
    -- what the script still runs (a __close, an xpcall handler of its own) is stopped too
    sethook(time_hook, "", period)
    if calling and not host[getinfo(2, "f").func] then error(spent, 0) end
    return
  end
  sethook(time_hook, "")  -- the watchdog's look lasts one instruction
  if not calling then return end  -- it looked as the call ended
  local t = now()
  if left < 0 then
    left = t
  elseif t - left >= max_call and not host[getinfo(2, "f").func] then
    spent = "time budget exceeded (" .. max_call_ms .. " ms per call)"
    sethook(time_hook, "", period)
    error(spent, 0)
  end
end
hook = timed and time_hook or count_hook

local function reset()
  left, spent = max_instructions, nil
end

-- Joins a host function's upvalues named left, spent and max_instructions to
-- the budget's own, so that a host loop resets the budget inline
-- (`left, spent = max_instructions, nil`) instead of calling reset() per bar.
local budget_upvalues = {}
for i = 1, 3 do budget_upvalues[(getupvalue(reset, i))] = i end
local function share_budget(f)
  local joined, i = 0, 1
  while true do
    local name = getupvalue(f, i)
    if name == nil then break end
    if budget_upvalues[name] then upvaluejoin(f, i, reset, budget_upvalues[name]); joined = joined + 1 end
    i = i + 1
  end
  assert(joined == 3, "share_budget: the function must use left, spent and max_instructions")
  return f
end

-- The hook the runtime's threads rest with between calls: the instruction
-- budget's, counting; the time budget's, registered but not set (the watchdog sets it).
local function rest(co)
  if co then return sethook(co, hook, "", timed and 0 or period) end
  sethook(hook, "", timed and 0 or period)
end

-- After a protected call returns: a spent budget or memory error goes on up.
local function rethrow(ok, ...)
  if spent then error(spent, 0) end
  if not ok and (...) == MEMORY then error(MEMORY, 0) end
  return ok, ...
end

local function unwrap(ok, ...)
  if spent then error(spent, 0) end
  if not ok then error((...), 0) end
  return ...
end

local function create(f)
  local co = co_create(f)
  rest(co)
  return co
end

-- Resuming a coroutine: with the time budget, the watchdog learns its
-- address (once per call), to set the hook on it too; it stays alive until
-- the next call has the watchdog forget it.
local resume = co_resume
if timed then
  resume = function(co, ...)
    if type(co) == "thread" and not anchored[co] then  -- (co_resume refuses anything else)
      anchored[co] = true
      enter(tostring(co))
    end
    return co_resume(co, ...)
  end
end

-- Read-only tables: a proxy whose metatable is locked.
local protected = setmetatable({}, {__mode = "k"})
local function readonly(data, index)
  local proxy = setmetatable({}, {
    __index = index or data,
    __newindex = function() error("attempt to modify a read-only table", 2) end,
    __len = function() return #data end,
    __pairs = function() return next, data, nil end,
    __metatable = "read-only",
  })
  protected[proxy] = true
  return proxy
end

local function copy(t, without)
  local out = {}
  for k, v in pairs(t) do if k ~= without then out[k] = v end end
  return out
end

local safe_string = copy(string, "dump")
local string_meta = getmetatable("")
string_meta.__index = safe_string
string_meta.__metatable = "string"
math.randomseed(0)  -- deterministic runs

local safe_coroutine = copy(coroutine)
safe_coroutine.create = create
safe_coroutine.resume = function(co, ...) return rethrow(resume(co, ...)) end
safe_coroutine.wrap = function(f)
  local co = create(f)
  return function(...) return unwrap(resume(co, ...)) end
end

local BASICS = {"assert", "error", "ipairs", "next", "pairs", "select", "tonumber",
  "tostring", "type", "rawequal", "rawget", "rawlen", "getmetatable", "_VERSION"}

local function new_env()
  local env = {}
  for _, name in ipairs(BASICS) do env[name] = _G[name] end
  env.pcall = function(f, ...) return rethrow(pcall(f, ...)) end
  -- Once the budget is spent the script's own handler is not called: Lua runs
  -- the handler of an error raised by a hook with hooks off, so a loop there
  -- would never stop.
  env.xpcall = function(f, h, ...)
    return rethrow(xpcall(f, function(e) if spent then return e end return h(e) end, ...))
  end
  env.rawset = function(t, k, v)
    if protected[t] then error("attempt to modify a read-only table", 2) end
    return rawset(t, k, v)
  end
  env.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      error("__gc metamethods are not allowed", 2)
    end
    return setmetatable(t, mt)
  end
  env.string, env.table, env.math, env.utf8 = copy(safe_string), copy(table), copy(math), copy(utf8)
  env.coroutine = copy(safe_coroutine)
  env.os = {clock = os.clock, time = os.time}
  env._G = env
  return env
end

-- Message handler: the error text and the line of the innermost script frame.
local function handler(err)
  local line = nil
  for level = 2, 200 do
    local info = getinfo(level, "Sl")
    if not info then break end
    if info.source == source and info.currentline > 0 then line = info.currentline; break end
  end
  local kind = spent and "budget" or (err == MEMORY and "memory" or "error")
  if type(err) ~= "string" then err = tostring(err) end
  return {kind = kind, message = err, line = line}
end

-- Call f(...) under a fresh budget; on failure return nil, kind, message, line.
local function finish(ok, ...)
  calling = false
  if timed then sethook(time_hook, "") end  -- a hook the watchdog set, or a spent budget's
  if ok then return ... end
  local info = ...
  if type(info) ~= "table" then  -- a memory error skips the handler
    return nil, info == MEMORY and "memory" or "error", tostring(info), nil
  end
  return nil, info.kind, info.message, info.line
end
local function guarded(f, ...)
  left, spent = max_instructions, nil  -- reset(), inline: a call less per strategy call
  if next(anchored) then forget(); anchored = {} end  -- the watchdog forgets them, then they may go
  calling = true
  return finish(xpcall(f, handler, ...))
end
host[guarded], host[finish], host[handler] = true, true, true

-- Compile and run a script in a fresh environment; check its functions.
local function compile(code, chunkname, required, optional)
  local env = new_env()
  local chunk, err = load(code, chunkname, "t", env)
  if not chunk then return nil, "error", err, nil end
  local previous = source
  source = chunkname
  local ok, kind, message, line = guarded(function() chunk(); return true end)
  if not ok then source = previous; return nil, kind, message, line end
  for _, name in ipairs(required) do
    if type(env[name]) ~= "function" then
      return nil, "error", "does not define function " .. name .. "(ctx)", nil
    end
  end
  for _, name in ipairs(optional) do
    if env[name] ~= nil and type(env[name]) ~= "function" then
      return nil, "error", name .. " must be a function", nil
    end
  end
  return env
end

-- Run f(...) again, tracing returns, for the line of the return statement
-- that ended it (an invalid decision's line); the function's first line if
-- it ended in a tail call.
local function return_line(f, ...)
  local line = nil
  sethook(function(event)
    if event == "count" then return hook() end
    if getinfo(2, "f").func == f then line = getinfo(2, "l").currentline end
  end, "r", timed and 0 or period)
  guarded(f, ...)
  rest()
  return line or getinfo(f, "S").linedefined
end

-- Set once, so that the host reads the hook's C entry point (lua_gethook) for
-- the watchdog; the host then unsets it (time budget).
sethook(hook, "", period)
return {guarded = guarded, reset = reset, compile = compile, readonly = readonly,
        return_line = return_line, share_budget = share_budget, main = tostring(running())}
