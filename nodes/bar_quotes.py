"""The actor that gives Nautilus each live bar's close as the instrument's quote."""

from __future__ import annotations

from nautilus_trader.common.actor import Actor
from nautilus_trader.common.config import ActorConfig
from nautilus_trader.config import ImportableActorConfig
from nautilus_trader.model.data import Bar, BarType, QuoteTick
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument


class BarQuotesConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType


class BarQuotes(Actor):
    """Each live bar's close as the instrument's quote: the price Nautilus's sandbox fills market
    orders at (paper), and the price its RiskEngine reckons a market order's notional at (both).

    The sandbox execution client listens to the venue's quotes, trades and books only (topics
    ``data.*.BINANCE.*``); bars (``data.bars.<bar type>``) never reach it, so on bars alone it
    has no market and rejects every order. Binance's own best bid/ask would do, but Nautilus 1.221
    parsed it at the precision Binance prints (8 decimals on spot) while the instrument has its
    tick's (2 for BTCUSDT), and on such a quote the sandbox's matching engine raised and the node
    stopped (not rechecked on 1.231). So market orders fill at the close of the latest bar, as in a
    backtest's bar execution, which keeps paper fills comparable with backtests either way.
    The RiskEngine, without a quote or trade, lets a market order through unchecked.
    """

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        instrument_id = self.config.instrument_id
        self._topic = f"data.quotes.{instrument_id.venue}.{instrument_id.symbol}"  # the data engine's quote topic
        self._size = self.instrument.max_quantity or self.instrument.make_qty(1_000_000)
        self.subscribe_bars(self.config.bar_type)

    def on_stop(self) -> None:
        self.unsubscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        price = self.instrument.make_price(bar.close.as_double())
        quote = QuoteTick(self.instrument.id, price, price, self._size, self._size, bar.ts_event, bar.ts_init)
        self.cache.add_quote_tick(quote)  # the risk engine prices market orders from it
        self.msgbus.publish(topic=self._topic, msg=quote)


def bar_quotes(instrument: Instrument, bar_type: str) -> ImportableActorConfig:
    return ImportableActorConfig(
        actor_path="nodes.bar_quotes:BarQuotes",
        config_path="nodes.bar_quotes:BarQuotesConfig",
        config={"instrument_id": str(instrument.id), "bar_type": bar_type},
    )
