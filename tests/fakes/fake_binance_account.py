"""The account behind the fake Binance's signed endpoints: balances, positions, orders and trades.

One account, reached with one key pair, on both markets: a spot wallet (``balances``) and a
USDT-M futures wallet with one-way (``BOTH``) positions. It takes MARKET orders only and fills
them at once, whole, at the price it is given (the fake passes the close of the latest closed
bar), charging the taker fee as Binance does without BNB: on spot in the asset received (the base
asset on a BUY, USDT on a SELL), on futures in USDT. It checks what Binance checks before a
market order: the symbol, the size step and minimum (``LOT_SIZE``), the minimum notional, the
spot balance (``-2010``), the futures margin at the symbol's leverage (``-2019``) and reduce-only
(``-2022``).

Answers are dicts in Binance's own JSON layout, numbers as strings printed as Binance prints
them (8 decimals on spot; the contract's precision on futures). Each fill also yields the
user-data stream events Binance sends for it (``executionReport`` and
``outboundAccountPosition`` on spot; ``ORDER_TRADE_UPDATE`` and ``ACCOUNT_UPDATE`` on futures).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from http import HTTPStatus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

SPOT, FUTURES = "spot", "futures"
TAKER_FEE = {SPOT: Decimal("0.001"), FUTURES: Decimal("0.0005")}
DEFAULT_LEVERAGE = 20  # Binance's initial leverage for BTCUSDT perpetuals
FUTURES_ASSET = "USDT"


class BinanceError(Exception):
    """An error answer in Binance's format: HTTP status and ``{"code": ..., "msg": ...}``."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.body = status, {"code": code, "msg": msg}


@dataclass
class _Position:
    amount: Decimal = Decimal(0)  # signed, base asset
    entry_price: Decimal = Decimal(0)
    update_ms: int = 0


@dataclass
class Fill:
    """What one filled order produced: the REST answer and the user-data stream events."""

    order: dict
    answer: dict
    events: list[dict]


