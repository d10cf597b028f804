"""`evaluate`: the LSTM and every baseline on the same folds, with the documented schema."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from marketdata.history import import_klines
from models.evaluate import evaluate, summary_table, verdict
from models.train import train_model
from scripts.cli import main
from tests.conftest import FIXTURE_7D
from tests.fakes.training import BAR_TYPE, tiny_config
from tests.models.test_pooling import ETH, TRAIN_END, pooled  # noqa: F401  (the module fixture: a catalog and a pooled model)

REPORTED = {"mae", "rmse", "rmse_ratio_vs_zero", "directional_accuracy", "majority_rate", "ic", "rank_ic", "dm_pvalue_vs_zero"}
VOLATILITY_REPORTED = {"qlike", "rmse_log", "mz_r2", "dm_pvalue_vs_ewma", "dm_pvalue_vs_har"}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, shared_data):
    """A model trained with its catalog given relative to the working directory, evaluated from
    another directory: it must find its catalog there too."""
    root = tmp_path_factory.mktemp("evaluate")
    import_klines(shared_data / FIXTURE_7D, exchange="binance", symbol="BTC/USDT", timeframe="1m",
                  market="spot", catalog_path=root / "catalog")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        train_model(tiny_config(Path("catalog"), max_epochs=1), Path("model"))
        patch.chdir(tmp_path_factory.mktemp("elsewhere"))
        assert main(["evaluate", str(root / "model"), "--seeds", "2", "--out", str(root / "report")]) == 0
    return root / "report"


def test_the_artifact_stores_its_catalog_absolute(evaluated):
    stored = Path(json.loads((evaluated.parent / "model" / "artifact.json").read_text())["config"]["data"]["catalog"])
    assert stored.is_absolute() and stored.resolve() == (evaluated.parent / "catalog").resolve()


def test_metrics_json_schema(evaluated):
    text = (evaluated / "metrics.json").read_text()
    assert "NaN" not in text  # strict JSON
    report = json.loads(text)
    assert set(report["models"]) == {"lstm", "zero", "drift", "momentum", "ridge", "ar", "lightgbm", "prophet"}
    assert report["seeds"] == [0, 1] and len(report["folds"]) == 2
    for name, entry in report["models"].items():
        assert REPORTED <= set(entry), name
        for key in REPORTED:
            assert set(entry[key]) == {"mean", "std"}
        assert len(entry["folds"]) == 2 and REPORTED <= set(entry["folds"][0])
    volatility = report["volatility"]
    assert volatility["horizon"] == report["horizon"] and "log realized volatility" in volatility["target"]
    # The tiny config keeps the default volatility head: the network is scored on volatility too.
    assert set(volatility["models"]) == {"constant", "ewma", "har", "garch", "lstm"}
    for name, entry in volatility["models"].items():
        assert VOLATILITY_REPORTED <= set(entry), name
        for key in VOLATILITY_REPORTED:
            assert set(entry[key]) == {"mean", "std"}, (name, key)
        assert len(entry["folds"]) == 2 and VOLATILITY_REPORTED <= set(entry["folds"][0])
    # A forecast tested against itself is no test: null, not p = 1.
    assert volatility["models"]["ewma"]["dm_pvalue_vs_ewma"]["mean"] is None
    assert 0 <= volatility["models"]["garch"]["dm_pvalue_vs_ewma"]["mean"] <= 1
    assert set(report["seconds"]) >= {"lstm", "prophet", "volatility_garch"}


def test_every_model_is_scored_on_the_same_rows(evaluated):
    report = json.loads((evaluated / "metrics.json").read_text())
    counts = {name: [fold["n"]["mean"] for fold in entry["folds"]] for name, entry in report["models"].items()}
    assert len({tuple(c) for c in counts.values()}) == 1
    folds = report["folds"]
    assert folds[0]["test"][1] == folds[1]["test"][0]  # consecutive test blocks


def test_results_are_honest_about_a_random_walk(evaluated):
    report = json.loads((evaluated / "metrics.json").read_text())
    lstm = report["models"]["lstm"]
    # One-minute BTC is close to a random walk: a high hit rate here would mean leakage.
    assert 0.4 < lstm["directional_accuracy"]["mean"] < 0.6
    assert report["models"]["zero"]["ic"]["mean"] is None  # a constant forecast has no IC: null, not NaN
    assert lstm["rmse_ratio_vs_zero"]["std"] > 0  # seeds differ
    rival = report["lstm_vs_best_baseline"]["returns"]
    assert rival["baseline"] not in ("lstm", "zero")
    assert rival["rmse_ratio"]["mean"] == pytest.approx(lstm["rmse"]["mean"] / report["models"][rival["baseline"]]["rmse"]["mean"], rel=0.1)
    beats = (lstm["rmse_ratio_vs_zero"]["mean"] < 1 and lstm["dm_pvalue_vs_zero"]["mean"] < 0.05
             and rival["rmse_ratio"]["mean"] < 1 and rival["dm_pvalue"]["mean"] < 0.05)
    assert report["verdict"].startswith("Returns: the LSTM beats" if beats else "Returns: the LSTM does NOT beat")
    network = report["volatility"]["models"]["lstm"]
    assert network["qlike"]["std"] > 0  # seeds differ
    rival = report["lstm_vs_best_baseline"]["volatility"]
    assert rival["baseline"] in ("ewma", "har", "garch")
    beats = rival["qlike_ratio"]["mean"] < 1 and rival["dm_pvalue"]["mean"] < 0.05
    assert ("Volatility: the network beats" if beats else "Volatility: the network does NOT beat") in report["verdict"]
    # Volatility clusters: on real bars every classical forecast explains some of the realized volatility.
    for name in ("ewma", "har", "garch"):
        assert report["volatility"]["models"][name]["mz_r2"]["mean"] > 0.05, name


def test_plots_are_written(evaluated):
    for name in ("predicted_vs_realized.png", "cumulative_ic.png"):
        assert (evaluated / name).stat().st_size > 10_000


def test_quantile_model_reports_coverage_and_pinball(tmp_path, catalog):
    config = tiny_config(catalog, max_epochs=1).override(model={"quantiles": (0.1, 0.5, 0.9)})
    train_model(config, tmp_path / "model")
    report = evaluate(tmp_path / "model", seeds=1)
    lstm = report["models"]["lstm"]
    assert {"coverage_q0.1", "coverage_q0.5", "coverage_q0.9", "pinball"} <= set(lstm)
    # Coverage is the share of outcomes below each quantile forecast: ordered, and in [0, 1].
    cover = [lstm[f"coverage_q{q}"]["mean"] for q in ("0.1", "0.5", "0.9")]
    assert 0 <= cover[0] <= cover[1] <= cover[2] <= 1
    assert "pinball" not in report["models"]["ridge"]


def test_a_volatility_only_model_is_scored_on_volatility_alone(tmp_path, catalog):
    config = tiny_config(catalog, max_epochs=1).override(model={"return_target": "none"})
    train_model(config, tmp_path / "model")
    report = evaluate(tmp_path / "model", seeds=1)
    assert "lstm" not in report["models"] and "lstm" in report["volatility"]["models"]
    assert report["verdict"].startswith("Returns: this model has no return head.")



@pytest.fixture(scope="module")
def pooled_report(pooled, tmp_path_factory):  # noqa: F811  (the imported fixture)
    """A tiny BTC+ETH model with both heads, evaluated on 2 folds with 1 seed."""
    catalog, _, _ = pooled
    root = tmp_path_factory.mktemp("pooled-evaluate")
    config = tiny_config(catalog, max_epochs=1).override(data={"bar_types": [BAR_TYPE, ETH], "end": TRAIN_END})
    train_model(config, root / "model")
    return evaluate(root / "model", seeds=1, out=root / "report"), root / "report"


def test_a_pooled_model_is_evaluated_with_every_key(pooled_report):
    report, out = pooled_report
    assert json.loads((out / "metrics.json").read_text())["verdict"] == report["verdict"]
    assert set(report["models"]) == {"lstm", "zero", "drift", "momentum", "ridge", "ar", "lightgbm", "prophet"}
    assert set(report["volatility"]["models"]) == {"constant", "ewma", "har", "garch", "lstm"}
    assert set(report["lstm_vs_best_baseline"]) == {"returns", "volatility"}
    assert report["verdict"].startswith("Returns: the LSTM") and "Volatility: the network" in report["verdict"]
    assert set(report["instruments"]) == {BAR_TYPE, ETH}
    for scope in [report, *report["instruments"].values()]:
        for models, keys in ((scope["models"], REPORTED), (scope["volatility"]["models"], VOLATILITY_REPORTED)):
            for name, entry in models.items():
                assert keys <= set(entry) and len(entry["folds"]) == 2, name
                assert entry["mae" if keys is REPORTED else "qlike"]["mean"] is not None, name
    assert len(report["folds"]) == 2 and set(report["folds"][0]["instruments"]) == {BAR_TYPE, ETH}
    assert set(report["data"]["instruments"]) == {BAR_TYPE, ETH}
    assert (out / "predicted_vs_realized.png").stat().st_size > 10_000
    # forecasts.parquet holds both instruments' test rows; the report draws each one's forecasts.
    import pandas as pd

    from reporting.html import write_report_html

    forecasts = pd.read_parquet(out / "forecasts.parquet")
    scored = forecasts[forecasts["realized_return"].notna()].groupby("bar_type").size().to_dict()
    assert scored == {b: report["instruments"][b]["models"]["zero"]["n"]["mean"] for b in (BAR_TYPE, ETH)}
    page = write_report_html(out).read_text()
    assert all(f"Return forecasts, {b}" in page and f"Volatility forecasts, {b}" in page for b in (BAR_TYPE, ETH))


def test_pooled_metrics_cover_every_instruments_test_rows(pooled_report):
    report, _ = pooled_report
    own = report["instruments"].values()
    for name in ("lstm", "zero", "ridge", "prophet"):
        pooled_entry = report["models"][name]
        assert pooled_entry["n"]["mean"] == sum(entry["models"][name]["n"]["mean"] for entry in own) > 0
        # Squared errors add up: the pooled MSE is the row-weighted mean of the instruments'.
        squared = sum(entry["models"][name]["rmse"]["mean"] ** 2 * entry["models"][name]["n"]["mean"] for entry in own)
        assert pooled_entry["rmse"]["mean"] ** 2 * pooled_entry["n"]["mean"] == pytest.approx(squared, rel=1e-9)
    for fold in report["folds"]:  # the instruments' folds line up in time over their common span
        first = [datetime.fromisoformat(entry["test_first_close"]) for entry in fold["instruments"].values()]
        assert abs(first[0] - first[1]) <= timedelta(minutes=30), first


def stat(mean: float) -> dict:
    return {"mean": mean, "std": 0.0}


def made_up_report(network_qlike: float, pvalue_vs_best: float) -> dict:
    """A report with the verdict's inputs only: the LSTM level with the random walk on returns."""
    returns = {"rmse_ratio_vs_zero": stat(1.001), "dm_pvalue_vs_zero": stat(0.3)}
    volatility = {
        name: {"qlike": stat(qlike), "rmse_log": stat(0.4), "mz_r2": stat(0.5), "dm_pvalue_vs_ewma": stat(0.01),
               "dm_pvalue_vs_har": stat(0.02)}
        for name, qlike in (("ewma", 0.44), ("har", 0.45), ("garch", 0.37), ("lstm", network_qlike))
    }
    return {
        "horizon": 15,
        "models": {"lstm": returns},
        "volatility": {"horizon": 15, "target": "log realized volatility", "models": volatility},
        "lstm_vs_best_baseline": {
            "returns": {"baseline": "drift", "rmse_ratio": stat(1.001), "dm_pvalue": stat(0.2)},
            "volatility": {"baseline": "garch", "qlike_ratio": stat(network_qlike / 0.37), "dm_pvalue": stat(pvalue_vs_best)},
        },
    }


