-- The sandbox's host side: run once per runtime by engine_core/lua/sandbox.py
-- (Sandbox), with the full standard library, before any script is loaded.
-- Arguments: max_instructions (per call), period (instructions between two
-- runs of the budget hook). Returns the host's toolkit: guarded, reset,
-- compile, readonly, return_line, share_budget. Nothing here is reachable
-- from a script's environment (see new_env below for what a script sees).

local max_instructions, period = ...
local sethook, getinfo, getupvalue, upvaluejoin = debug.sethook, debug.getinfo, debug.getupvalue, debug.upvaluejoin
local error, pcall, xpcall, type, tostring = error, pcall, xpcall, type, tostring
local co_create, co_resume = coroutine.create, coroutine.resume
local MEMORY = "not enough memory"

local left = max_instructions   -- instructions left in the current call
local spent = nil               -- the budget error, once raised in this call
local source = nil              -- chunk name of the running script ("@file")

local function hook()
  left = left - period
  if left < 0 then
    spent = spent or ("instruction budget exceeded (" .. max_instructions .. " per call)")
    error(spent, 0)
  end
end

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
  sethook(co, hook, "", period)
  return co
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
safe_coroutine.resume = function(co, ...) return rethrow(co_resume(co, ...)) end
safe_coroutine.wrap = function(f)
  local co = create(f)
  return function(...) return unwrap(co_resume(co, ...)) end
end

local BASICS = {"assert", "error", "ipairs", "next", "pairs", "select", "tonumber",
  "tostring", "type", "rawequal", "rawget", "rawlen", "getmetatable", "_VERSION"}

local function new_env()
  local env = {}
  for _, name in ipairs(BASICS) do env[name] = _G[name] end
  env.pcall = function(f, ...) return rethrow(pcall(f, ...)) end
  env.xpcall = function(f, h, ...) return rethrow(xpcall(f, h, ...)) end
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
  if ok then return ... end
  local info = ...
  if type(info) ~= "table" then  -- a memory error skips the handler
    return nil, info == MEMORY and "memory" or "error", tostring(info), nil
  end
  return nil, info.kind, info.message, info.line
end
local function guarded(f, ...)
  reset()
  return finish(xpcall(f, handler, ...))
end

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
  end, "r", period)
  guarded(f, ...)
  sethook(hook, "", period)
  return line or getinfo(f, "S").linedefined
end

sethook(hook, "", period)
return {guarded = guarded, reset = reset, compile = compile, readonly = readonly,
        return_line = return_line, share_budget = share_budget}
