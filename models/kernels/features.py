"""The features one bar at a time: the per-bar kernel behind the strategy's inputs.

:class:`OnlineFeatures` computes ``models.features.compute_features``' columns bar by bar, in O(1),
as one numba-compiled call per bar on preallocated arrays; ``tests/models/test_features.py`` holds the
two to 1e-9 on real bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numba import njit

from models.features import DAY_NS, MONDAY_NS, WEEK_NS, FeatureSpec, default_spec, ema_alpha, phase, wilder_alpha
from models.kernels import aligned

# ---------------------------------------------------------------------------------------------
# Online: one bar at a time, in O(1), as ONE compiled call per bar (numba) on preallocated arrays.
#
# All that the features carry from bar to bar is one float64 vector (its counters included: they
# stay exact below 2**53). _Layout says where each part of it lives, and hands the kernel the
# spec's windows and offsets as one int64 vector and the averages' coefficients as a float64 one,
# so the call takes four arrays and the bar's numbers; Python->numba dispatch costs ~40 ns an
# array. The kernel runs without fastmath: every operation is the IEEE one, in the order written.

# Slots of the state vector that every spec has; the rest is laid out by _Layout.
_COUNT, _PREV_CLOSE, _MACD_FAST, _MACD_SLOW, _MACD_SIGNAL = range(5)

# The index vector starts with these slots, then one _RING_FIELDS-long record per ring, then the
# lists of windows.
_WARMUP, _N_LAGS, _LAGS, _EMAS, _N_EMAS, _GAINS, _LOSSES, _N_RSI, _MACD, _HL_RANGE, _TOD, _DOW = range(12)
_RINGS = 12
# Rings of past values: log closes (for ret_k), one-bar returns (vol_w), closes (close_sma_n),
# volumes (volume_z_w). Each keeps running sums and sums of squares over its windows.
_LOG_CLOSES, _RETURNS, _CLOSES, _VOLUMES = range(4)
# A ring's record: where its values start, how many, the slot of its next position, where its
# sums and sums of squares start, where its windows start in the index vector, how many.
_VALUES, _SIZE, _POS, _SUMS, _SQUARES, _WINDOWS, _N_WINDOWS = range(7)
_RING_FIELDS = 7


class _Layout:
    """Where each part of OnlineFeatures' state lives in its float64 vector (``parts``, named
    as in ``get_state``), and the ``index``/``coefficients`` vectors the kernel reads."""

    def __init__(self, spec: FeatureSpec):
        self.size = 5  # the fixed slots
        self.parts: dict[str, slice] = {}
        emas, gains, losses = (self._take(name, n) for name, n in (
            ("emas", len(spec.ema_periods)), ("gains", len(spec.rsi_periods)), ("losses", len(spec.rsi_periods))))
        ring_windows = {  # the windows of each ring, and how far back it must reach
            _LOG_CLOSES: ("log_closes", (), max(spec.return_lags, default=1)),
            _RETURNS: ("returns", spec.volatility_windows, 1),
            _CLOSES: ("closes", spec.sma_periods, 1),
            _VOLUMES: ("volumes", spec.volume_z_windows, 1),
        }
        lists = [spec.return_lags]
        windows_at = _RINGS + 4 * _RING_FIELDS + len(spec.return_lags)
        records = []
        for _, (name, windows, reach) in sorted(ring_windows.items()):  # records in ring order
            size = max((reach, *windows))
            values, pos = self._take(f"{name}.values", size), self._take(f"{name}.pos", 1)
            sums, squares = self._take(f"{name}.sums", len(windows)), self._take(f"{name}.squares", len(windows))
            records += [values.start, size, pos.start, sums.start, squares.start, windows_at, len(windows)]
            lists.append(windows)
            windows_at += len(windows)
        header = [0] * _RINGS
        header[_WARMUP] = spec.warmup_bars
        header[_N_LAGS], header[_LAGS] = len(spec.return_lags), _RINGS + 4 * _RING_FIELDS
        header[_EMAS], header[_N_EMAS] = emas.start, len(spec.ema_periods)
        header[_GAINS], header[_LOSSES], header[_N_RSI] = gains.start, losses.start, len(spec.rsi_periods)
        header[_MACD], header[_HL_RANGE] = bool(spec.macd), spec.high_low_range
        header[_TOD], header[_DOW] = spec.time_of_day, spec.day_of_week
        self.index = aligned(np.array(header + records + [w for group in lists for w in group], dtype=np.int64))
        # Each average's (weight of the new value, weight of the old average), in the state's order:
        # the EMAs, the RSIs (gains and losses share theirs), then MACD's fast, slow and signal.
        alphas = [ema_alpha(n) for n in spec.ema_periods] + [wilder_alpha(n) for n in spec.rsi_periods]
        alphas += [ema_alpha(n) for n in spec.macd]
        self.coefficients = aligned(np.array([w for a in alphas for w in (a, 1.0 - a)], dtype=np.float64))

    def _take(self, name: str, n: int) -> slice:
        self.parts[name] = part = slice(self.size, self.size + n)
        self.size += n
        return part


@njit(cache=True, error_model="numpy")
def exact_sum(values: np.ndarray, squared: bool) -> float:
    """Sum of ``values`` (or of their squares) with Neumaier's compensation: within an ulp or so
    of the exact sum, so recomputing a window's sums with it resets any rounding a long run built."""
    total = compensation = 0.0
    for v in values:
        x = v * v if squared else v
        t = total + x
        if abs(total) >= abs(x):
            compensation += (total - t) + x
        else:
            compensation += (x - t) + total
        total = t
    return total + compensation


