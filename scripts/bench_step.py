"""Per-bar latency of the online prediction path, before and after the numba kernels, as JSON.

    .venv/bin/python scripts/bench_step.py --model /tmp/p-model [--data KLINE_FILE] [--bars N]

Without ``--model`` it trains the shipped default config on the data file first (a minute or
two). Real bars from the file (default: the 3-month BTC/USDT 1m file), one thread, each call timed
on its own, the old and the new implementation interleaved bar by bar in this one process so the
ratios compare like with like on a noisy machine (median and p99 in µs, warm-up bars left out):

- ``features``: OnlineFeatures.update;
- ``lstm_step``: StreamingLSTM.step on the scaled feature rows;
- ``predictor_update``: OnlinePredictor.update, what the strategy calls on every bar.

``before`` is the pure-Python features and the NumPy StreamingLSTM of commit caf8cac, kept in this
script only (``_Legacy*``) to measure against. Also: parity (online features against
``compute_features``, online predictions against ``batch_predict``, both paths), the kernels'
compile times in fresh processes (empty numba cache, then cached), and eager torch for context.
"""

from __future__ import annotations

import argparse
import json
import math
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

from backtests.history import import_klines
from backtests.klines import read_klines, to_bars_frame
from backtests.timeframes import parse_timeframe
from models.artifact import Artifact, load_artifact
from models.config import load_config
from models.features import DAY_NS, MONDAY_NS, WEEK_NS, FeatureSpec, OnlineFeatures, compute_features, ema_alpha, phase, wilder_alpha
from models.network import LSTMForecaster, StreamingLSTM
from models.predictor import OnlinePredictor, batch_predict
from models.train import train_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "btcusdt_1m_2025-05-20_2025-08-18.csv.gz"
BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"


# ---------------------------------------------------------------------------------------------
# Before: the implementations the kernels replaced (commit caf8cac), for comparison only.


class _LegacyRolling:
    __slots__ = ("windows", "values", "pos", "sums", "squares")

    def __init__(self, windows: tuple[int, ...], size: int = 0):
        self.windows = windows
        self.values = [0.0] * max(size, *windows, 1)
        self.pos = 0
        self.sums = [0.0] * len(windows)
        self.squares = [0.0] * len(windows)

    def ago(self, k: int) -> float:
        return self.values[self.pos - k]

    def push(self, x: float) -> None:
        values, pos, sums, squares = self.values, self.pos, self.sums, self.squares
        for i, w in enumerate(self.windows):
            old = values[pos - w]
            sums[i] += x - old
            squares[i] += x * x - old * old
        values[pos] = x
        pos += 1
        if pos == len(values):
            pos = 0
            for i, w in enumerate(self.windows):
                sums[i] = math.fsum(values[-w:])
                squares[i] = math.fsum([v * v for v in values[-w:]])
        self.pos = pos

    def mean_std(self, i: int) -> tuple[float, float]:
        w = self.windows[i]
        s = self.sums[i]
        return s / w, math.sqrt(max(self.squares[i] - s * s / w, 0.0) / (w - 1))


class _LegacyOnlineFeatures:
    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self.warmup_bars = spec.warmup_bars
        self._lags = spec.return_lags
        self._ema_alphas = [(ema_alpha(n), 1.0 - ema_alpha(n)) for n in spec.ema_periods]
        self._rsi_alphas = [(wilder_alpha(n), 1.0 - wilder_alpha(n)) for n in spec.rsi_periods]
        self._macd_alphas = [(ema_alpha(n), 1.0 - ema_alpha(n)) for n in spec.macd]
        self._count = 0
        self._prev_close = 0.0
        self._log_closes = _LegacyRolling((), size=max(spec.return_lags, default=1))
        self._returns = _LegacyRolling(spec.volatility_windows)
        self._closes = _LegacyRolling(spec.sma_periods)
        self._volumes = _LegacyRolling(spec.volume_z_windows)
        self._emas = [0.0] * len(spec.ema_periods)
        self._gains = [0.0] * len(spec.rsi_periods)
        self._losses = [0.0] * len(spec.rsi_periods)
        self._fast = self._slow = self._signal = 0.0

    def update(self, close_time_ns, open, high, low, close, volume):
        first = self._count == 0
        self._count += 1
        log_close = math.log(close)
        log_closes = self._log_closes
        row = [log_close - log_closes.ago(k) for k in self._lags]
        if not first:
            self._returns.push(log_close - log_closes.ago(1))
        log_closes.push(log_close)
        self._closes.push(close)
        self._volumes.push(volume)
        emas = self._emas
        for i, (a, b) in enumerate(self._ema_alphas):
            emas[i] = close if first else a * close + b * emas[i]
        delta = 0.0 if first else close - self._prev_close
        self._prev_close = close
        gain, loss = max(delta, 0.0), max(-delta, 0.0)
        gains, losses = self._gains, self._losses
        for i, (a, b) in enumerate(self._rsi_alphas):
            gains[i] = a * gain + b * gains[i]
            losses[i] = a * loss + b * losses[i]
        if self._macd_alphas:
            (fa, fb), (sa, sb), (ga, gb) = self._macd_alphas
            self._fast = close if first else fa * close + fb * self._fast
            self._slow = close if first else sa * close + sb * self._slow
            line = self._fast - self._slow
            self._signal = line if first else ga * line + gb * self._signal
        if self._count <= self.warmup_bars:
            return None
        spec = self.spec
        for i in range(len(spec.volatility_windows)):
            row.append(self._returns.mean_std(i)[1])
        for i, n in enumerate(spec.sma_periods):
            row.append(math.log(close / (self._closes.sums[i] / n)))
        for ema in emas:
            row.append(math.log(close / ema))
        for g, lo in zip(gains, losses):
            total = g + lo
            row.append(g / total if total > 0.0 else 0.5)
        if spec.macd:
            row += [line / close, self._signal / close, (line - self._signal) / close]
        for i in range(len(spec.volume_z_windows)):
            mean, std = self._volumes.mean_std(i)
            row.append((volume - mean) / std if std > 0.0 else 0.0)
        if spec.high_low_range:
            row.append((high - low) / close)
        if spec.time_of_day:
            angle = phase(close_time_ns, DAY_NS)
            row += [math.sin(angle), math.cos(angle)]
        if spec.day_of_week:
            angle = phase(close_time_ns, WEEK_NS, MONDAY_NS)
            row += [math.sin(angle), math.cos(angle)]
        return np.array(row)


