"""``nautilus-lstm download``'s command line, short of any exchange."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from scripts.cli import main
from scripts.cmd_download import parse_time_ms

MAY_20 = 1747699200000  # 2025-05-20 00:00 UTC
HOUR = 3_600_000


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2025-05-20", MAY_20),
        ("2025-05-20T12:00", MAY_20 + 12 * HOUR),
        ("2025-05-20 12:00", MAY_20 + 12 * HOUR),
        ("2025-05-20T12:00+02:00", MAY_20 + 10 * HOUR),
    ],
)
def test_dates_are_utc_unless_they_say_otherwise(text, expected):
    assert parse_time_ms(text) == expected


def test_a_span_counts_back_from_now():
    now = pd.Timestamp("2025-05-27", tz="UTC")

    assert parse_time_ms("7d", now) == MAY_20
    assert parse_time_ms("12h", now) == MAY_20 + 7 * 24 * HOUR - 12 * HOUR


@pytest.mark.parametrize("bad", ["soon", "2025-13-01", "", "7 days"])
def test_a_bad_time_is_named(bad):
    with pytest.raises(argparse.ArgumentTypeError, match=f"bad time {bad!r}"):
        parse_time_ms(bad)


def test_help_explains_every_option_with_an_example(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["download", "--help"])

    text = capsys.readouterr().out
    assert exit_.value.code == 0
    for option in ("--exchange", "--symbol", "--timeframe", "--since", "--until", "--market", "--data-dir",
                   "--api-url", "--placeholders", "--max-retries", "--backoff"):
        assert option in text
    assert "example: nautilus-lstm download --exchange binance --symbol BTC/USDT --timeframe 1m --since" in text


def test_a_bad_since_stops_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["download", "--symbol", "BTC/USDT", "--timeframe", "1m", "--since", "soon"])

    assert exit_.value.code == 2
    assert "argument --since: bad time 'soon'" in capsys.readouterr().err


def test_until_must_come_after_since(caplog, tmp_path):
    argv = ["download", "--symbol", "BTC/USDT", "--timeframe", "1m", "--since", "2025-05-27", "--until", "2025-05-20"]

    assert main(argv + ["--data-dir", str(tmp_path)]) == 2
    assert caplog.records[-1].getMessage() == (
        "until (2025-05-20 00:00:00 UTC) must be after since (2025-05-27 00:00:00 UTC)"
    )
