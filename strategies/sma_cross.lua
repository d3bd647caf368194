-- SMA crossover, long only: buy when the fast SMA crosses above the slow
-- one, sell when it crosses back below. Params: fast, slow, qty.
--
-- A cross is a change of side between the two averages; bars where they
-- are equal (within a relative 1e-9, as 2-decimal prices often make them)
-- are passed over, so "below, equal, above" is one cross up and "above,
-- equal, above" none. This is backtrader's CrossOver, and the engine's
-- backtest of this script gives the same trades as backtrader's SMA cross.

local EPSILON = 1e-9

-- +1 when fast is above slow, -1 below, 0 when they are equal.
local function side(fast, slow)
  local gap = fast - slow
  local tie = EPSILON * math.abs(slow)
  if gap > tie then return 1 elseif gap < -tie then return -1 end
  return 0
end

-- +1 on the bar fast crosses above slow, -1 below, else 0. Remembers the
-- last side the averages were on in ctx.state (it survives hot reload).
local function cross(ctx)
  local p = ctx.params
  local fast, slow = ctx.ind.sma(p.fast), ctx.ind.sma(p.slow)
  if not (fast and slow) then return 0 end  -- warming up
  local now = side(fast, slow)
  if now == 0 then return 0 end
  local before = ctx.state.side
  ctx.state.side = now
  if before and before ~= now then return now end
  return 0
end

function watch(ctx)
  if cross(ctx) > 0 then return "setup" end
end

function close_watch(ctx)
  return {action = "enter", qty = ctx.params.qty, reason = "fast crossed above slow"}
end

function in_trade(ctx)
  if cross(ctx) < 0 then return {action = "exit", reason = "fast crossed below slow"} end
end
