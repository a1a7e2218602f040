"""Measure raw inference throughput (img/s) of every architecture on this machine.

Each network is built at its shipping input size (random weights: speed does not depend on
them) and called with ``predict_on_batch`` exactly as the detect job's model handler does.
After warm-up, each timed run pushes ``--batches`` batches; the table shows the median run.

Usage:
    python benchmarks/model_speed.py [--batch-size 16] [--runs 5] [--batches 4]
        [--arch NAME ...] [--input-size NAME=S ...] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from sbdn_pipeline.architectures import ARCHITECTURES, build_model  # noqa: E402


def measure(name: str, input_size: int, batch_size: int, runs: int, batches: int) -> dict:
    """Return img/s statistics of one architecture at one input size."""
    model = build_model(name, input_size=input_size)
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, size=(batch_size, input_size, input_size, 3)).astype("float32")
    for _ in range(2):  # warm-up: graph tracing and oneDNN kernel selection
        model.predict_on_batch(batch)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(batches):
            model.predict_on_batch(batch)
        rates.append(batch_size * batches / (time.perf_counter() - start))
    return {
        "arch": name,
        "task": model.task,
        "input_size": input_size,
        "batch_size": batch_size,
        "params": int(model.count_params()),
        "img_per_s_median": statistics.median(rates),
        "img_per_s_min": min(rates),
        "img_per_s_max": max(rates),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--arch", action="append", choices=sorted(ARCHITECTURES))
    parser.add_argument(
        "--input-size",
        action="append",
        default=[],
        metavar="NAME=S",
        help="override an architecture's input size, e.g. highpass-unet=256",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    sizes = {name: cls.default_input_size for name, cls in ARCHITECTURES.items()}
    for override in args.input_size:
        name, _, size = override.partition("=")
        sizes[name] = int(size)

    results = []
    print(
        f"{'architecture':32} {'task':10} {'size':>5} {'params':>10} "
        f"{'img/s (median)':>15} {'min-max':>13}"
    )
    for name in args.arch or list(ARCHITECTURES):
        row = measure(name, sizes[name], args.batch_size, args.runs, args.batches)
        results.append(row)
        print(
            f"{name:32} {row['task']:10} {row['input_size']:5d} {row['params']:10,d} "
            f"{row['img_per_s_median']:15.1f} "
            f"{row['img_per_s_min']:6.1f}-{row['img_per_s_max']:<6.1f}",
            flush=True,
        )
    # Other processes on the machine change every number: say how busy it was.
    load = os.getloadavg()
    averages = " ".join(f"{value:.1f}" for value in load)
    print(f"cpu count {os.cpu_count()}, load average (1/5/15 min) {averages}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            document = {"cpu_count": os.cpu_count(), "load_average": load, "results": results}
            json.dump(document, handle, indent=2)


if __name__ == "__main__":
    main()
