"""Progress lines for long local runs: images done, rate and ETA, at most every few seconds.

Local worker processes each keep their count of finished images in a small file
(``CountFile``); the submitting process sums them and prints (``ProgressMonitor``), so one
line speaks for the whole run, from its first second, whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import TextIO

from sbdn_pipeline import atomic

_COUNT_FILES_LOCK = threading.Lock()


def format_progress(done: int, total: int | None, elapsed_s: float,
                    label: str = "progress") -> str:
    """E.g. 'progress: 1,200 / 10,000 images (160.0 img/s, ETA 55 s)'."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    if total:
        remaining = max(0, total - done)
        eta = f", ETA {remaining / rate:,.0f} s" if rate > 0 else ""
        return f"{label}: {done:,} / {total:,} images ({rate:.1f} img/s{eta})"
    return f"{label}: {done:,} images ({rate:.1f} img/s)"


class CountFile:
    """One process's count of finished images, rewritten (atomically) at most every 0.5 s."""

    _MIN_WRITE_INTERVAL_S = 0.5

    def __init__(self, folder: str, clock=time.monotonic):
        self._path = os.path.join(folder, f"{os.getpid()}-{uuid.uuid4().hex}.count")
        self._clock = clock
        self._count = 0
        self._written_at = float("-inf")
        self._lock = threading.Lock()

    def add(self, count: int = 1) -> None:
        with self._lock:
            self._count += count
            if self._clock() - self._written_at >= self._MIN_WRITE_INTERVAL_S:
                self._write()

    def flush(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        self._written_at = self._clock()
        # Progress is a courtesy: a full disk or a removed folder must not fail the run.
        with contextlib.suppress(OSError):
            atomic.write_text(self._path, str(self._count), encoding="ascii")


_COUNT_FILES: dict[str, CountFile] = {}


def count_file(folder: str) -> CountFile:
    """This process's CountFile in ``folder`` (the results and errors branches share it)."""
    with _COUNT_FILES_LOCK:
        if folder not in _COUNT_FILES:
            _COUNT_FILES[folder] = CountFile(folder)
        return _COUNT_FILES[folder]


def read_counts(folder: str) -> int:
    """Images finished so far, summed over every process's CountFile in ``folder``."""
    total = 0
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            if name.endswith(".count"):
                with contextlib.suppress(OSError, ValueError):
                    with open(os.path.join(folder, name), encoding="ascii") as handle:
                        total += int(handle.read() or 0)
    return total


class ProgressMonitor:
    """A thread that follows the run's CountFiles in ``folder``: progress lines and timings.

    On a terminal the line is redrawn in place every second; otherwise (logs, cron) a new line
    is printed every ``interval_s``. Nothing is printed for runs shorter than that, nor when
    ``silent``. ``first_result_s`` is when the first image was finished (polled 4 times/s).
    ``total`` may be a function: it is then called in the monitor's thread (a long listing
    overlaps the workers' start-up).
    """

    _POLL_S = 0.25

    def __init__(self, folder: str, total: int | Callable[[], int | None] | None,
                 interval_s: float = 10.0, stream: TextIO | None = None,
                 silent: bool = False):
        self._folder = folder
        self._total = total
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval_s = 1.0 if self._tty else interval_s
        self._delay_s = interval_s
        self._silent = silent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sbdn-progress", daemon=True)
        self._started = time.monotonic()
        self._drawn = False
        self.first_result_s: float | None = None

    def __enter__(self) -> ProgressMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.first_result_s is None and read_counts(self._folder):
            self.first_result_s = time.monotonic() - self._started  # done within one poll
        if self._drawn and self._tty:
            self._stream.write("\r\033[K")  # the summary replaces the live line
            self._stream.flush()

    def _loop(self) -> None:
        # The first line only for runs longer than the interval asked for; then one per
        # interval (every second on a terminal).
        next_line = self._started + self._delay_s
        if callable(self._total):
            # Counted here, while the workers start, not before the pipeline is submitted.
            self._total = self._total()
        while not self._stop.wait(min(self._POLL_S, self._delay_s)):
            now = time.monotonic()
            done = read_counts(self._folder) if (
                self.first_result_s is None or now >= next_line) else 0
            if done and self.first_result_s is None:
                self.first_result_s = now - self._started
            if now >= next_line:
                if not self._silent:
                    self._print(done)
                next_line = now + self._interval_s

    def _print(self, done: int) -> None:
        line = format_progress(done, self._total, time.monotonic() - self._started)
        if done == 0:
            line += " - starting workers and loading models"
        if self._tty:
            self._stream.write(f"\r\033[K{line}")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._drawn = True
