"""Reporting: one self-contained ``report.html`` per output folder (backtest, walk-forward,
evaluate, sweep), built only from the files the run wrote, so ``nautilus-lstm report DIR``
regenerates it. Above ``sweeps`` because it reads every lower stage's output."""
