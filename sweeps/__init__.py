"""Sweeps: many walk-forward backtests searched by Optuna and run on Ray, with the statistics that
say whether the best of them is better than luck (deflated Sharpe ratio, probability of backtest
overfitting). Above ``backtests`` because a trial is a walk-forward backtest."""
