"""The offline demo's sample (marketdata/samples): exactly the files its README describes, and valid bars.

The README's table is the one statement of each file's digest, rows and span; this test holds
the files to it, so the sample cannot change without the README (and this test) saying so.
"""

from __future__ import annotations

import gzip
import hashlib
import re

import pytest

from marketdata.klines import read_klines
from marketdata.timeframes import parse_timeframe
from marketdata.validation import iso_minute, validate_klines
from tests.conftest import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "marketdata" / "samples"
# | `file` | symbol | bar | rows | first open | last open | `sha256 of .gz` | `sha256 of text` |
ROW = re.compile(r"^\| `(?P<file>[^`]+\.csv\.gz)` \| (?P<symbol>[A-Z]+/[A-Z]+) \| (?P<bar>\w+) \| (?P<rows>\d+) \| "
                 r"(?P<first>[\d: -]+) \| (?P<last>[\d: -]+) \| `(?P<sha>[0-9a-f]{64})` \| `(?P<text_sha>[0-9a-f]{64})` \|$")


def described() -> list[dict]:
    return [m.groupdict() for line in (SAMPLES / "README.md").read_text().splitlines() if (m := ROW.match(line))]


def test_the_readme_describes_every_sample_file_and_only_those():
    files = sorted(row["file"] for row in described())
    assert files == ["btcusdt_1h_2024-01-01_2025-09-19.csv.gz", "ethusdt_1h_2024-01-01_2025-09-19.csv.gz"]
    assert files == sorted(path.name for path in SAMPLES.glob("*.csv.gz"))


@pytest.mark.parametrize("row", described(), ids=lambda row: row["file"])
def test_a_sample_file_is_what_its_readme_says(row):
    path = SAMPLES / row["file"]
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == row["sha"], f"{path} changed: its digest is not the README's"
    assert hashlib.sha256(gzip.decompress(data)).hexdigest() == row["text_sha"]
    assert len(data) < 2_000_000, "the sample is meant to stay small"

    timeframe = parse_timeframe(row["bar"])
    bars, report = validate_klines(read_klines(path), timeframe, source=str(path))
    assert report.bars == len(bars) == int(row["rows"])
    assert not report.gaps and not report.placeholder_open_ms, report.summary()
    assert (iso_minute(report.first_open_ms), iso_minute(report.last_open_ms)) == (row["first"], row["last"])
