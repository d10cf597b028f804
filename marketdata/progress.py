"""Progress of long work: a tqdm bar on a terminal, plain log lines anywhere else.

tqdm alone (``disable=None``) shows nothing when stderr is not a terminal, so a job run under
nohup, cron, CI or a container said nothing until it ended. :func:`progress` keeps tqdm's bar for
a terminal and otherwise logs a line at each further tenth of the work (at most one per
``interval`` seconds) and one when it ends, through :mod:`logging`, so the lines carry the job's
timestamps and go wherever its log goes. Both have the same interface: wrap an iterable, or call
``update(n)``; ``set_postfix`` adds figures; use as a context manager (or ``close()``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Self

from tqdm import tqdm

log = logging.getLogger(__name__)

TENTHS = 10  # log mode: a line at each further tenth of the total
LOG_INTERVAL_S = 10.0  # ... but no more often than this, so fast loops do not flood the log


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             leave: bool = True, interval: float | None = None, terminal: bool | None = None) -> tqdm | LogProgress:
    """A progress bar over ``iterable`` (or ``total`` units, advanced by ``update``).

    ``terminal``: None asks whether stderr is one. ``interval``: None is :data:`LOG_INTERVAL_S`. ``leave=False`` is a bar that vanishes when done
    (e.g. one epoch's batches, whose caller logs its own summary): in log mode it writes a line only
    when its work is slow enough to reach ``interval``, and none at the end.
    """
    if terminal if terminal is not None else sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, leave=leave,
                       interval=LOG_INTERVAL_S if interval is None else interval)


class LogProgress:
    """tqdm's interface written as log lines, e.g. ``walk-forward: 3/10 windows (30%) in 41.2 s, sharpe=1.2``."""

    def __init__(self, iterable: Iterable | None, *, total: float | None, desc: str, unit: str, leave: bool,
                 interval: float):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.leave, self.interval = leave, interval
        self.n, self.postfix = 0, ""
        self._started = self._last_line = time.monotonic()
        self._tenths_logged, self._closed = 0, False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        tenths = int(TENTHS * self.n / self.total) if self.total else 0
        due = tenths > self._tenths_logged if self.total else True
        if due and now - self._last_line >= self.interval and not (self.total and self.n >= self.total):
            self._write(now)
            self._tenths_logged = tenths

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs) -> None:
        figures = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{key}={_short(value)}" for key, value in figures.items())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.leave:
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        self._last_line = now
        done = f"{_short(self.n)}/{_short(self.total)} {self.unit} ({100 * self.n / self.total:.0f}%)" if self.total \
            else f"{_short(self.n)} {self.unit}"
        log.info("%s: %s in %.1f s%s", self.desc, done, now - self._started, f", {self.postfix}" if self.postfix else "")


def _short(value) -> str:
    """Figures as a person reads them: 12 (not 12.0), 0.0123457, anything else as str() says."""
    return f"{value:g}" if isinstance(value, float) else str(value)
