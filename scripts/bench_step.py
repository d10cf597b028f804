"""Per-bar latency of the online prediction path (the numba kernels), as JSON.

    .venv/bin/python scripts/bench_step.py --model /tmp/p-model [--data KLINE_FILE] [--bars N]
    .venv/bin/python scripts/bench_step.py --architecture alstm --max-epochs 1 [--bars N]

Without ``--model`` it trains the shipped default config on the data file first (a minute or
two), with ``--architecture`` (lstm, alstm or cnn_lstm) and ``--max-epochs`` if given: the
latency depends on the network's shape, not on how long it trained. Real bars from the file (default: the 3-month BTC/USDT 1m file), one thread, each call timed
on its own (median and p99 in µs, warm-up bars left out):

- ``features``: OnlineFeatures.update;
- ``network_step``: the architecture's streaming network's step (StreamingLSTM or a hybrid) on
  the scaled feature rows;
- ``predictor_update``: OnlinePredictor.update: the strategy's per-bar ``forecast`` and its outputs as a list;
- ``lightgbm_update``: OnlineLightGBM.update, the LightGBM benchmark's strategy's per-bar call
  (features and LightGBM's fast single-row C path in one compiled call, models.kernels.trees);
- ``alignment``: OnlinePredictor's compiled call on its arrays as built, each on a 64-byte
  boundary (``models.kernels.aligned``), against the same arrays copied 16 bytes past one, as
  NumPy may place them; the two take turns ``--alignment-rounds`` times on the first 30,000 bars
  (each round's median, the medians' median, and the median of each round's ratio, off to aligned).

Also: parity (online features against ``compute_features``, online predictions against
``batch_predict``, for the network and for LightGBM), the kernels' compile times in fresh
processes (empty numba cache, then cached), and eager torch and LightGBM's ``Booster.predict`` of
one row for context. It imports the code it measures and keeps no old copy: to
compare with an earlier version, run this script in a worktree of that commit on the same model
(``git worktree add ../before REV && cd ../before && PYTHONPATH=. ../main/.venv/bin/python
scripts/bench_step.py --model M``: without ``PYTHONPATH=.`` the venv's editable install imports
its own checkout's code, not the worktree's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import torch

from marketdata.history import import_klines
from marketdata.klines import read_klines, to_bars_frame
from marketdata.timeframes import parse_timeframe
from models.artifact import load_artifact
from models.config import load_config
from models.features import compute_features
from models.kernels import aligned
from models.kernels.features import OnlineFeatures
from models.kernels.hybrids import streaming_network
from models.network import ARCHITECTURES
from models.predictor import OnlineLightGBM, OnlinePredictor, batch_predict
from models.train import train_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "btcusdt_1m_2025-05-20_2025-08-18.csv.gz"
BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


def summary_us(times_ns: np.ndarray) -> dict[str, float]:
    return {"median_us": round(float(np.median(times_ns)) / 1e3, 3), "p99_us": round(float(np.percentile(times_ns, 99)) / 1e3, 3)}


def measure(call: Callable, inputs: list[tuple], skip: int) -> tuple[dict, list]:
    """Call on every input, in order, timing each call; the summary (``skip`` first calls left
    out) and what it returned."""
    clock = time.perf_counter_ns
    times, results = np.empty(len(inputs)), []
    for n, args in enumerate(inputs):
        start = clock()
        out = call(*args)
        times[n] = clock() - start
        results.append(None if out is None else np.array(out, dtype=np.float64))
    return summary_us(times[skip:]), results


def off_boundary(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` whose data starts 16 bytes past a 64-byte boundary."""
    copy = aligned(np.empty(array.nbytes + 16, np.uint8))[16:].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


def alignment_effect(artifact, inputs: list[tuple], warmup: int, rounds: int) -> dict:
    """The compiled per-bar call on the predictor's arrays as built, and on copies off the boundary, taking turns."""
    medians = {"aligned_us": [], "off_boundary_us": []}
    for _ in range(rounds):
        for name in medians:
            predictor = OnlinePredictor(artifact)
            arrays = predictor._arrays
            if name == "off_boundary_us":
                arrays = tuple(off_boundary(a) if isinstance(a, np.ndarray) else a for a in arrays)
            call = predictor._predict_bar
            summary, _ = measure(lambda *bar: call(*bar, *arrays), inputs, warmup)
            medians[name].append(summary["median_us"])
    # The ratio within each round: this machine's speed drifts by a third from one minute to the next.
    ratios = [off / on for on, off in zip(medians["aligned_us"], medians["off_boundary_us"])]
    return {**{name: round(float(np.median(values)), 3) for name, values in medians.items()}, "per_round": medians,
            "ratio_off_to_aligned": round(float(np.median(ratios)), 3), "ratio_per_round": [round(r, 3) for r in ratios]}


def timed(call: Callable[[int], object], steps: int) -> dict[str, float]:
    for k in range(min(steps, 1_000)):
        call(k)
    clock = time.perf_counter_ns
    times = np.empty(steps)
    for k in range(steps):
        start = clock()
        call(k)
        times[k] = clock() - start
    return summary_us(times)


COMPILE_PROBE = """
import json, sys, time
started = time.perf_counter()
from models.artifact import load_artifact
from models.predictor import OnlinePredictor
imported = time.perf_counter()
artifact = load_artifact(sys.argv[1])
loaded = time.perf_counter()
OnlinePredictor(artifact)
print(json.dumps({"import_s": imported - started, "construction_s": time.perf_counter() - loaded}))
"""