@njit(cache=True, error_model="numpy")
def _ago(index: np.ndarray, state: np.ndarray, ring: int, k: int) -> float:
    """The value pushed onto ``ring`` k pushes ago (1 <= k <= its size; 0.0 before it filled)."""
    at = _RINGS + ring * _RING_FIELDS
    size = index[at + _SIZE]
    i = int(state[index[at + _POS]]) - k
    return state[index[at + _VALUES] + (i + size if i < 0 else i)]


@njit(cache=True, error_model="numpy")
def _push(index: np.ndarray, state: np.ndarray, ring: int, x: float) -> None:
    """Push ``x`` onto ``ring``, updating its running sums; once per lap of the ring, recompute
    the sums from its values with _exact_sum so rounding cannot build up over a long run."""
    at = _RINGS + ring * _RING_FIELDS
    values, size, pos_slot = index[at + _VALUES], index[at + _SIZE], index[at + _POS]
    sums, squares, windows = index[at + _SUMS], index[at + _SQUARES], index[at + _WINDOWS]
    pos = int(state[pos_slot])
    for i in range(index[at + _N_WINDOWS]):
        back = pos - index[windows + i]
        old = state[values + (back + size if back < 0 else back)]  # leaves the window (0.0 while it fills)
        state[sums + i] += x - old
        state[squares + i] += x * x - old * old
    state[values + pos] = x
    pos += 1
    if pos == size:
        pos = 0
        for i in range(index[at + _N_WINDOWS]):
            last = state[values + size - index[windows + i] : values + size]
            state[sums + i] = exact_sum(last, False)
            state[squares + i] = exact_sum(last, True)
    state[pos_slot] = pos


@njit(cache=True, error_model="numpy")
def _mean_std(index: np.ndarray, state: np.ndarray, ring: int, i: int) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of ``ring``'s values over its i-th window."""
    at = _RINGS + ring * _RING_FIELDS
    w = index[index[at + _WINDOWS] + i]
    s = state[index[at + _SUMS] + i]
    return s / w, math.sqrt(max(state[index[at + _SQUARES] + i] - s * s / w, 0.0) / (w - 1))


_phase = njit(cache=True)(phase)  # the same definition as offline, compiled


