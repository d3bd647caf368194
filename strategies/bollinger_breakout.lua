-- Bollinger breakout, long only: buy when the close breaks above the upper
-- band, sell when it falls back below the middle band.
-- Params: period, width (standard deviations), qty (optional: without it,
-- the [risk] sizing rule sizes the entry).
-- Self-contained on purpose: the shipped strategies repeat one shape so that each reads alone.

function watch(ctx)
  local p = ctx.params
  local upper = ctx.ind.bbands(p.period, p.width, p.width)  -- upper, middle, lower
  local upper_before = ctx.prev.bbands(p.period, p.width, p.width)
  local close, close_before = ctx.close(), ctx.close(1)
  if upper and upper_before and close_before <= upper_before and close > upper then
    return {action = "enter", qty = p.qty, reason = "close above the upper band"}
  end
end

function close_watch(ctx)
  return "cancel"
end

function in_trade(ctx)
  local p = ctx.params
  local _, middle = ctx.ind.bbands(p.period, p.width, p.width)
  if middle and ctx.close() < middle then
    return {action = "exit", reason = "close below the middle band"}
  end
end
