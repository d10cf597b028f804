"""Nautilus instruments and ids for the markets we trade, built from ccxt's market data.

Ids follow Nautilus's own Binance adapter so backtests and live nodes agree:
``BTCUSDT.BINANCE`` for spot, ``BTCUSDT-PERP.BINANCE`` for USDT-M perpetuals.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import numpy as np
import pandas as pd
from nautilus_trader.model.data import BarType
from nautilus_trader.model.identifiers import InstrumentId, Symbol
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair, Instrument
from nautilus_trader.model.objects import Currency, Money, Price, Quantity

from marketdata.klines import PRICE_COLUMNS
from marketdata.timeframes import Timeframe

log = logging.getLogger(__name__)

MARKETS = ("spot", "futures")

# The venue's default (VIP 0) fees as (maker, taker) rates: the one source of truth for fees.
DEFAULT_FEES = {
    "spot": (Decimal("0.001"), Decimal("0.001")),
    "futures": (Decimal("0.0002"), Decimal("0.0005")),
}


def _market(symbol, market_id, kind, tick, step, min_qty, max_qty, min_notional, max_price, min_price, info=None):
    base, quote = symbol.split("/")
    maker, taker = DEFAULT_FEES[kind]
    return {
        "id": market_id,
        "symbol": symbol if kind == "spot" else f"{symbol}:{quote}",
        "base": base,
        "quote": quote,
        "settle": None if kind == "spot" else quote,
        "type": "spot" if kind == "spot" else "swap",
        "maker": float(maker),
        "taker": float(taker),
        "precision": {"price": tick, "amount": step},
        "limits": {
            "amount": {"min": min_qty, "max": max_qty},
            "price": {"min": min_price, "max": max_price},
            "cost": {"min": min_notional, "max": None},
        },
        "info": info or {},
    }


# Binance's published filters for the pairs we ship data for (exchangeInfo, 2025), in ccxt's
# market layout, so that offline imports build the same instruments a live download would.
BUILTIN_MARKETS = {
    ("BTC/USDT", "spot"): _market("BTC/USDT", "BTCUSDT", "spot", 0.01, 0.00001, 0.00001, 9000.0, 5.0, 1_000_000.0, 0.01),
    ("ETH/USDT", "spot"): _market("ETH/USDT", "ETHUSDT", "spot", 0.01, 0.0001, 0.0001, 9000.0, 5.0, 1_000_000.0, 0.01),
    ("BTC/USDT", "futures"): _market(
        "BTC/USDT", "BTCUSDT", "futures", 0.1, 0.001, 0.001, 1000.0, 100.0, 4_529_764.0, 556.8,
        {"requiredMarginPercent": "5.0000", "maintMarginPercent": "2.5000"},
    ),
    ("ETH/USDT", "futures"): _market(
        "ETH/USDT", "ETHUSDT", "futures", 0.01, 0.001, 0.001, 10000.0, 20.0, 306_177.0, 39.86,
        {"requiredMarginPercent": "5.0000", "maintMarginPercent": "2.5000"},
    ),
}


def venue_name(exchange: str) -> str:
    # ccxt names Binance's USDT-M futures API "binanceusdm"; Nautilus has one BINANCE venue.
    return "BINANCE" if exchange.lower().startswith("binance") else exchange.upper()


def instrument_id(symbol: str, market: str, exchange: str = "binance") -> InstrumentId:
    """``BTC/USDT`` → ``BTCUSDT.BINANCE`` (spot) or ``BTCUSDT-PERP.BINANCE`` (futures)."""
    _check_market(market)
    base, quote = split_symbol(symbol)
    suffix = "-PERP" if market == "futures" else ""
    return InstrumentId.from_str(f"{base}{quote}{suffix}.{venue_name(exchange)}")


def bar_type(instrument: InstrumentId, timeframe: Timeframe) -> BarType:
    """E.g. ``BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL``."""
    return BarType.from_str(f"{instrument}-{timeframe.bar_spec}-EXTERNAL")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTC/USDT`` or ``BTC/USDT:USDT`` → ``("BTC", "USDT")``."""
    pair = symbol.split(":")[0]
    parts = pair.split("/")
    if len(parts) != 2 or not all(part.isalnum() for part in parts):
        raise ValueError(f"bad symbol {symbol!r}: expected BASE/QUOTE, e.g. BTC/USDT")
    return parts[0].upper(), parts[1].upper()


def ccxt_symbol(symbol: str, market: str) -> str:
    """ccxt's unified symbol: ``BTC/USDT`` for spot, ``BTC/USDT:USDT`` for a USDT-M perpetual."""
    base, quote = split_symbol(symbol)
    return f"{base}/{quote}" if market == "spot" else f"{base}/{quote}:{quote}"


