"""Progress: a tqdm bar on a terminal, plain log lines elsewhere, with one interface."""

import io
import logging

import pytest
from tqdm import tqdm

from marketdata import progress as progress_module
from marketdata.progress import LogProgress, progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "marketdata.progress"]


def test_on_a_terminal_it_is_tqdms_bar_drawn_on_stderr(monkeypatch, caplog):
    screen = FakeTerminal()
    monkeypatch.setattr("sys.stderr", screen)
    with caplog.at_level(logging.INFO):
        bar = progress(range(3), desc="windows", unit="window")
        assert isinstance(bar, tqdm)
        assert list(bar) == [0, 1, 2]
    assert "windows: 100%" in screen.getvalue() and "3/3" in screen.getvalue()
    assert lines(caplog) == []  # the bar, not log lines


def test_elsewhere_it_logs_each_tenth_and_the_end(monkeypatch, caplog):
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    with caplog.at_level(logging.INFO):
        bar = progress(range(20), desc="folds", unit="fit", interval=0)
        assert isinstance(bar, LogProgress)
        assert sum(bar) == sum(range(20))
    logged = lines(caplog)
    assert len(logged) == 10  # 10%, 20%, ... 90% as they pass, then the end once
    assert logged[0].startswith("folds: 2/20 fit (10%) in ")
    assert logged[-1].startswith("folds: 20/20 fit (100%) in ")


def test_log_lines_are_rate_limited_and_carry_the_postfix(monkeypatch, caplog):
    clock = iter([0.0, 1.0, 2.0, 15.0, 16.0, 30.0]).__next__
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    with caplog.at_level(logging.INFO), progress(total=100, desc="download", unit="bar", terminal=False) as bar:
        # started at 0 s
        bar.update(30)  # 1 s: too soon after the start
        bar.set_postfix(best=0.5, state="ok")
        bar.update(30)  # 2 s: still too soon
        bar.update(10)  # 15 s: a line
        bar.update(10)  # 16 s: too soon after it
    # closed at 30 s: the end, whatever the interval
    assert lines(caplog) == ["download: 70/100 bar (70%) in 15.0 s, best=0.5, state=ok",
                             "download: 80/100 bar (80%) in 30.0 s, best=0.5, state=ok"]


def test_a_transient_bar_logs_only_slow_progress_and_no_end(monkeypatch, caplog):
    with caplog.at_level(logging.INFO):
        for _ in progress(range(50), desc="epoch 1", leave=False, terminal=False):
            pass  # fast: nothing
        clock = iter([0.0, 11.0, 12.0, 13.0]).__next__
        monkeypatch.setattr(progress_module.time, "monotonic", clock)
        for _ in progress(range(3), desc="epoch 2", unit="batch", leave=False, terminal=False):
            pass  # the first batch ends at 11 s: a line; the end: none (its caller logs the epoch)
    assert lines(caplog) == ["epoch 2: 1/3 batch (33%) in 11.0 s"]


def test_without_a_total_it_counts(caplog):
    with caplog.at_level(logging.INFO):
        for _ in progress(iter(range(4)), desc="pages", unit="page", terminal=False, interval=0):
            pass
    logged = lines(caplog)
    assert logged[0].startswith("pages: 1 page in ") and logged[-1].startswith("pages: 4 page in ")
    assert len(logged) == 5  # every update, interval 0, and the end


@pytest.mark.parametrize("terminal", [True, False])
def test_both_modes_share_the_interface(terminal, monkeypatch):
    monkeypatch.setattr("sys.stderr", FakeTerminal())  # tqdm draws somewhere harmless
    with progress(total=5, desc="x", terminal=terminal) as bar:
        bar.update(2)
        bar.set_postfix(loss=1.0)
        bar.update(3)
        assert bar.n == 5


def test_an_import_off_a_terminal_logs_its_steps(shared_data, tmp_path, monkeypatch, caplog):
    from marketdata.history import import_klines
    from tests.conftest import FIXTURE_7D

    monkeypatch.setattr(progress_module, "LOG_INTERVAL_S", 0.0)  # a line at every step, however fast
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with caplog.at_level(logging.INFO):
        import_klines(shared_data / FIXTURE_7D, exchange="binance", symbol="BTC/USDT", timeframe="1m",
                      market="spot", catalog_path=tmp_path)
    logged = [line.split(" in ")[0] + line.split(" s")[-1] for line in lines(caplog)]
    name = f"import {FIXTURE_7D}"
    assert logged == [f"{name}: 1/3 step (33%), done=read", f"{name}: 2/3 step (67%), done=validated",
                      f"{name}: 3/3 step (100%), done=written"]