@njit(cache=True, error_model="numpy")
def update_features(index, coefficients, state, row, close_time_ns, high, low, close, volume) -> bool:
    """OnlineFeatures.update on the arrays of its _Layout: advance ``state`` by one bar and, once
    the warm-up is over, write the bar's row into ``row`` (in spec.columns order) and return True."""
    first = state[_COUNT] == 0.0
    state[_COUNT] += 1.0
    log_close = math.log(close)
    col = 0
    for j in range(index[_N_LAGS]):  # ret_k: log(c[t] / c[t-k]), before this bar joins the history
        row[col] = log_close - _ago(index, state, _LOG_CLOSES, index[index[_LAGS] + j])
        col += 1
    if not first:
        _push(index, state, _RETURNS, log_close - _ago(index, state, _LOG_CLOSES, 1))
    _push(index, state, _LOG_CLOSES, log_close)
    _push(index, state, _CLOSES, close)
    _push(index, state, _VOLUMES, volume)

    at = 0  # the next average's (alpha, 1 - alpha) in coefficients
    for i in range(index[_EMAS], index[_EMAS] + index[_N_EMAS]):
        state[i] = close if first else coefficients[at] * close + coefficients[at + 1] * state[i]
        at += 2

    delta = 0.0 if first else close - state[_PREV_CLOSE]
    state[_PREV_CLOSE] = close
    gain, loss = max(delta, 0.0), max(-delta, 0.0)
    for j in range(index[_N_RSI]):
        a, b = coefficients[at], coefficients[at + 1]
        state[index[_GAINS] + j] = a * gain + b * state[index[_GAINS] + j]
        state[index[_LOSSES] + j] = a * loss + b * state[index[_LOSSES] + j]
        at += 2

    line = 0.0
    if index[_MACD]:
        c = coefficients  # fast (at, at + 1), slow (at + 2, at + 3), signal (at + 4, at + 5)
        state[_MACD_FAST] = close if first else c[at] * close + c[at + 1] * state[_MACD_FAST]
        state[_MACD_SLOW] = close if first else c[at + 2] * close + c[at + 3] * state[_MACD_SLOW]
        line = state[_MACD_FAST] - state[_MACD_SLOW]
        state[_MACD_SIGNAL] = line if first else c[at + 4] * line + c[at + 5] * state[_MACD_SIGNAL]

    if state[_COUNT] <= index[_WARMUP]:
        return False

    # The rest of the row, in spec.columns order; ret_k is already in it.
    ring = _RINGS + _RETURNS * _RING_FIELDS
    for i in range(index[ring + _N_WINDOWS]):  # vol_w: sample std of the last w one-bar log returns
        row[col] = _mean_std(index, state, _RETURNS, i)[1]
        col += 1
    ring = _RINGS + _CLOSES * _RING_FIELDS
    for i in range(index[ring + _N_WINDOWS]):  # close_sma_n: log(c / SMA_n(c))
        row[col] = math.log(close / (state[index[ring + _SUMS] + i] / index[index[ring + _WINDOWS] + i]))
        col += 1
    for i in range(index[_EMAS], index[_EMAS] + index[_N_EMAS]):  # close_ema_n: log(c / EMA_n(c))
        row[col] = math.log(close / state[i])
        col += 1
    for j in range(index[_N_RSI]):  # rsi_n: avg gain / (avg gain + avg loss), 0.5 if both are 0
        g, lo = state[index[_GAINS] + j], state[index[_LOSSES] + j]
        total = g + lo
        row[col] = g / total if total > 0.0 else 0.5
        col += 1
    if index[_MACD]:  # macd, macd_signal, macd_hist: the MACD line, its signal and their gap, over c
        signal = state[_MACD_SIGNAL]
        row[col], row[col + 1], row[col + 2] = line / close, signal / close, (line - signal) / close
        col += 3
    ring = _RINGS + _VOLUMES * _RING_FIELDS
    for i in range(index[ring + _N_WINDOWS]):  # volume_z_w: (v - mean_w(v)) / std_w(v), 0 if std is 0
        mean, std = _mean_std(index, state, _VOLUMES, i)
        row[col] = (volume - mean) / std if std > 0.0 else 0.0
        col += 1
    if index[_HL_RANGE]:  # hl_range: (high - low) / c
        row[col] = (high - low) / close
        col += 1
    if index[_TOD]:  # tod_sin, tod_cos: the time of day of the close, on a circle
        angle = _phase(close_time_ns, DAY_NS, 0)
        row[col], row[col + 1] = math.sin(angle), math.cos(angle)
        col += 2
    if index[_DOW]:  # dow_sin, dow_cos: the phase of the week of the close, on a circle
        angle = _phase(close_time_ns, WEEK_NS, MONDAY_NS)
        row[col], row[col + 1] = math.sin(angle), math.cos(angle)
    return True