def instrument_from_market(ccxt_market: dict, market: str, exchange: str = "binance") -> Instrument:
    """Build a ``CurrencyPair`` (spot) or ``CryptoPerpetual`` (futures) from a ccxt market dict."""
    _check_market(market)
    base, quote = split_symbol(ccxt_market["symbol"])
    tick = _decimal(ccxt_market["precision"]["price"])
    step = _decimal(ccxt_market["precision"]["amount"])
    limits = ccxt_market.get("limits") or {}
    amount, price, cost = (limits.get(key) or {} for key in ("amount", "price", "cost"))
    price_precision, size_precision = _decimals(tick), _decimals(step)
    default_maker, default_taker = DEFAULT_FEES[market]
    maker = _decimal(ccxt_market.get("maker"), default_maker)
    taker = _decimal(ccxt_market.get("taker"), default_taker)
    quote_currency = Currency.from_str(quote)

    common = dict(
        instrument_id=instrument_id(f"{base}/{quote}", market, exchange),
        raw_symbol=Symbol(ccxt_market.get("id") or f"{base}{quote}"),
        base_currency=Currency.from_str(base),
        quote_currency=quote_currency,
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=Price(tick, price_precision),
        size_increment=Quantity(step, size_precision),
        max_quantity=_quantity(amount.get("max"), size_precision),
        min_quantity=_quantity(amount.get("min"), size_precision),
        max_notional=None,
        min_notional=Money(cost["min"], quote_currency) if cost.get("min") else None,
        max_price=_price(price.get("max"), price_precision),
        min_price=_price(price.get("min"), price_precision),
        maker_fee=maker,
        taker_fee=taker,
        ts_event=0,
        ts_init=0,
    )
    if market == "spot":
        return CurrencyPair(**common, margin_init=Decimal(0), margin_maint=Decimal(0))
    info = ccxt_market.get("info") or {}
    return CryptoPerpetual(
        **common,
        settlement_currency=Currency.from_str(ccxt_market.get("settle") or quote),
        is_inverse=False,
        margin_init=Decimal(str(info.get("requiredMarginPercent", "0"))) / 100,
        margin_maint=Decimal(str(info.get("maintMarginPercent", "0"))) / 100,
    )


def offline_instrument(symbol: str, market: str, bars: pd.DataFrame, exchange: str = "binance") -> Instrument:
    """The instrument for an import with no exchange at hand.

    Known Binance pairs use :data:`BUILTIN_MARKETS`. Any other symbol gets its precision
    inferred from the bars (the most decimals seen) and the venue's default fees.
    """
    base, quote = split_symbol(symbol)
    known = BUILTIN_MARKETS.get((f"{base}/{quote}", market)) if venue_name(exchange) == "BINANCE" else None
    if known is not None:
        return instrument_from_market(known, market, exchange)
    price_decimals = max_decimals(bars[PRICE_COLUMNS].to_numpy())
    size_decimals = max_decimals(bars["volume"].to_numpy())
    maker, taker = DEFAULT_FEES[market]
    log.warning(
        "%s %s is not a built-in market: price precision %d and size precision %d are inferred from the "
        "file, fees are the venue defaults (maker %s, taker %s), and there are no exchange limits. "
        "Download with `nautilus-lstm download` to use the exchange's own definition.",
        symbol, market, price_decimals, size_decimals, maker, taker,
    )
    tick, step = 10.0**-price_decimals, 10.0**-size_decimals
    inferred = {
        "id": f"{base}{quote}",
        "symbol": f"{base}/{quote}",
        "settle": quote,
        "precision": {"price": tick, "amount": step},
        "limits": {"amount": {"min": step}},
        "maker": float(maker),
        "taker": float(taker),
    }
    return instrument_from_market(inferred, market, exchange)


def max_decimals(values: np.ndarray, limit: int = 12) -> int:
    """The most decimals any value needs (floats parsed from decimal text, so tolerance-based)."""
    for decimals in range(limit + 1):
        if not finer_than(values, decimals).any():
            return decimals
    return limit


def finer_than(values: np.ndarray, decimals: int) -> np.ndarray:
    """Which values need more than ``decimals`` decimals (floats parsed from decimal text, so
    tolerance-based); the shape of ``values``."""
    scaled = np.abs(np.asarray(values, dtype=np.float64)) * 10.0**decimals
    return np.abs(scaled - np.round(scaled)) > 1e-9 * np.maximum(1.0, scaled)


def _check_market(market: str) -> None:
    if market not in MARKETS:
        raise ValueError(f"market must be one of {MARKETS}, not {market!r}")


def _decimal(value, default: Decimal | None = None) -> Decimal:
    if value is None:
        if default is None:
            raise ValueError("missing value in market data")
        return default
    return Decimal(str(value)).normalize()


def _decimals(increment: Decimal) -> int:
    return max(0, -increment.as_tuple().exponent)


def _quantity(value, precision: int) -> Quantity | None:
    return Quantity(value, precision) if value else None


def _price(value, precision: int) -> Price | None:
    return Price(value, precision) if value else None
