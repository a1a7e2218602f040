"""Scale and memory check of `sbdn detect`: many small images plus hostile files.

Generates N small images (a third sharp, a third blurred, a third half blurred; JPEG) and,
with --hostile, the broken/hostile/odd files the test suite uses too
(benchmarks/hostile_files.py), runs `sbdn detect` on them as a subprocess, samples the resident
memory of its whole process tree, and checks that every input is in exactly one output table.

Usage (from the project root, after `pip install '.[test,bench]'`):
    python -m benchmarks.scale --images 1000 10000 --hostile [--tiny-models] [--work DIR]
        [--json benchmarks/results/scale.json] [-- extra sbdn detect options]

With --tiny-models the run uses the tiny Laplacian-energy models the tests use too
(benchmarks/tiny_models.py: memory and bookkeeping do not depend on the model); otherwise the
shipped default models.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psutil
import pyarrow.parquet as pq

from benchmarks import synthetic_images, tiny_models
from benchmarks.hostile_files import write_hostile_files


def write_corpus(folder: str, count: int, hostile: bool) -> int:
    """Write the corpus; returns the number of inputs that must each get one row."""
    os.makedirs(folder, exist_ok=True)
    makers = (
        synthetic_images.sharp_image,
        synthetic_images.blurred_image,
        synthetic_images.half_blurred_image,
    )
    for index in range(count):
        pixels = makers[index % 3](96, 96, index)
        with open(os.path.join(folder, f"img_{index:06d}.jpg"), "wb") as handle:
            handle.write(synthetic_images.encode(pixels, "JPEG", quality=95))
    total = count
    if hostile:
        hostile_folder = os.path.join(folder, "hostile")
        os.makedirs(hostile_folder, exist_ok=True)
        written = write_hostile_files(hostile_folder)
        # Entries the job must not list (symlinked folders, its own output) get no row.
        total += sum(table != "none" for table, _ in written.values())
    return total


def run_and_sample(command: list[str], interval_s: float = 0.2) -> dict:
    """Run a command; return wall time, exit code and peak RSS of its process tree."""
    started = time.monotonic()
    # Output goes to a file, not a pipe: a pipe nobody reads blocks the child at ~64 KB.
    log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(interval_s)
    log.seek(0)
    output = log.read()
    log.close()
    return {"exit_code": process.returncode, "wall_s": time.monotonic() - started,
            "peak_rss_mb": peak / 2**20, "output": output}


def count_rows(output: str) -> int:
    files = glob.glob(os.path.join(output, "results", "*", "*.parquet")) + glob.glob(
        os.path.join(output, "errors", "*", "*.parquet"))
    return sum(pq.read_metadata(path).num_rows for path in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--hostile", action="store_true", help="add the hostile file set")
    parser.add_argument("--tiny-models", action="store_true")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--json", default=None, help="write the results table here")
    args, detect_args = parser.parse_known_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="sbdn-scale-")
    model_args: list[str] = []
    if args.tiny_models:
        models_folder = os.path.join(work, "tiny-models")
        os.makedirs(models_folder, exist_ok=True)
        tiny = tiny_models.save_tiny_models(models_folder)
        model_args = ["--classifier", tiny["classifier"], "--identifier", tiny["identifier"]]
    rows = []
    for count in args.images:
        corpus = os.path.join(work, f"corpus-{count}")
        output = os.path.join(work, f"out-{count}")
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.rmtree(output, ignore_errors=True)
        inputs = write_corpus(corpus, count, args.hostile)
        command = [sys.executable, "-m", "sbdn_pipeline.cli", "detect", corpus,
                   "--output", output, *model_args, *detect_args]
        measured = run_and_sample(command)
        summary_line = next((line for line in measured["output"].splitlines()
                             if line.startswith("run ")), "")
        rows.append({"images": count, "inputs": inputs, "rows_written": count_rows(output),
                     "exit_code": measured["exit_code"], "wall_s": round(measured["wall_s"], 1),
                     "images_per_s": round(inputs / measured["wall_s"], 1),
                     "peak_rss_mb": round(measured["peak_rss_mb"]), "summary": summary_line})
        print(json.dumps(rows[-1]), flush=True)
        if measured["exit_code"] not in (0,):
            print(measured["output"][-3000:], file=sys.stderr)
    if len(rows) >= 2:
        ratio = rows[-1]["peak_rss_mb"] / max(1, rows[0]["peak_rss_mb"])
        print(f"peak RSS ratio {rows[-1]['images']} vs {rows[0]['images']} images: {ratio:.2f}")
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    ok = all(r["exit_code"] == 0 and r["rows_written"] == r["inputs"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
