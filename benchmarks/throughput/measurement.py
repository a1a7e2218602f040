"""How a row is measured: one subprocess, timed from outside; and the arithmetic on the timings.

Each row runs as its own process so that its wall time includes everything a user waits for
(interpreter start, imports, model loading, exit), its peak RSS is its own and its CPU time is
not mixed with the benchmark's. Worker rows additionally report, from inside, the moment their
first image was done and their own peak RSS.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
import time
from collections.abc import Mapping, Sequence

from benchmarks.throughput.common import ROOT

SAMPLE_INTERVAL_S = 0.2


@dataclasses.dataclass(frozen=True)
class Measured:
    """What the parent saw of one subprocess run.

    Attributes:
        exit_code: the command's exit status.
        wall_s: seconds from just before the process was started until it was reaped.
        cpu_s: user + sys seconds of the process and every descendant it waited for.
        peak_rss_mb: the largest sum of RSS over the process tree among the samples (MiB).
        launched_at: ``time.time()`` just before the start: the origin of "time to first
            result", which the process measures on the same clock.
        output: stdout and stderr together.
    """

    exit_code: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    launched_at: float
    output: str


def _tree_rss(root: object) -> int:
    """Sum of RSS over a psutil process and its descendants (0 for those gone meanwhile)."""
    import psutil

    total = 0
    try:
        tree = [root, *root.children(recursive=True)]  # type: ignore[attr-defined]
    except psutil.Error:
        return 0
    for process in tree:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure_command(
    command: Sequence[str], log_path: str, env: Mapping[str, str] | None = None
) -> Measured:
    """Run ``command`` from the project root; sample its tree's RSS; time it and its CPU.

    CPU seconds are the RUSAGE_CHILDREN difference around the run: user + sys of the command
    and of every descendant that was waited for (Beam waits for its worker processes), so
    nothing is lost between samples. Only one command may run at a time for that to hold.
    Output goes to ``log_path``, not a pipe (a pipe nobody reads blocks the child at ~64 KB).
    """
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = 0
    with open(log_path, "w", encoding="utf-8") as log:
        launched_at, started = time.time(), time.monotonic()
        process = subprocess.Popen(
            list(command), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
        )
        try:
            root = psutil.Process(process.pid)
        except psutil.NoSuchProcess:  # gone already: nothing to sample
            root = None
        while process.poll() is None and root is not None:
            peak = max(peak, _tree_rss(root))
            time.sleep(SAMPLE_INTERVAL_S)
        process.wait()
        wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        output = handle.read()
    return Measured(process.returncode, wall, cpu, peak / 2**20, launched_at, output)


def own_peak_rss_mb() -> float:
    """Peak RSS of this process image (VmHWM), in MiB; 0 where /proc is not available.

    Worker rows report it because the parent's 0.2 s sampling can miss the peak of a short
    run. Not ru_maxrss: Linux carries it across exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rate(images: int, seconds: float | None) -> float | None:
    """Images per second; None when the time is missing or not positive."""
    return images / seconds if seconds and seconds > 0 else None


@dataclasses.dataclass(frozen=True)
class SteadyState:
    """The cost of the images a larger run has beyond a small run of the same command.

    Start-up and exit (imports, model loading, Beam and worker start, publishing) cost the
    same in both runs, so they cancel out of the difference.
    """

    small_images: int
    large_images: int
    seconds: float | None
    images_per_s: float | None
    cpu_s_per_image: float | None


def steady_state(
    small: tuple[int, float, float], large: tuple[int, float, float]
) -> SteadyState:
    """(N_large - N_small) / (T_large - T_small) from (images, wall s, CPU s) of two runs.

    None rates when the larger run has no more images, or took no longer (noise larger than
    the work: nothing to conclude).
    """
    (small_n, small_t, small_cpu), (large_n, large_t, large_cpu) = small, large
    images, seconds, cpu = large_n - small_n, large_t - small_t, large_cpu - small_cpu
    if images <= 0 or seconds <= 0:
        return SteadyState(small_n, large_n, None, None, None)
    return SteadyState(
        small_n, large_n, seconds, images / seconds, cpu / images if cpu > 0 else None
    )
