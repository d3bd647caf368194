-- One symbol's ctx and its scan loop: run once per symbol by
-- engine_core/lua/context.py (Context), inside the symbol's sandbox.
-- Arguments: the sandbox's toolkit (sandbox.lua), need_column and
-- need_indicator (Python: register an array, return its packed bytes), log
-- (Python: ctx.log's sink), the symbol, the strategy's params (a Lua table),
-- the window (bars), the decision fields (strategy.DECISION_FIELDS, a table).
-- Returns the functions the host calls: load_chunk, load_bar, set_position,
-- set_functions, scan, call, on_fill, return_line, get_state, set_state.

local tools, need_column, need_indicator, log, symbol, params, window, decision_fields = ...
local guarded, readonly = tools.guarded, tools.readonly
local unpack, tunpack, move, rep, concat = string.unpack, table.unpack, table.move, string.rep, table.concat
local select, error, type, tostring, setmetatable, rawset, rawget, next =
  select, error, type, tostring, setmetatable, rawset, rawget, next

local cur, off, base = 0, 0, 0  -- array index of the current bar; of the chunk's first bar - 1; index - cur
local first = 1  -- array index of the view's first bar

-- Data arrays, in the order Python ships them; "d" float64 or "j" int64.
local arrays, letters = {}, {}
local PIECE = 4096
local formats = {}
for _, letter in ipairs({"d", "j"}) do
  formats[letter] = setmetatable({}, {__index = function(cache, n)
    local f = "=" .. rep(letter, n); cache[n] = f; return f
  end})
end

local function fill(t, letter, blob, at)  -- blob's values into t[at], t[at + 1], ...
  local fmt = formats[letter]
  local n = #blob // 8
  local pos, j, last = 1, at, at + n - 1
  while j <= last do
    local m = last - j + 1
    if m > PIECE then m = PIECE end
    move({unpack(fmt[m], blob, pos)}, 1, m, j, t)
    j, pos = j + m, pos + 8 * m
  end
end

local function add_array(letter, blob)  -- a view array, aligned with the others
  local t = {}
  fill(t, letter, blob, first)
  arrays[#arrays + 1], letters[#letters + 1] = t, letter
  return t
end

-- A new chunk: keep > 0 first moves each array's `keep` values ending at
-- old_len (the history) to the front; the chunk's values go from `dest` on.
local function load_chunk(chunk_off, chunk_base, view_first, keep, old_len, dest, ...)
  for k = 1, #arrays do
    local t = arrays[k]
    if keep > 0 then move(t, old_len - keep + 1, old_len, 1, t) end
    fill(t, letters[k], (select(k, ...)), dest)
  end
  off, base, first = chunk_off, chunk_base, view_first
end

-- One live bar appended at `dest`: load_chunk's common case, its values
-- passed as numbers (no blobs to unpack).
local function load_bar(chunk_off, chunk_base, view_first, dest, ...)
  for k = 1, #arrays do arrays[k][dest] = (select(k, ...)) end
  off, base, first = chunk_off, chunk_base, view_first
end

-- Price columns, registered on first use.
local columns = {}
local function column(name)
  local t = columns[name]
  if t == nil then
    t = add_array(name == "time" and "j" or "d", need_column(name))
    columns[name] = t
  end
  return t
end
local SERIES = {open = true, high = true, low = true, close = true, volume = true, time = true}

local function series(t)  -- ctx.close(n): n bars ago, nil at or beyond the window
  return function(n)
    if n == nil then return t[cur] end
    if n < 0 or n >= window then return nil end
    return t[cur - n]
  end
end

-- Indicators: a tree per name keyed by the arguments; LEAF holds the arrays.
local LEAF = {}
local trees = {}

local function register(name, ...)
  local args = {...}
  for k = 1, select("#", ...) do
    local a = args[k]
    if (type(a) ~= "number" and type(a) ~= "string") or a ~= a then
      return nil, "indicator " .. tostring(name) .. ": argument " .. k .. " must be a number, got " .. tostring(a)
    end
  end
  local got = {need_indicator(name, ...)}
  if got[1] == nil then return nil, got[2] end
  local entry = {n = #got}
  for k = 1, #got do entry[k] = add_array("d", got[k]) end
  local node = trees[name]
  for k = 1, select("#", ...) do
    local a = args[k]
    node[a] = node[a] or {}
    node = node[a]
  end
  node[LEAF] = entry
  return entry
end

local function lookup(name, ...)
  local node = trees[name]
  for k = 1, select("#", ...) do
    node = node[(select(k, ...))]
    if node == nil then return register(name, ...) end
  end
  return node[LEAF] or register(name, ...)
end

local function values(e, j, k)  -- outputs k.. of an entry at j, NaN as nil
  if k > e.n then return end
  local v = e[k][j]
  if v ~= v then v = nil end
  return v, values(e, j, k + 1)
end

-- Arrays of the one-output indicators registered with one argument, by name
-- then argument: the readers' fast path.
local single = {}

local function reader(name, shift)
  local tree = trees[name] or {}
  trees[name] = tree
  local one = single[name] or {}
  single[name] = one
  local function general(a, ...)
    local n = select("#", ...)
    local node = tree[a]  -- up to three arguments: the tree walked inline
    if n == 1 then
      local b = ...
      node = node and node[b]
    elseif n == 2 then
      local b, c = ...
      node = node and node[b]
      node = node and node[c]
    elseif n ~= 0 then
      node = nil
    end
    local e = node and node[LEAF]
    if e == nil then
      local err
      e, err = lookup(name, a, ...)
      if e == nil then error(err, 2) end  -- (a tail call from the reader: level 2 is the script)
    end
    local outputs, j = e.n, cur - shift
    local v = e[1][j]
    if v ~= v then v = nil end
    if outputs == 1 then
      if n == 0 then one[a] = e[1] end
      return v
    end
    local v2 = e[2][j]
    if v2 ~= v2 then v2 = nil end
    if outputs == 2 then return v, v2 end
    local v3 = e[3][j]
    if v3 ~= v3 then v3 = nil end
    if outputs == 3 then return v, v2, v3 end
    return v, v2, v3, values(e, j, 4)
  end
  -- The fast path: one argument, one output; few VM instructions (each one
  -- traps into the budget hook). Two copies on purpose, ctx.ind's reading
  -- t[cur] and ctx.prev's t[cur - 1]: one closure reading t[cur - shift]
  -- costs ctx.ind 3 more instructions a read (sma_cross: 76 -> 80 a bar).
  if shift == 0 then
    return function(a, ...)
      local t = one[a]
      if t ~= nil and select("#", ...) == 0 then
        local v = t[cur]
        if v == v then return v end
        return nil
      end
      return general(a, ...)
    end
  end
  return function(a, ...)
    local t = one[a]
    if t ~= nil and select("#", ...) == 0 then
      local v = t[cur - 1]
      if v == v then return v end
      return nil
    end
    return general(a, ...)
  end
end

local function indicators(shift)
  local cache = setmetatable({}, {__index = function(cache, name)
    local f = reader(name, shift); rawset(cache, name, f); return f
  end})
  return readonly(cache)
end

-- The position, set by Python between scans.
local pos = {}
setmetatable(pos, {__index = function(_, k)
  if k == "bars_held" and pos.entry_index then return cur + base - pos.entry_index end
end})
local function set_position(qty, avg_price, entry_time, entry_index, stop_price, take_profit_price, trailing_stop)
  local open = qty ~= 0
  pos.qty = qty
  pos.side = open and (qty > 0 and "long" or "short") or nil
  pos.avg_price = open and avg_price or nil
  pos.entry_time = open and entry_time or nil
  pos.entry_index = open and entry_index or nil
  pos.stop_price, pos.take_profit_price, pos.trailing_stop = stop_price, take_profit_price, trailing_stop
end
set_position(0)

local function freeze(t)
  for k, v in pairs(t) do if type(v) == "table" then t[k] = freeze(v) end end
  return readonly(t)
end

local bar = readonly({}, function(_, k)
  if SERIES[k] then return column(k)[cur] end
end)

local fields = {
  symbol = symbol, params = freeze(params), state = {}, bar = bar,
  ind = indicators(0), prev = indicators(1), position = readonly(pos),
  log = function(...)
    local parts = {}
    for k = 1, select("#", ...) do parts[k] = tostring((select(k, ...))) end
    log(concat(parts, " "), cur)
  end,
}
setmetatable(fields, {__index = function(_, k)
  if k == "index" then return cur + base end
  if SERIES[k] then
    local f = series(column(k)); rawset(fields, k, f); return f
  end
end})
local ctx = readonly(fields)

-- The script's functions, by the names the host calls, swapped in on (re)load.
local fns = {}
local function set_functions(env, names)
  fns = {}
  for i = 1, #names do fns[names[i]] = env[names[i]] end
end

-- A decision as Python takes it: a table whose keys are all decision fields
-- goes flattened (its fields in the order of decision_fields,
-- read raw as Python would walk it); any other table, or a value that is no
-- table, goes as it is.
local slot, nfields = {}, #decision_fields
for i = 1, nfields do slot[decision_fields[i]] = i end
local function decided(k, r)
  if type(r) ~= "table" then return k, r end
  local out = {}
  for key, v in next, r do
    local i = slot[key]
    if i == nil then return k, r end  -- an unknown field: Python walks the table for the error
    out[i] = v
  end
  return k, tunpack(out, 1, nfields)
end

-- Returns stop alone when no bar decided. Each bar gets a fresh budget, set
-- inline: the three budget upvalues are the sandbox's own (share_budget).
-- With `after` (close_watch), a bar whose function returned "setup" asks it
-- too, in the same call (one crossing from Python, not two; host.py keeps its
-- answer for the worker's scan of close_watch at that bar, next), with a
-- budget of its own as a call of its own has. Returns -1 - k (the mark: k >= 0)
-- and close_watch's answer as `decided` gives it.
local left, spent, max_instructions  -- luacheck: ignore (joined to the sandbox's by share_budget)
local setup_at = nil  -- the bar of the setup whose close_watch runs: a failure now is close_watch's
local function loop(fn, start, stop, after)
  local o = off
  for j = o + start + 1, o + stop do
    cur = j
    left, spent = max_instructions, nil
    local r = fn(ctx)
    if r then
      if after and r == "setup" then
        left, spent = max_instructions, nil
        setup_at = j - o - 1
        local r2 = after(ctx)
        setup_at = nil
        if not r2 then return -1 - (j - o - 1) end
        return decided(-1 - (j - o - 1), r2)
      end
      return decided(j - o - 1, r)
    end
  end
  return stop
end
tools.share_budget(loop)

-- After the bounds: how many position values follow (0, or 7 when it
-- changed since the last call), then a live bar's load_bar arguments, if any
-- (context.py's sync_data: one crossing from Python a bar, not two).
-- A failure: nil, its kind, message and line, and, when close_watch failed
-- after a setup (`chain`), the setup's bar.
local function setup_failed(k, ...)
  if k == nil and setup_at ~= nil then
    local at = setup_at
    setup_at = nil
    local kind, message, line = ...
    return nil, kind, message, line, at
  end
  return k, ...
end

local function scan(name, start, stop, chain, moved, ...)
  if moved > 0 then
    set_position(...)
    if select("#", ...) > moved then load_bar(select(moved + 1, ...)) end
  elseif select("#", ...) > 0 then
    load_bar(...)
  end
  if chain then return setup_failed(guarded(loop, fns[name], start, stop, fns.close_watch)) end
  return guarded(loop, fns[name], start, stop)
end

local function call(name, at, ...)  -- an optional function at array index `at`
  local f = fns[name]
  if f == nil then return true end
  cur = at
  return guarded(function(...) f(ctx, ...); return true end, ...)
end

local function on_fill(at, side, qty, price, commission, time, id)
  return call("on_fill", at, readonly({side = side, qty = qty, price = price,
    commission = commission, time = time, id = id}))
end

local function return_line(name, k)
  cur = off + k + 1
  return tools.return_line(fns[name], ctx)
end

-- ctx.state, read and replaced by the host (journaled with the symbol's snapshot)
local function get_state() return fields.state end
local function set_state(t) rawset(fields, "state", t) end

return {load_chunk = load_chunk, load_bar = load_bar, set_position = set_position, set_functions = set_functions,
        scan = scan, call = call, on_fill = on_fill, return_line = return_line,
        get_state = get_state, set_state = set_state}
