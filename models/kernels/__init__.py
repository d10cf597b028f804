"""The per-bar numba kernels: the online features and the LSTM step the strategy runs on every bar."""