def compile_times(model: Path) -> dict:
    """OnlinePredictor's construction in fresh processes: with an empty numba cache, then cached."""
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = [subprocess.run([sys.executable, "-c", COMPILE_PROBE, str(model)], env=env, check=True,
                               capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]) for _ in range(2)]
    first, cached = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    return {"first_construction_s": round(first["construction_s"], 3), "cached_construction_s": round(cached["construction_s"], 3),
            "import_models_predictor_s": round(cached["import_s"], 3)}


def train_default(data: Path, work: Path, architecture: str | None, max_epochs: int | None) -> Path:
    catalog, model = work / "catalog", work / "model"
    import_klines(data, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=catalog)
    config = load_config().override(data={"catalog": str(catalog), "bar_type": BAR_TYPE}, model={"architecture": architecture},
                                    training={"max_epochs": max_epochs})
    train_model(config, model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a trained artifact (default: train the default config on --data)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a Binance 1m kline file")
    parser.add_argument("--bars", type=int, default=None, help="the first N bars of the file (default: all)")
    parser.add_argument("--architecture", choices=ARCHITECTURES, help="without --model: train this architecture (default: the config's)")
    parser.add_argument("--max-epochs", type=int, help="without --model: train this many epochs at most (default: the config's)")
    parser.add_argument("--torch-steps", type=int, default=5_000, help="timed calls of eager torch, for context")
    parser.add_argument("--alignment-rounds", type=int, default=5, help="turns of the aligned and off-boundary arrays (default: 5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model and (args.architecture or args.max_epochs):
        parser.error("--architecture and --max-epochs choose what to train: not with --model")
    work = Path(tempfile.mkdtemp(prefix="nautilus-lstm-bench-step-"))
    model_path = args.model or train_default(args.data, work, args.architecture, args.max_epochs)
    artifact = load_artifact(model_path)
    bars = to_bars_frame(read_klines(args.data), parse_timeframe("1m"))
    if args.bars:
        bars = bars.iloc[: args.bars]
    inputs = list(zip(bars.index.as_unit("ns").asi8.tolist(), *(bars[c].tolist() for c in ("high", "low", "close", "volume"))))
    spec, warmup = artifact.feature_spec, artifact.feature_spec.warmup_bars

    latency = {}
    latency["features"], rows = measure(OnlineFeatures(spec).update, inputs, warmup)
    scaled = [(((row - artifact.scaler.mean) / artifact.scaler.std).astype(np.float32),) for row in rows[warmup:]]
    latency["network_step"], _ = measure(streaming_network(artifact.model).step, scaled, 0)
    latency["predictor_update"], outputs = measure(OnlinePredictor(artifact).update, inputs, warmup)
    latency["lightgbm_update"], boosted = measure(OnlineLightGBM(artifact).update, inputs, warmup)
    latency["alignment"] = alignment_effect(artifact, inputs[:30_000], warmup, args.alignment_rounds)

    offline = compute_features(bars, spec).to_numpy()[warmup:]
    worst = float(np.abs(np.array(outputs[warmup:]) - batch_predict(artifact, bars).to_numpy()).max())
    parity = {
        "features_max_abs_diff_vs_compute_features": float(np.abs(np.array(rows[warmup:]) - offline).max()),
        # In log returns, and in the network's own (scaled) units, where tests allow 1e-5.
        "predictions_max_abs_diff_vs_batch_predict": worst,
        "predictions_max_abs_diff_vs_batch_predict_network_units": worst / artifact.scales.return_scale,
        "lightgbm_max_abs_diff_vs_batch_predict": float(np.abs(
            np.concatenate(boosted[warmup:]) - batch_predict(artifact, bars, forecaster="lightgbm")["prediction"].to_numpy()).max()),
    }

    model = artifact.model.eval()
    x = torch.from_numpy(np.array([s[0] for s in scaled]))
    torch_state = None

    def torch_one_step(k: int) -> None:
        nonlocal torch_state
        _, torch_state = model(x[k].view(1, 1, -1), torch_state)

    with torch.inference_mode():
        context = {"torch_one_step": timed(torch_one_step, args.torch_steps),
                   "torch_full_window_64": timed(lambda k: model(x[k : k + 64][None]), args.torch_steps)}
    feature_rows = np.array(rows[warmup:])
    # What OnlineLightGBM's C fast path replaces: LightGBM's Python predict, one row per call.
    booster_predict = timed(lambda k: artifact.lightgbm.predict(feature_rows[k : k + 1], num_threads=1), args.torch_steps)

    cfg = artifact.lstm
    print(json.dumps({
        "model": {"path": str(model_path), "architecture": cfg.architecture, "n_features": cfg.n_features, "hidden_size": cfg.hidden_size,
                  "num_layers": cfg.num_layers, "n_outputs": cfg.n_outputs,
                  "epochs_trained": artifact.metrics.get("epochs_run")},
        "bars": len(inputs), "timed_bars": len(inputs) - warmup,
        "latency": latency,
        "parity": parity,
        "compile": compile_times(model_path),
        "context_eager_torch": context,
        "context_lightgbm_booster_predict_one_row": booster_predict,
        "env": {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
                "torch": torch.__version__, "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
    }, indent=2))


if __name__ == "__main__":
    main()
