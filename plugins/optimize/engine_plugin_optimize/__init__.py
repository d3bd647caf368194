"""``engine optimize``: parameter search and walk-forward over backtests, on Optuna,
with trials on every local core or as Ray tasks on a cluster."""
