"""The strategy's view of its account alone: position counting orders in flight, equity, free base."""

import math
from decimal import Decimal
from types import SimpleNamespace

import pytest
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.objects import Currency

from marketdata.instruments import BUILTIN_MARKETS, instrument_from_market
from strategies.account import EQUITY_REFRESH_BARS, AccountView
from strategies.decision import SizingConfig
from strategies.kernel import CALLS

SPOT = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "spot")], "spot")
PERP = instrument_from_market(BUILTIN_MARKETS[("BTC/USDT", "futures")], "futures")


def money(amount: float):
    return SimpleNamespace(as_double=lambda: amount)


class Account:
    def __init__(self, cash: bool, totals: dict, free: dict | None = None):
        self.is_cash_account, self.totals, self.free = cash, totals, free or totals

    def balance_total(self, currency):
        return money(self.totals[currency.code]) if currency.code in self.totals else None

    def balances_total(self):
        return {Currency.from_str(code): money(amount) for code, amount in self.totals.items()}

    def balance_free(self, currency):
        return money(self.free[currency.code]) if currency.code in self.free else None


class Venue:
    """A portfolio and a cache, as much as AccountView asks of them."""

    def __init__(self, account, position=0.0, positions=(), orders=None):
        self.account_, self.position, self.positions, self.orders = account, position, list(positions), orders or {}

    def account(self, venue):
        return self.account_

    def net_position(self, instrument_id):
        return Decimal(str(self.position))

    def order(self, client_order_id):
        return self.orders.get(client_order_id)

    def positions_open(self, instrument_id):
        return self.positions


def test_spot_equity_and_free_base():
    venue = Venue(Account(True, {"USDT": 5_000.0, "BTC": 0.05}, free={"USDT": 5_000.0, "BTC": 0.04995}))
    view = AccountView(venue, venue, SPOT)
    assert view.equity(100_000.0) == 10_000.0 and view.free_base() == 0.04995
    assert AccountView(Venue(Account(False, {"USDT": 1.0})), Venue(None), PERP).free_base() is None


def test_perpetual_equity_is_balance_plus_unrealized_pnl():
    position = SimpleNamespace(signed_qty=-0.1, avg_px_open=100_000.0)
    venue = Venue(Account(False, {"USDT": 10_000.0}), positions=[position])
    assert AccountView(venue, venue, PERP).equity(90_000.0) == pytest.approx(11_000.0)  # short 0.1 from 100k to 90k


def test_equity_is_reread_every_so_many_calls():
    """(and after every fill: the engines' tests cover that path)"""
    account = Account(True, {"USDT": 1_000.0, "BTC": 0.0})
    venue = Venue(account)
    view = AccountView(venue, venue, SPOT)
    assert view.equity(1.0) == 1_000.0
    account.totals["USDT"] = 900.0
    assert view.equity(1.0) == 1_000.0  # cached
    for _ in range(EQUITY_REFRESH_BARS - 1):
        view.equity(1.0)
    assert view.equity(1.0) == 900.0  # refreshed on the schedule
    account.totals["USDT"] = 800.0
    view.order_event(OrderFilled.__new__(OrderFilled))  # a fill: read at the next call
    assert view.equity(1.0) == 800.0


def test_equity_marked_from_the_parts_as_read_neither_reads_nor_counts():
    """On a bar the compiled call handed back, which has counted it: the kill switch's check in Python
    must not count it again (the read would come a bar early)."""
    account = Account(True, {"USDT": 1_000.0, "BTC": 0.5})
    venue = Venue(account)
    view = AccountView(venue, venue, SPOT)
    assert view.equity(100.0) == 1_050.0
    account.totals["USDT"] = 900.0
    calls = view.parts[CALLS]
    assert view.marked(200.0) == 1_100.0 and view.parts[CALLS] == calls  # the parts as read, at the new close


def test_equity_with_no_account_yet_is_nan_and_read_again_at_every_call():
    venue = Venue(None)
    view = AccountView(venue, venue, SPOT)
    assert math.isnan(view.equity(1.0))
    venue.account_ = Account(True, {"USDT": 1_000.0, "BTC": 0.0})
    assert view.equity(1.0) == 1_000.0


def test_orders_in_flight_count_towards_the_expected_position():
    order = SimpleNamespace(is_closed=False, leaves_qty=Decimal("0.02"), side=OrderSide.SELL)
    venue = Venue(Account(True, {}), position=0.05, orders={"O-1": order})
    view = AccountView(venue, venue, SPOT)
    view.sent("O-1")
    assert view.expected_position() == pytest.approx(0.03) and view.net_position() == 0.05
    order.is_closed = True
    view.order_event(SimpleNamespace(client_order_id="O-1"))
    assert view.in_flight == set() and view.expected_position() == 0.05
    assert view.proposed(-1, 0.05, 100.0, None).position == 0.05


def test_a_new_position_is_sized_by_the_config_at_the_volatility_forecast_rounded_down_to_the_step():
    venue = Venue(Account(True, {"USDT": 20_000.0, "BTC": 0.0}))
    view = AccountView(venue, venue, SPOT)
    fixed, by_equity = SizingConfig(order_notional=1_000.0), SizingConfig(equity_fraction=0.1, target_volatility=0.5)
    assert view.opening_quantity(fixed, 100_000.0, None) == (0.01, None)
    assert view.opening_quantity(by_equity, 100_000.0, 0.25) == (pytest.approx(0.04), None)  # 2,000 × 0.5 / 0.25 of quote
    assert view.opening_quantity(by_equity, 100_000.0, 0.3)[0] == pytest.approx(0.03333)  # 3,333.33 of quote, stepped down
    assert view.opening_quantity(by_equity, 100_000.0, None) == (0.0, "no notional to trade")


def test_a_shared_cash_account_counts_the_other_instruments_holdings_at_their_last_price():
    """A pooled backtest's strategies share one account: ETH bought by the other strategy is equity too."""
    eth = instrument_from_market(BUILTIN_MARKETS[("ETH/USDT", "spot")], "spot")

    class Pooled(Venue):
        def instruments(self, venue):
            return [SPOT, eth]

        def price(self, instrument_id, price_type):
            return money(2_500.0) if instrument_id == eth.id else None

    venue = Pooled(Account(True, {"USDT": 4_000.0, "BTC": 0.05, "ETH": 0.4}))
    assert AccountView(venue, venue, SPOT).equity(100_000.0) == 4_000.0 + 5_000.0 + 1_000.0
    unpriced = Pooled(Account(True, {"USDT": 4_000.0, "XRP": 10.0}))
    assert math.isnan(AccountView(unpriced, unpriced, SPOT).equity(100_000.0))
