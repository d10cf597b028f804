"""``nautilus-lstm download``: OHLCV history from an exchange through ccxt (in progress)."""


def register(subparsers) -> None:
    pass