@pytest.mark.parametrize(("qlike", "pvalue", "beats"), [(0.30, 0.001, True), (0.30, 0.2, False), (0.40, 0.001, False)])
def test_verdict_names_both_targets_and_says_not_plainly(qlike, pvalue, beats):
    text = verdict(made_up_report(qlike, pvalue))
    assert text.startswith("Returns: the LSTM does NOT beat its best baselines")
    assert "drift (p = 0.2" in text
    expected = "Volatility: the network beats" if beats else "Volatility: the network does NOT beat"
    assert expected in text and "garch" in text
    # Against EWMA (QLIKE 0.44) and HAR (0.45) the direction is read from the losses.
    reading = "significantly better" if qlike < 0.44 else "significantly worse"
    assert f"EWMA p = 0.01 ({reading}), HAR p = 0.02 ({reading})" in text
    if qlike > 0.37 and pvalue < 0.05:
        assert "significantly worse" in text


def test_summary_table_has_a_volatility_table():
    report = made_up_report(0.3, 0.01)
    report["models"]["lstm"] |= {key: stat(0.5) for key in REPORTED}
    text = summary_table(report)
    returns, volatility = text.split("\nVolatility: ")
    assert returns.startswith("Returns: 15-bar log return") and "| lstm | 0.5 |" in returns
    assert "| qlike | rmse_log | mz_r2 | dm_pvalue_vs_ewma | dm_pvalue_vs_har |" in volatility
    assert "| garch | 0.37 | 0.4 | 0.5 | 0.01 | 0.02 |" in volatility


