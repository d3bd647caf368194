-- MACD trend, long only: buy when the MACD histogram turns positive, with a
-- stop-loss and a take-profit set from the entry bar's close; sell when the
-- histogram turns negative (or the engine hits a stop first).
-- Params: fast, slow, signal, stop (fraction below), target (fraction above),
-- qty (optional: without it, the [risk] sizing rule sizes the entry).
-- Self-contained on purpose: the shipped strategies repeat one shape so that each reads alone.

local function hist(ind, p)
  local _, _, h = ind.macd(p.fast, p.slow, p.signal)  -- macd, signal, histogram
  return h
end

function watch(ctx)
  local p = ctx.params
  local now, before = hist(ctx.ind, p), hist(ctx.prev, p)
  if now and before and before <= 0 and now > 0 then
    local close = ctx.close()
    return {action = "enter", qty = p.qty, reason = "histogram turned positive",
            stop_price = close * (1 - p.stop), take_profit_price = close * (1 + p.target)}
  end
end

function close_watch(ctx)
  return "cancel"
end

function in_trade(ctx)
  local p = ctx.params
  local now, before = hist(ctx.ind, p), hist(ctx.prev, p)
  if now and before and before >= 0 and now < 0 then
    return {action = "exit", reason = "histogram turned negative"}
  end
end