class OnlineFeatures:
    """``compute_features`` one bar at a time: feed every bar, in order, to ``update``.

    Construction compiles the kernel (or loads it from numba's cache), so the first bar is fast.
    """

    # get_state's scalar entries and their slots (the names predate the arrays; saved states load).
    _SCALARS = {"_count": _COUNT, "_prev_close": _PREV_CLOSE, "_fast": _MACD_FAST, "_slow": _MACD_SLOW,
                "_signal": _MACD_SIGNAL}

    def __init__(self, spec: FeatureSpec | None = None):
        self.spec = spec = spec or default_spec()
        self.warmup_bars = spec.warmup_bars
        layout = self._layout = _Layout(spec)
        self._index, self._coefficients = layout.index, layout.coefficients
        self._state = aligned(np.zeros(layout.size))
        self._row = aligned(np.zeros(len(spec.columns)))
        # What update_features takes besides the bar (OnlinePredictor calls it from its kernel).
        self._kernel_arrays = (self._index, self._coefficients, self._state, self._row)
        # Compile now on throwaway state, not on the first live bar.
        update_features(self._index, self._coefficients, self._state.copy(), self._row.copy(), 0, 1.0, 1.0, 1.0, 1.0)

    def reset(self) -> None:
        """Forget every bar seen (as after construction)."""
        self._state[:] = 0.0

    def update(self, close_time_ns: int, high: float, low: float, close: float, volume: float):
        """Take the bar that closed at ``close_time_ns``; its feature row, or None during warm-up.

        No checks here: bars must come in close-time order, one per interval.
        """
        if update_features(*self._kernel_arrays, close_time_ns, high, low, close, volume):
            return self._row.copy()
        return None

    def get_state(self) -> dict:
        """All that ``update`` has accumulated, as JSON-able values (for a strategy's ``on_save``)."""
        state, parts = self._state, self._layout.parts
        saved = {"fingerprint": self.spec.fingerprint(), **{name: float(state[i]) for name, i in self._SCALARS.items()}}
        saved["_count"] = int(saved["_count"])
        for name in ("emas", "gains", "losses"):
            saved[f"_{name}"] = state[parts[name]].tolist()
        for name in ("log_closes", "returns", "closes", "volumes"):
            values, pos, sums, squares = (state[parts[f"{name}.{field}"]] for field in ("values", "pos", "sums", "squares"))
            saved[f"_{name}"] = [values.tolist(), int(pos[0]), sums.tolist(), squares.tolist()]
        return saved

    def set_state(self, state: Mapping) -> None:
        """Continue from ``get_state()`` of an instance with the same spec."""
        if state["fingerprint"] != self.spec.fingerprint():
            raise ValueError("this state was saved by OnlineFeatures of another feature spec")
        restored, parts = np.zeros_like(self._state), self._layout.parts
        for name, i in self._SCALARS.items():
            restored[i] = state[name]
        for name in ("emas", "gains", "losses"):
            restored[parts[name]] = state[f"_{name}"]
        for name in ("log_closes", "returns", "closes", "volumes"):
            values, pos, sums, squares = state[f"_{name}"]
            for field, value in (("values", values), ("pos", [pos]), ("sums", sums), ("squares", squares)):
                restored[parts[f"{name}.{field}"]] = value
        self._state[:] = restored
