# The README's two commands: `make demo` and `make test`. Both create .venv and install first.
# The venv needs Python >= 3.12 (nautilus_trader 1.231): scripts/python.sh finds one, or builds one
# once per machine into ~/.cache/nautilus-lstm (PYTHON_FOR_VENV=/path/to/python picks one yourself).
VENV ?= .venv
BIN = $(VENV)/bin
# Where the demo keeps its catalog (one per source: data/sample, data/binance; data/catalog for
# HISTORY), model and report. The model is trained afresh each time: a checkpoint left by other
# bars would refuse to resume.
DATA_DIR ?= data/$(if $(strip $(HISTORY)),catalog,$(SOURCE))
MODEL ?= artifacts/demo
REPORT ?= reports/demo
# The demo's history: the sample shipped in marketdata/samples (offline, the default), or
# SOURCE=binance: the same two pairs' hourly bars, the last DAYS days, downloaded through ccxt.
SOURCE ?= sample
SAMPLE = marketdata/samples
DAYS ?= 630
# The demo's model (BTC+ETH 1h pooled, its last 110 days held out) and how it trades them:
# sized to 50% annualized volatility, with the volatility gate on by default, at Binance's fees.
DEMO_CONFIG ?= models/demo.toml
DEMO_BACKTEST ?= --target-volatility 0.5
# HISTORY=FILE instead: one Binance kline file of SYMBOL at TIMEFRAME, the default model, its
# last TEST_DAYS days held out and backtested.
HISTORY ?=
SYMBOL ?= BTC/USDT
TIMEFRAME ?= 1m
BAR_TYPE ?= BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL
TEST_DAYS ?= 2

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

# The suite runs in TEST_WORKERS processes (2: the CI machine's cores), a whole test file to each
# (--dist loadfile), so a file's module fixtures are built once; the end-to-end tests spend much of
# their time waiting on subprocesses and the clock (README, Tests and real data: the timings).
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

demo: install
ifneq ($(strip $(HISTORY)),)
	$(BIN)/nautilus-lstm import-klines $(HISTORY) --exchange binance --symbol $(SYMBOL) \
		--timeframe $(TIMEFRAME) --data-dir $(DATA_DIR)
	rm -rf $(MODEL)/checkpoint
	$(BIN)/nautilus-lstm train --catalog $(DATA_DIR) --bar-type $(BAR_TYPE) --holdout-days $(TEST_DAYS) --out $(MODEL)
	$(BIN)/nautilus-lstm backtest --model $(MODEL) --catalog $(DATA_DIR) --out $(REPORT)
else
ifeq ($(SOURCE),binance)
	$(BIN)/nautilus-lstm download --exchange binance --symbol BTC/USDT --timeframe 1h --since $(DAYS)d --data-dir $(DATA_DIR)
	$(BIN)/nautilus-lstm download --exchange binance --symbol ETH/USDT --timeframe 1h --since $(DAYS)d --data-dir $(DATA_DIR)
else ifeq ($(SOURCE),sample)
	$(BIN)/nautilus-lstm import-klines $(SAMPLE)/btcusdt_1h_2024-01-01_2025-09-19.csv.gz --symbol BTC/USDT \
		--timeframe 1h --data-dir $(DATA_DIR)
	$(BIN)/nautilus-lstm import-klines $(SAMPLE)/ethusdt_1h_2024-01-01_2025-09-19.csv.gz --symbol ETH/USDT \
		--timeframe 1h --data-dir $(DATA_DIR)
else
	$(error SOURCE=$(SOURCE): use SOURCE=sample (the shipped sample, the default) or SOURCE=binance)
endif
	rm -rf $(MODEL)/checkpoint
	$(BIN)/nautilus-lstm train --config $(DEMO_CONFIG) --catalog $(DATA_DIR) --out $(MODEL)
	$(BIN)/nautilus-lstm backtest --model $(MODEL) --catalog $(DATA_DIR) $(DEMO_BACKTEST) --out $(REPORT)
endif

clean:
	rm -rf $(VENV) data artifacts reports build *.egg-info