@dataclass
class FakeAccount:
    """One Binance account. ``balances`` are spot (asset -> free amount); ``futures_wallet`` is
    the USDT-M wallet; ``positions`` are USDT-M positions by symbol.

    Its key is an HMAC key (``api_secret``, shared with the client) or an Ed25519 key (Binance
    keeps only the ``public_key``, PEM; the client signs with the private key)."""

    api_key: str
    api_secret: str | None = None
    public_key: str | None = None
    balances: dict[str, Decimal] = field(default_factory=dict)
    futures_wallet: Decimal = Decimal(0)
    positions: dict[str, _Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    orders: dict[str, list[dict]] = field(default_factory=lambda: {SPOT: [], FUTURES: []})  # each filled by one trade
    _next_id: int = 1000

    def __post_init__(self) -> None:
        if (self.api_secret is None) == (self.public_key is None):
            raise ValueError("an account has an HMAC secret or an Ed25519 public key, one of the two")

    @property
    def is_ed25519(self) -> bool:
        return self.public_key is not None

    def verify(self, payload: str, signature: str) -> bool:
        """Whether ``signature`` signs ``payload`` under the account's key, as Binance checks it:
        HMAC-SHA256 in hex, or Ed25519 in base64."""
        if self.public_key is None:
            expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(signature.lower(), expected)
        key = load_pem_public_key(self.public_key.encode())
        assert isinstance(key, Ed25519PublicKey)
        try:
            key.verify(base64.b64decode(signature, validate=True), payload.encode())
        except (InvalidSignature, ValueError):
            return False
        return True

    def set_position(self, symbol: str, amount: str, entry_price: str, now_ms: int) -> None:
        """Give the account a USDT-M position it opened before (e.g. by an earlier node)."""
        self.positions[symbol] = _Position(Decimal(amount), Decimal(entry_price), now_ms)

    # -- orders --------------------------------------------------------------------------------

    def market_order(self, market: str, symbol_info: dict, params: dict[str, str], price: Decimal, now_ms: int) -> Fill:
        """Fill a MARKET order at ``price``; raises :class:`BinanceError` as Binance would reject it."""
        symbol = symbol_info["symbol"]
        side = params.get("side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        if params.get("type") != "MARKET":
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1116, f"the fake Binance takes MARKET orders only, not {params.get('type')}")
        if market == FUTURES and params.get("positionSide", "BOTH") != "BOTH":
            raise BinanceError(HTTPStatus.BAD_REQUEST, -4061, "Order's position side does not match user's setting.")
        quantity = _quantity(params, symbol_info, price)
        client_order_id = params.get("newClientOrderId") or f"fake-{self._next_id}"
        reduce_only = params.get("reduceOnly", "").lower() == "true"  # Nautilus sends "True"; Binance takes either
        if market == SPOT:
            commission, asset = self._fill_spot(symbol_info, side, quantity, price)
            realized = Decimal(0)
        else:
            commission, asset, realized = self._fill_futures(symbol, side, quantity, price, reduce_only, now_ms)
        self._next_id += 1
        order_id, trade_id = self._next_id, self._next_id
        order = {
            "symbol": symbol, "orderId": order_id, "clientOrderId": client_order_id, "side": side,
            "quantity": quantity, "price": price, "commission": commission, "commissionAsset": asset,
            "realizedPnl": realized, "reduceOnly": reduce_only, "time": now_ms, "tradeId": trade_id,
        }
        self.orders[market].append(order)
        printer = Printer(market, symbol_info)
        if market == SPOT:
            answer = {**printer.spot_order(order), "transactTime": now_ms, "fills": [printer.spot_fill(order)]}
            events = [printer.execution_report(order, "NEW"), printer.execution_report(order, "TRADE"),
                      self._spot_account_event(symbol_info, now_ms)]
        else:
            answer = printer.futures_order(order)
            events = [printer.order_trade_update(order, "NEW"), printer.order_trade_update(order, "TRADE"),
                      self._futures_account_event(symbol, now_ms)]
        return Fill(order, answer, events)

    def _fill_spot(self, symbol_info: dict, side: str, quantity: Decimal, price: Decimal) -> tuple[Decimal, str]:
        base, quote = symbol_info["baseAsset"], symbol_info["quoteAsset"]
        cost = quantity * price
        if side == "BUY":
            if self.balances.get(quote, Decimal(0)) < cost:
                raise BinanceError(HTTPStatus.BAD_REQUEST, -2010, "Account has insufficient balance for requested action.")
            commission, asset = _round8(quantity * TAKER_FEE[SPOT]), base
            self.balances[quote] = self.balances.get(quote, Decimal(0)) - cost
            self.balances[base] = self.balances.get(base, Decimal(0)) + quantity - commission
        else:
            if self.balances.get(base, Decimal(0)) < quantity:
                raise BinanceError(HTTPStatus.BAD_REQUEST, -2010, "Account has insufficient balance for requested action.")
            commission, asset = _round8(cost * TAKER_FEE[SPOT]), quote
            self.balances[base] -= quantity
            self.balances[quote] = self.balances.get(quote, Decimal(0)) + cost - commission
        return commission, asset

    def _fill_futures(self, symbol: str, side: str, quantity: Decimal, price: Decimal, reduce_only: bool,
                      now_ms: int) -> tuple[Decimal, str, Decimal]:
        position = self.positions.setdefault(symbol, _Position())
        signed = quantity if side == "BUY" else -quantity
        after = position.amount + signed
        if reduce_only and (position.amount == 0 or abs(after) > abs(position.amount) or after * position.amount < 0):
            raise BinanceError(HTTPStatus.BAD_REQUEST, -2022, "ReduceOnly Order is rejected.")
        leverage = self.leverage.get(symbol, DEFAULT_LEVERAGE)
        if abs(after) > abs(position.amount) and abs(after) * price / leverage > self.futures_wallet:
            raise BinanceError(HTTPStatus.BAD_REQUEST, -2019, "Margin is insufficient.")
        realized = Decimal(0)
        if position.amount and (signed > 0) != (position.amount > 0):  # reduces, closes or flips
            closed = min(quantity, abs(position.amount))
            realized = (price - position.entry_price) * closed * (1 if position.amount > 0 else -1)
        if after == 0:
            position.entry_price = Decimal(0)
        elif position.amount == 0 or (after > 0) != (position.amount > 0):
            position.entry_price = price  # opened, or flipped through zero
        elif abs(after) > abs(position.amount):
            position.entry_price = (position.entry_price * abs(position.amount) + price * quantity) / abs(after)
        position.amount, position.update_ms = after, now_ms
        commission = _round8(quantity * price * TAKER_FEE[FUTURES])
        self.futures_wallet += realized - commission
        return commission, FUTURES_ASSET, realized

    # -- queries -------------------------------------------------------------------------------

    def find_order(self, market: str, symbol: str, params: dict[str, str]) -> dict:
        for order in self.orders[market]:
            if order["symbol"] == symbol and (
                str(order["orderId"]) == params.get("orderId") or order["clientOrderId"] == params.get("origClientOrderId")
            ):
                return order
        raise BinanceError(HTTPStatus.BAD_REQUEST, -2013, "Order does not exist.")

    def spot_account(self, now_ms: int) -> dict:
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "canTrade": True, "canWithdraw": False, "canDeposit": True, "updateTime": now_ms, "accountType": "SPOT",
            "balances": [{"asset": asset, "free": _spot(amount), "locked": _spot(0)} for asset, amount in self.balances.items()],
            "permissions": ["SPOT"],
        }

    def futures_account(self, prices: dict[str, Decimal], now_ms: int) -> dict:
        unrealized = sum((self._unrealized(symbol, prices) for symbol in self.positions), Decimal(0))
        margin = sum((abs(p.amount) * prices.get(s, p.entry_price) / self.leverage.get(s, DEFAULT_LEVERAGE)
                      for s, p in self.positions.items()), Decimal(0))
        wallet = self.futures_wallet
        available = wallet + unrealized - margin
        numbers = {"walletBalance": wallet, "unrealizedProfit": unrealized, "marginBalance": wallet + unrealized,
                   "maintMargin": margin / 2, "initialMargin": margin, "positionInitialMargin": margin,
                   "openOrderInitialMargin": 0, "crossWalletBalance": wallet, "crossUnPnl": unrealized,
                   "availableBalance": available, "maxWithdrawAmount": available}
        asset = {"asset": FUTURES_ASSET, **{key: _spot(value) for key, value in numbers.items()}, "marginAvailable": True, "updateTime": now_ms}
        return {
            "feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": False, "updateTime": now_ms,
            "totalInitialMargin": asset["initialMargin"], "totalMaintMargin": asset["maintMargin"],
            "totalWalletBalance": asset["walletBalance"], "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"], "totalPositionInitialMargin": asset["positionInitialMargin"],
            "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"], "totalCrossWalletBalance": asset["crossWalletBalance"],
            "totalCrossUnPnl": asset["crossUnPnl"], "availableBalance": asset["availableBalance"],
            "maxWithdrawAmount": asset["maxWithdrawAmount"], "assets": [asset], "positions": [],
        }

    def position_risk(self, symbol_infos: dict[str, dict], prices: dict[str, Decimal], symbol: str | None) -> list[dict]:
        """``GET /fapi/v3/positionRisk``: the symbols with a position (v3 leaves flat ones out)."""
        answer = []
        for name, position in self.positions.items():
            if position.amount == 0 or symbol not in (None, name):
                continue
            printer = Printer(FUTURES, symbol_infos[name])
            mark = prices.get(name, position.entry_price)
            answer.append({
                "symbol": name, "positionSide": "BOTH", "positionAmt": printer.qty(position.amount),
                "entryPrice": printer.price(position.entry_price), "breakEvenPrice": printer.price(position.entry_price),
                "markPrice": printer.price(mark), "unRealizedProfit": _spot(self._unrealized(name, prices)),
                "liquidationPrice": "0", "isolatedMargin": "0", "notional": _spot(position.amount * mark),
                "marginAsset": FUTURES_ASSET, "isolatedWallet": "0", "initialMargin": "0", "maintMargin": "0",
                "positionInitialMargin": "0", "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0",
                "askNotional": "0", "updateTime": position.update_ms,
            })
        return answer

    def _unrealized(self, symbol: str, prices: dict[str, Decimal]) -> Decimal:
        position = self.positions[symbol]
        return (prices.get(symbol, position.entry_price) - position.entry_price) * position.amount

    def _spot_account_event(self, symbol_info: dict, now_ms: int) -> dict:
        assets = (symbol_info["baseAsset"], symbol_info["quoteAsset"])
        balances = [{"a": asset, "f": _spot(self.balances.get(asset, 0)), "l": _spot(0)} for asset in assets]
        return {"e": "outboundAccountPosition", "E": now_ms, "u": now_ms, "B": balances}

    def _futures_account_event(self, symbol: str, now_ms: int) -> dict:
        position = self.positions[symbol]
        wallet = _spot(self.futures_wallet)
        return {
            "e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms,
            "a": {
                "m": "ORDER",
                "B": [{"a": FUTURES_ASSET, "wb": wallet, "cw": wallet, "bc": "0"}],
                "P": [{"s": symbol, "pa": str(position.amount), "ep": str(position.entry_price), "bep": str(position.entry_price),
                       "cr": "0", "up": "0", "mt": "cross", "iw": "0", "ps": "BOTH"}],
            },
        }


