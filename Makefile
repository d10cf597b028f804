# The README's two commands: `make demo` and `make test`. Both create .venv and install first.
# The venv needs Python >= 3.12 (nautilus_trader 1.231): scripts/python.sh finds one, or builds one
# once per machine into ~/.cache/nautilus-lstm (PYTHON_FOR_VENV=/path/to/python picks one yourself).
VENV ?= .venv
BIN = $(VENV)/bin
# Where the demo keeps its catalog, model and report.
DATA_DIR ?= data/catalog
# A Binance kline file to use instead of downloading (for offline machines).
HISTORY ?=
SYMBOL ?= BTC/USDT
TIMEFRAME ?= 1m
BAR_TYPE ?= BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL
# Days of history to download, and the last days of it kept out of training for the backtest.
DAYS ?= 7
TEST_DAYS ?= 2
MODEL ?= artifacts/demo
REPORT ?= reports/demo

.PHONY: install test demo clean

install: $(BIN)/.installed

# Re-install when the package definition changes. torch==2.13.0 is pinned in pyproject.toml, so
# pip never pulls a second torch in behind it.
$(BIN)/.installed: pyproject.toml
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || \
		{ rm -rf $(VENV) && python=$$(bash scripts/python.sh) && echo "creating $(VENV) with $$python" && $$python -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(BIN)/python -m pytest

demo: install
ifeq ($(strip $(HISTORY)),)
	$(BIN)/nautilus-lstm download --exchange binance --symbol $(SYMBOL) --timeframe $(TIMEFRAME) \
		--since $(DAYS)d --data-dir $(DATA_DIR)
else
	$(BIN)/nautilus-lstm import-klines $(HISTORY) --exchange binance --symbol $(SYMBOL) \
		--timeframe $(TIMEFRAME) --data-dir $(DATA_DIR)
endif
	$(BIN)/nautilus-lstm train --catalog $(DATA_DIR) --bar-type $(BAR_TYPE) --holdout-days $(TEST_DAYS) --out $(MODEL)
	$(BIN)/nautilus-lstm backtest --model $(MODEL) --catalog $(DATA_DIR) --out $(REPORT)

clean:
	rm -rf $(VENV) data artifacts reports build *.egg-info
