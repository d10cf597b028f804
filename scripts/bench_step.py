"""Per-bar latency of the streaming LSTM step against eager torch, as one JSON object.

    .venv/bin/python scripts/bench_step.py [--features 16] [--steps 20000]

Measured on one thread, each call timed on its own (median and p99 in µs):
- ``streaming_step``: StreamingLSTM.step, what the strategy runs each bar;
- ``streaming_step_quantiles``: the same with a (0.1, 0.5, 0.9) quantile head;
- ``torch_one_step``: LSTMForecaster.forward on one bar, carrying nn.LSTM's state;
- ``torch_full_window``: LSTMForecaster.forward over the last ``--window`` bars from zero state.
``parity_max_abs_diff``: streaming over all the bars against one forward over the whole sequence.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from models.network import LSTMConfig, LSTMForecaster, StreamingLSTM

WARMUP = 2_000


def latency_us(call: Callable[[int], object], steps: int) -> dict[str, float]:
    for k in range(WARMUP):
        call(k)
    clock = time.perf_counter_ns
    times = np.empty(steps)
    for k in range(steps):
        start = clock()
        call(k)
        times[k] = clock() - start
    return {"median_us": round(float(np.median(times)) / 1e3, 2), "p99_us": round(float(np.percentile(times, 99)) / 1e3, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20_000, help="timed calls per measurement")
    parser.add_argument("--window", type=int, default=64, help="bars per full-window recompute")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = LSTMConfig(n_features=args.features)
    model = LSTMForecaster(config).eval()
    n_bars = WARMUP + args.steps + args.window
    bars = np.random.default_rng(0).standard_normal((n_bars, args.features)).astype(np.float32)
    bars_t = torch.from_numpy(bars)

    stream = StreamingLSTM(model)
    quantile_stream = StreamingLSTM(LSTMForecaster(LSTMConfig(n_features=args.features, quantiles=(0.1, 0.5, 0.9))))
    torch_state = None

    def torch_one_step(k: int) -> None:
        nonlocal torch_state
        _, torch_state = model(bars_t[k].view(1, 1, -1), torch_state)

    with torch.inference_mode():
        result = {
            "config": config.to_dict(),
            "steps": args.steps,
            "streaming_step": latency_us(lambda k: stream.step(bars[k]), args.steps),
            "streaming_step_quantiles": latency_us(lambda k: quantile_stream.step(bars[k]), args.steps),
            "torch_one_step": latency_us(torch_one_step, args.steps),
            f"torch_full_window_{args.window}": latency_us(
                lambda k: model(bars_t[k : k + args.window][None]), args.steps
            ),
        }
        stream.reset()
        streamed = np.array([stream.step(bar).copy() for bar in bars])
        result["parity_max_abs_diff"] = float(np.abs(streamed - model(bars_t[None])[0][0].numpy()).max())

    result["env"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
