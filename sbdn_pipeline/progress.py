"""Progress lines for long local runs: images done, rate and ETA, at most every few seconds."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

# One reporter per (process, run): the results and errors branches share it, so the count is
# the images finished in this process whichever table they went to.
_REPORTERS: dict[str, ProgressReporter] = {}
_REPORTERS_LOCK = threading.Lock()


class ProgressReporter:
    """Counts finished images and prints a line at most every ``interval_s`` seconds."""

    def __init__(self, total: int | None, interval_s: float = 10.0,
                 stream: TextIO | None = None, clock=time.monotonic, label: str = "progress"):
        self._total = total
        self._label = label
        self._interval_s = interval_s
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._last_print = self._started
        self._done = 0
        self._lock = threading.Lock()

    @property
    def done(self) -> int:
        return self._done

    def update(self, count: int = 1) -> None:
        """Record finished images; print a progress line when the interval has passed."""
        with self._lock:
            self._done += count
            now = self._clock()
            if now - self._last_print < self._interval_s:
                return
            self._last_print = now
            line = format_progress(self._done, self._total, now - self._started, self._label)
        print(line, file=self._stream or sys.stderr, flush=True)


def format_progress(done: int, total: int | None, elapsed_s: float,
                    label: str = "progress") -> str:
    """E.g. 'progress: 1,200 / 10,000 images (160.0 img/s, ETA 55 s)'."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    if total:
        remaining = max(0, total - done)
        eta = f", ETA {remaining / rate:,.0f} s" if rate > 0 else ""
        return f"{label}: {done:,} / {total:,} images ({rate:.1f} img/s{eta})"
    return f"{label}: {done:,} images ({rate:.1f} img/s)"


def reporter_for(run_id: str, total: int | None, interval_s: float,
                 label: str = "progress") -> ProgressReporter:
    """The reporter of this run in this process (created on first use)."""
    with _REPORTERS_LOCK:
        if run_id not in _REPORTERS:
            _REPORTERS[run_id] = ProgressReporter(total, interval_s, label=label)
        return _REPORTERS[run_id]