class _LegacyStreamingLSTM:
    def __init__(self, model: LSTMForecaster):
        cfg = model.config
        n_in, hid, layers = cfg.n_features, cfg.hidden_size, cfg.num_layers
        self.config = cfg
        self._xh = np.zeros(n_in + layers * hid, np.float32)
        self._x = self._xh[:n_in]
        self._h = self._xh[n_in:].reshape(layers, hid)
        self._c = np.zeros((layers, hid), np.float32)
        order = torch.cat([torch.arange(0, 2 * hid), torch.arange(3 * hid, 4 * hid), torch.arange(2 * hid, 3 * hid)])
        scale = torch.ones(4 * hid, 1)
        scale[: 3 * hid] = 0.5
        self._layers = []
        with torch.no_grad():
            lstm = model.lstm
            for layer in range(layers):
                w = torch.cat([getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")], dim=1)
                b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
                w = _f32(w[order] * scale)
                b = _f32(b[order] * scale[:, 0])
                start = 0 if layer == 0 else n_in + (layer - 1) * hid
                xh = self._xh[start : n_in + (layer + 1) * hid]
                z = np.empty(4 * hid, np.float32)
                i, f, o, g = z[:hid], z[hid : 2 * hid], z[2 * hid : 3 * hid], z[3 * hid :]
                tmp = np.empty(hid, np.float32)
                self._layers.append((w, b, xh, z, z[: 3 * hid], i, f, o, g, self._c[layer], self._h[layer], tmp))
            self._head_w = _f32(model.head.weight)
            self._head_b = _f32(model.head.bias)
        self._y = np.zeros(cfg.n_outputs, np.float32)
        self._gaps = self._y[1:]
        self._y_out = self._y.view()
        self._y_out.flags.writeable = False

    def step(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self._x.shape:
            raise ValueError(f"expected features of shape {self._x.shape}, got {x.shape}")
        self._x[:] = x
        for w, b, xh, z, sigmoid_gates, i, f, o, g, c, h, tmp in self._layers:
            np.dot(w, xh, out=z)
            z += b
            np.tanh(z, out=z)
            sigmoid_gates *= 0.5
            sigmoid_gates += 0.5
            c *= f
            np.multiply(i, g, out=tmp)
            c += tmp
            np.tanh(c, out=tmp)
            np.multiply(o, tmp, out=h)
        y = self._y
        np.dot(self._head_w, self._h[-1], out=y)
        y += self._head_b
        if self.config.quantiles:
            np.logaddexp(0.0, self._gaps, out=self._gaps)
            np.cumsum(y, out=y)
        return self._y_out


class _LegacyOnlinePredictor:
    def __init__(self, artifact: Artifact):
        self.features = _LegacyOnlineFeatures(artifact.feature_spec)
        self.network = _LegacyStreamingLSTM(artifact.model)
        self._mean = artifact.scaler.mean.astype(np.float32)
        self._inv_std = (1.0 / artifact.scaler.std).astype(np.float32)
        self._target_scale = artifact.target_scale
        self._scaled = np.empty(len(self._mean), dtype=np.float32)

    def update(self, close_time_ns, open_, high, low, close, volume):
        row = self.features.update(close_time_ns, open_, high, low, close, volume)
        if row is None:
            return None
        np.subtract(row, self._mean, out=self._scaled, casting="unsafe")
        self._scaled *= self._inv_std
        outputs = self.network.step(self._scaled)
        return outputs * self._target_scale


def _f32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Measurement.


def summary_us(times_ns: np.ndarray) -> dict[str, float]:
    return {"median_us": round(float(np.median(times_ns)) / 1e3, 3), "p99_us": round(float(np.percentile(times_ns, 99)) / 1e3, 3)}


def race(before: Callable, after: Callable, inputs: list[tuple], skip: int) -> tuple[dict, dict, list, list]:
    """Call both on every input, in order, timing each call; which goes first alternates."""
    clock = time.perf_counter_ns
    times = np.empty((2, len(inputs)))
    results: tuple[list, list] = ([], [])
    calls = (before, after)
    for n, args in enumerate(inputs):
        for k in ((0, 1) if n % 2 else (1, 0)):
            start = clock()
            out = calls[k](*args)
            times[k, n] = clock() - start
            results[k].append(None if out is None else np.array(out, dtype=np.float64))
    return summary_us(times[0, skip:]), summary_us(times[1, skip:]), *results


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


def train_default(data: Path, work: Path) -> Path:
    catalog, model = work / "catalog", work / "model"
    import_klines(data, exchange="binance", symbol="BTC/USDT", timeframe="1m", market="spot", catalog_path=catalog)
    train_model(load_config().override(data={"catalog": str(catalog), "bar_type": BAR_TYPE}), model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a trained artifact (default: train the default config on --data)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a Binance 1m kline file")
    parser.add_argument("--bars", type=int, default=None, help="the first N bars of the file (default: all)")
    parser.add_argument("--torch-steps", type=int, default=5_000, help="timed calls of eager torch, for context")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model_path = args.model or train_default(args.data, Path(tempfile.mkdtemp(prefix="nautilus-lstm-bench-step-")))
    artifact = load_artifact(model_path)
    bars = to_bars_frame(read_klines(args.data), parse_timeframe("1m"))
    if args.bars:
        bars = bars.iloc[: args.bars]
    inputs = list(zip(bars.index.as_unit("ns").asi8.tolist(), *(bars[c].tolist() for c in ("open", "high", "low", "close", "volume"))))
    spec, warmup = artifact.feature_spec, artifact.feature_spec.warmup_bars

    before, after = {}, {}
    before["features"], after["features"], _, rows = race(
        _LegacyOnlineFeatures(spec).update, OnlineFeatures(spec).update, inputs, warmup)
    scaled = [(((row - artifact.scaler.mean) / artifact.scaler.std).astype(np.float32),) for row in rows[warmup:]]
    before["lstm_step"], after["lstm_step"], _, _ = race(
        _LegacyStreamingLSTM(artifact.model).step, StreamingLSTM(artifact.model).step, scaled, 0)
    old_predictor, new_predictor = _LegacyOnlinePredictor(artifact), OnlinePredictor(artifact)
    before["predictor_update"], after["predictor_update"], old_out, new_out = race(
        old_predictor.update, new_predictor.update, inputs, warmup)

    offline = compute_features(bars, spec).to_numpy()[warmup:]
    old_rows = np.array([row for row in _stream(_LegacyOnlineFeatures(spec), inputs) if row is not None])
    batch = batch_predict(artifact, bars).to_numpy()
    parity = {
        "features_max_abs_diff_vs_compute_features": {
            "before": float(np.abs(old_rows - offline).max()), "after": float(np.abs(np.array(rows[warmup:]) - offline).max())},
        "features_after_equal_before_bitwise": bool(np.array_equal(np.array(rows[warmup:]), old_rows)),
    }
    for name, out in (("before", old_out), ("after", new_out)):
        worst = float(np.abs(np.array(out[warmup:]) - batch).max())
        # In log returns, and in the network's own (scaled) units, where tests allow 1e-5.
        parity.setdefault("predictions_max_abs_diff_vs_batch_predict", {})[name] = worst
        parity.setdefault("predictions_max_abs_diff_vs_batch_predict_network_units", {})[name] = worst / artifact.target_scale

    model = artifact.model.eval()
    x = torch.from_numpy(np.array([s[0] for s in scaled]))
    torch_state = None

    def torch_one_step(k: int) -> None:
        nonlocal torch_state
        _, torch_state = model(x[k].view(1, 1, -1), torch_state)

    with torch.inference_mode():
        context = {"torch_one_step": timed(torch_one_step, args.torch_steps),
                   "torch_full_window_64": timed(lambda k: model(x[k : k + 64][None]), args.torch_steps)}

    cfg = artifact.lstm
    print(json.dumps({
        "model": {"path": str(model_path), "n_features": cfg.n_features, "hidden_size": cfg.hidden_size,
                  "num_layers": cfg.num_layers, "n_outputs": cfg.n_outputs},
        "bars": len(inputs), "timed_bars": len(inputs) - warmup,
        "before": before, "after": after,
        "speedup_median": {k: round(before[k]["median_us"] / after[k]["median_us"], 2) for k in before},
        "parity": parity,
        "compile": compile_times(model_path),
        "context_eager_torch": context,
        "env": {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
                "torch": torch.__version__, "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
    }, indent=2))


def _stream(online, inputs: list[tuple]) -> list:
    return [online.update(*bar) for bar in inputs]


if __name__ == "__main__":
    main()
