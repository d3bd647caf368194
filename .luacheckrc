-- luacheck (Debian: lua-check): `luacheck engine_core/lua strategies`
std = "lua54"
-- A strategy defines its decision functions as globals of its sandboxed
-- environment; close_watch(ctx) and the like need not read ctx.
files["strategies/*.lua"] = {
  globals = {"watch", "close_watch", "in_trade", "init", "on_fill"},
  unused_args = false,
}
