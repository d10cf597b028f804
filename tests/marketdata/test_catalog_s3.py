"""A catalog in object storage: the bars read from an s3:// URL (moto on loopback) are the local copy's,
exactly; a URL with no catalog under it says so, naming it; the credentials never reach logs or output."""

import logging
from pathlib import Path

import pandas as pd
import pytest
from nautilus_trader.model.data import BarType

from backtests.parallel import require_shared_path
from marketdata.catalog import (
    CatalogError,
    absolute_location,
    bar_chunks,
    catalog_instrument,
    catalog_location,
    coverage,
    load_bars,
    open_catalog,
)
from marketdata.object_storage import s3_rust_options
from tests.fakes.s3_store import BUCKET, SECRET, s3_catalog_store
from tests.fakes.training import BAR_TYPE


@pytest.fixture(scope="module")
def store(catalog):
    with pytest.MonkeyPatch.context() as monkeypatch, s3_catalog_store(catalog, monkeypatch) as store:
        yield store


def test_bars_read_from_the_url_are_the_local_ones_exactly(store, catalog, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    start, end = pd.Timestamp("2025-05-21 06:00", tz="UTC"), pd.Timestamp("2025-05-22 18:30", tz="UTC")
    for bounds in [(None, None), (start, end)]:
        remote, local = load_bars(store.url, BAR_TYPE, *bounds), load_bars(catalog, BAR_TYPE, *bounds)
        assert len(remote) > 1000
        pd.testing.assert_frame_equal(remote, local, check_exact=True)
    assert catalog_instrument(store.url, "BTCUSDT.BINANCE") == catalog_instrument(catalog, "BTCUSDT.BINANCE")
    bar_type = BarType.from_str(BAR_TYPE)
    assert coverage(store.url, bar_type) == coverage(catalog, bar_type)
    assert coverage(store.url + "/", bar_type) == coverage(catalog, bar_type)  # a trailing slash names the same prefix
    span = 2 * 86_400 * 10**9
    chunks = [list(bar_chunks(where, [BAR_TYPE], start.value, end.value, span)) for where in (store.url, catalog)]
    assert chunks[0] == chunks[1] and len(chunks[0]) == 1
    printed = capfd.readouterr()
    assert SECRET not in caplog.text + printed.out + printed.err


@pytest.mark.parametrize("where", ["s3://{bucket}/no-such-prefix", "s3://no-such-bucket/catalog"])
def test_a_url_without_a_catalog_says_so_naming_it(store, where, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    url = where.format(bucket=BUCKET)
    with pytest.raises(CatalogError, match=rf"no catalog at {url}: nothing under {url}/data") as raised:
        load_bars(url, BAR_TYPE)
    printed = capfd.readouterr()
    assert SECRET not in str(raised.value) + caplog.text + printed.out + printed.err


def test_a_bar_type_the_url_lacks_is_named_with_those_it_holds(store):
    other = "ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
    with pytest.raises(CatalogError, match=rf"{store.url} holds no {other} bars .*\(bar types held: {BAR_TYPE}\)"):
        load_bars(store.url, other)


def test_other_protocols_are_refused_by_name():
    with pytest.raises(CatalogError, match=r"gs://bucket/catalog: .* s3:// URL .*not gs://"):
        open_catalog("gs://bucket/catalog")


def test_the_rust_reader_gets_the_aws_environment():
    """Nautilus's Rust query engine reads no environment: the AWS_* variables are handed to it, an HTTP endpoint
    allowed explicitly; a service-specific endpoint wins over the general one, as in botocore."""
    environ = {"AWS_ENDPOINT_URL": "http://general:9000", "AWS_ENDPOINT_URL_S3": "http://s3-only:9000",
               "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert s3_rust_options(environ) == {"endpoint_url": "http://s3-only:9000", "region": "eu-west-1",
                                        "access_key_id": "id", "secret_access_key": "secret", "allow_http": "true"}
    assert s3_rust_options({"AWS_ENDPOINT_URL": "https://minio.example", "AWS_SESSION_TOKEN": "t"}) == {
        "endpoint_url": "https://minio.example", "session_token": "t"}
    assert s3_rust_options({}) == {}


def test_urls_stay_urls_and_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert catalog_location("s3://bucket/catalog") == "s3://bucket/catalog"  # a Path would fold it to s3:/bucket
    assert absolute_location("s3://bucket/catalog") == "s3://bucket/catalog"
    assert absolute_location("data/catalog") == tmp_path / "data" / "catalog"


def test_a_url_is_a_path_every_worker_sees_but_a_missing_local_one_is_not(tmp_path):
    require_shared_path("s3://bucket/catalog", "catalog")
    require_shared_path(tmp_path, "catalog")
    with pytest.raises(FileNotFoundError, match=r"catalog .*/elsewhere not found on .*filesystem all the cluster's nodes"):
        require_shared_path(tmp_path / "elsewhere", "catalog")


def test_writers_refuse_a_url_by_name():
    """download and import-klines lock and move local files: a URL for --data-dir is refused, not made a folder."""
    import argparse

    from scripts.options import local_folder

    with pytest.raises(argparse.ArgumentTypeError, match=r"s3://bucket/catalog: bars are written to a local catalog folder"):
        local_folder("s3://bucket/catalog")
    assert local_folder("data/catalog") == Path("data/catalog")