@dataclass(frozen=True)
class Printer:
    """Binance's printing of one market's orders, trades and order events."""

    market: str
    symbol_info: dict

    def price(self, value) -> str:
        return _spot(value) if self.market == SPOT else f"{Decimal(value):.{self.symbol_info['pricePrecision']}f}"

    def qty(self, value) -> str:
        return _spot(value) if self.market == SPOT else f"{Decimal(value):.{self.symbol_info['quantityPrecision']}f}"

    def spot_order(self, order: dict) -> dict:
        return {
            "symbol": order["symbol"], "orderId": order["orderId"], "orderListId": -1, "clientOrderId": order["clientOrderId"],
            "price": _spot(0), "origQty": _spot(order["quantity"]), "executedQty": _spot(order["quantity"]),
            "cummulativeQuoteQty": _spot(order["quantity"] * order["price"]), "status": "FILLED", "timeInForce": "GTC",
            "type": "MARKET", "side": order["side"], "stopPrice": _spot(0), "icebergQty": _spot(0), "time": order["time"],
            "updateTime": order["time"], "isWorking": True, "workingTime": order["time"], "origQuoteOrderQty": _spot(0),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def spot_fill(self, order: dict) -> dict:
        return {"price": _spot(order["price"]), "qty": _spot(order["quantity"]), "commission": _spot(order["commission"]),
                "commissionAsset": order["commissionAsset"], "tradeId": order["tradeId"]}

    def futures_order(self, order: dict) -> dict:
        return {
            "orderId": order["orderId"], "symbol": order["symbol"], "status": "FILLED", "clientOrderId": order["clientOrderId"],
            "price": "0", "avgPrice": self.price(order["price"]), "origQty": self.qty(order["quantity"]),
            "executedQty": self.qty(order["quantity"]), "cumQuote": _spot(order["quantity"] * order["price"]),
            "timeInForce": "GTC", "type": "MARKET", "reduceOnly": order["reduceOnly"], "closePosition": False,
            "side": order["side"], "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
            "priceProtect": False, "origType": "MARKET", "priceMatch": "NONE", "selfTradePreventionMode": "NONE",
            "goodTillDate": 0, "time": order["time"], "updateTime": order["time"],
        }

    def trade(self, order: dict) -> dict:
        """A ``myTrades`` (spot) or ``userTrades`` (futures) row."""
        common = {"symbol": order["symbol"], "id": order["tradeId"], "orderId": order["orderId"], "price": self.price(order["price"]),
                  "qty": self.qty(order["quantity"]), "quoteQty": _spot(order["quantity"] * order["price"]),
                  "commission": _spot(order["commission"]), "commissionAsset": order["commissionAsset"], "time": order["time"]}
        if self.market == SPOT:
            return {**common, "orderListId": -1, "isBuyer": order["side"] == "BUY", "isMaker": False, "isBestMatch": True}
        return {**common, "buyer": order["side"] == "BUY", "maker": False, "realizedPnl": _spot(order["realizedPnl"]),
                "side": order["side"], "positionSide": "BOTH"}

    def order(self, order: dict) -> dict:
        """An ``order``/``allOrders`` row."""
        return self.spot_order(order) if self.market == SPOT else self.futures_order(order)

    def execution_report(self, order: dict, execution: str) -> dict:
        trade = execution == "TRADE"
        return {
            "e": "executionReport", "E": order["time"], "s": order["symbol"], "c": order["clientOrderId"], "S": order["side"],
            "o": "MARKET", "f": "GTC", "q": _spot(order["quantity"]), "p": _spot(0), "P": _spot(0), "F": _spot(0), "g": -1,
            "C": "", "x": execution, "X": "FILLED" if trade else "NEW", "r": "NONE", "i": order["orderId"],
            "l": _spot(order["quantity"] if trade else 0), "z": _spot(order["quantity"] if trade else 0),
            "L": _spot(order["price"] if trade else 0), "n": _spot(order["commission"] if trade else 0),
            "N": order["commissionAsset"] if trade else None, "T": order["time"], "t": order["tradeId"] if trade else -1,
            "I": 0, "w": not trade, "m": False, "M": False, "O": order["time"],
            "Z": _spot(order["quantity"] * order["price"] if trade else 0), "Y": _spot(order["quantity"] * order["price"] if trade else 0),
            "Q": _spot(0), "W": order["time"], "V": "EXPIRE_MAKER",
        }

    def order_trade_update(self, order: dict, execution: str) -> dict:
        trade = execution == "TRADE"
        data = {
            "s": order["symbol"], "c": order["clientOrderId"], "S": order["side"], "o": "MARKET", "f": "GTC",
            "q": self.qty(order["quantity"]), "p": "0", "ap": self.price(order["price"] if trade else 0), "sp": "0",
            "x": execution, "X": "FILLED" if trade else "NEW", "i": order["orderId"],
            "l": self.qty(order["quantity"] if trade else 0), "z": self.qty(order["quantity"] if trade else 0),
            "L": self.price(order["price"] if trade else 0), "T": order["time"], "t": order["tradeId"] if trade else 0,
            "b": "0", "a": "0", "m": False, "R": order["reduceOnly"], "wt": "CONTRACT_PRICE", "ot": "MARKET", "ps": "BOTH",
            "cp": False, "rp": _spot(order["realizedPnl"] if trade else 0), "pP": False, "si": 0, "ss": 0, "V": "NONE",
            "pm": "NONE", "gtd": 0,
        }
        if trade:
            data |= {"N": order["commissionAsset"], "n": _spot(order["commission"])}
        return {"e": "ORDER_TRADE_UPDATE", "E": order["time"], "T": order["time"], "o": data}


def _quantity(params: dict[str, str], symbol_info: dict, price: Decimal) -> Decimal:
    """The order's quantity, checked against the symbol's LOT_SIZE and minimum notional filters."""
    text = params.get("quantity", "")
    try:
        quantity = Decimal(text)
    except ArithmeticError:
        raise BinanceError(HTTPStatus.BAD_REQUEST, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.") from None
    filters = {f["filterType"]: f for f in symbol_info["filters"]}
    lot = filters["LOT_SIZE"]
    if quantity < Decimal(lot["minQty"]) or quantity > Decimal(lot["maxQty"]) or quantity % Decimal(lot["stepSize"]):
        raise BinanceError(HTTPStatus.BAD_REQUEST, -1013, "Filter failure: LOT_SIZE")
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL")
    if notional and quantity * price < Decimal(notional.get("minNotional") or notional.get("notional")):
        raise BinanceError(HTTPStatus.BAD_REQUEST, -1013, f"Filter failure: {notional['filterType']}")
    return quantity


def _spot(value) -> str:
    return f"{Decimal(value):.8f}"


def _round8(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)


def ed25519_pair() -> tuple[str, str]:
    """(private key, public key), PEM, as Binance's key generator makes them."""
    private = Ed25519PrivateKey.generate()
    return (private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
            private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
