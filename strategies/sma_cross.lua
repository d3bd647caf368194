-- SMA crossover, long only: buy when the fast SMA crosses above the slow
-- one, sell when it crosses back below. Params: fast, slow, qty
-- (optional: without it, the [risk] sizing rule sizes the entry).
--
-- A cross is a change of side between the two averages; bars where they
-- are equal are passed over, so "below, equal, above" is one cross up and
-- "above, equal, above" none (backtrader's CrossOver).
--
-- Equal means equal up to rounding. TA-Lib's SMA is a running sum (add the
-- new price, subtract the oldest) whose rounding errors add up bar after
-- bar: on 1,000,000 bars of 2-decimal prices, averages that are exactly
-- equal in decimal came out up to 1.8e-13 of the price (815 times the
-- float epsilon) apart. TIE, 2^-40 of the price (9.1e-13, 4,096 epsilons),
-- covers that with room to spare. A real gap between SMA(fast) and
-- SMA(slow) of prices quoted to a tick is at least tick / lcm(fast, slow)
-- (tick/30 for 10 and 30): 36,000 times TIE for a price of a million ticks
-- (10,000.00 in cents). The former 1e-9 of the price could swallow real
-- gaps: on a random walk of unrounded prices, the closest cross of
-- 1,000,000 bars was decided by a gap of 1.4e-9.

local TIE = 2^-40

-- +1 when fast is above slow, -1 below, 0 when they are equal.
local function side(fast, slow)
  local gap = fast - slow
  local tie = TIE * math.abs(slow)
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
