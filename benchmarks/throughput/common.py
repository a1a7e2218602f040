"""Names every module of the throughput benchmark shares: rows, paths, defaults, the error type.

Kept free of heavy imports: the measured worker subprocesses import it too, and the OpenCV and
scikit-image rows must not pay for TensorFlow.
"""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")
DEFAULT_SIZES = (8, 400, 2000)
BLUR_THRESHOLD = 0.5  # the detect job's default --blur-threshold
DEFAULT_BATCH_SIZE = 16  # the detect job's default --batch-size

ROW_LABELS = {
    "detect": "sbdn detect (the real command, default options)",
    "tfdata": "hand-written tf.data loop, same models and cascade",
    "original": "original approach (load_img + predict per image)",
    "laplacian": "OpenCV Laplacian variance (full decode)",
    "blur-effect": "scikit-image blur_effect (full decode, grey)",
}
ALL_ROWS = tuple(ROW_LABELS)
WORKER_ROWS = ("tfdata", "original", "laplacian", "blur-effect")


class BenchmarkError(Exception):
    """A problem with the benchmark's arguments or inputs, reported as one line (exit 2)."""


def say(*parts: object) -> None:
    """Print progress at once: runs take minutes and the output usually goes to a log."""
    print(*parts, flush=True)
