-- RSI mean reversion, long only: buy when the RSI climbs back above the
-- oversold level, sell once it reaches the overbought level.
-- Params: period, oversold, overbought, qty (optional: without it, the
-- [risk] sizing rule sizes the entry).
-- Self-contained on purpose: the shipped strategies repeat one shape so that each reads alone.

function watch(ctx)
  local p = ctx.params
  local rsi, before = ctx.ind.rsi(p.period), ctx.prev.rsi(p.period)
  if rsi and before and before < p.oversold and rsi >= p.oversold then
    return {action = "enter", qty = p.qty, reason = "rsi back above oversold"}
  end
end

function close_watch(ctx)
  -- watch enters directly, so there is no setup to wait on
  return "cancel"
end

function in_trade(ctx)
  local rsi = ctx.ind.rsi(ctx.params.period)
  if rsi and rsi >= ctx.params.overbought then
    return {action = "exit", reason = "rsi overbought"}
  end
end
