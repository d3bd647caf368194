-- SMA crossover, long only: buy when the fast SMA crosses above the slow
-- one, sell when it crosses back below. Params: fast, slow, qty.

-- +1 when fast crossed above slow on this bar, -1 when below, else 0.
local function cross(ctx)
  local p = ctx.params
  local fast, slow = ctx.ind.sma(p.fast), ctx.ind.sma(p.slow)
  local fast1, slow1 = ctx.prev.sma(p.fast), ctx.prev.sma(p.slow)
  if not (fast and slow and fast1 and slow1) then return 0 end  -- warming up
  if fast1 <= slow1 and fast > slow then return 1 end
  if fast1 >= slow1 and fast < slow then return -1 end
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