def test_forecasts_file_holds_each_models_test_row_forecasts_and_the_report_draws_them(evaluated):
    """forecasts.parquet: one row per scored test row, the outcome beside every model's forecast;
    report.html (written by the command) draws them in a real browser without error."""
    import numpy as np
    import pandas as pd

    from models.evaluation_forecasts import FORECASTS_FILE
    from tests.reporting.chromium import open_page
    from tests.reporting.test_report_browser import assert_rendered, figure_count

    metrics = json.loads((evaluated / "metrics.json").read_text())
    forecasts = pd.read_parquet(evaluated / FORECASTS_FILE)
    assert forecasts.index.name == "close_time" and forecasts.index.is_monotonic_increasing
    assert set(forecasts["bar_type"]) == {BAR_TYPE} and sorted(set(forecasts["fold"])) == list(range(len(metrics["folds"])))
    assert {f"return_{name}" for name in metrics["models"]} <= set(forecasts.columns)
    assert {f"log_volatility_{name}" for name in metrics["volatility"]["models"]} <= set(forecasts.columns)
    for fold in metrics["folds"]:  # each fold's rows are its test block
        rows = forecasts[forecasts["fold"] == fold["fold"]]
        assert len(rows) == fold["test"][1] - fold["test"][0]
        assert rows.index[0].isoformat() == fold["test_first_close"] and rows.index[-1].isoformat() == fold["test_last_close"]
    # The file's outcomes and forecasts give metrics.json's pooled figures (the zero forecast's MAE, the LSTM's first-seed IC).
    known = forecasts["realized_return"].notna()
    assert forecasts.loc[known, "realized_return"].abs().mean() == pytest.approx(metrics["models"]["zero"]["mae"]["mean"], rel=1e-9)
    first_seed_ic = np.corrcoef(forecasts.loc[known, "return_lstm"], forecasts.loc[known, "realized_return"])[0, 1]
    assert first_seed_ic == pytest.approx(metrics["models"]["lstm"]["ic"]["mean"], abs=2 * metrics["models"]["lstm"]["ic"]["std"] + 1e-3)
    view = open_page(evaluated / "report.html")
    assert_rendered(view, figure_count(evaluated / "report.html"))
    assert len(view.charts) >= 5  # IC per fold, two scatters, rolling IC, distribution, volatility
