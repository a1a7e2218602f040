"""``python -m benchmarks.throughput``: every row at every size on one corpus, in one command.

Usage (from the project root; see benchmarks/README.md):
    python -m benchmarks.throughput [--sizes 8 400 2000] [--sharp-images PATH]
        [--long-side 1024] [--blurred-fraction 0.3] [--classifier PATH --identifier PATH]
        [--work DIR] [--only ROW ...] [--tag NAME] [--memory-mode | --profile]
        [-- extra sbdn detect options]

Rows (each its own subprocess): detect, tfdata, original, laplacian, blur-effect. Results:
the tables on stdout and benchmarks/results/throughput-<tag or date>-<cores>cores.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from benchmarks.throughput import report as reporting
from benchmarks.throughput.common import (
    ALL_ROWS, BLUR_THRESHOLD, DEFAULT_BATCH_SIZE, DEFAULT_RESULTS_DIR, DEFAULT_SIZES, ROW_LABELS,
    BenchmarkError, say,
)
from benchmarks.throughput.corpus import (
    Corpus, CorpusSpec, corpus_subset, ensure_corpus, list_photos, warm_page_cache,
)
from benchmarks.throughput.launch import (
    ModelChoice, agreement_check, resolve_models, run_detect, run_worker,
)


def detect_batch_size(extra: Sequence[str]) -> int:
    """The --batch-size the detect row gets (from ``-- ...``), so tf.data uses the same."""
    for index, arg in enumerate(extra):
        if arg.startswith("--batch-size="):
            return int(arg.split("=", 1)[1])
        if arg == "--batch-size" and index + 1 < len(extra):
            return int(extra[index + 1])
    return DEFAULT_BATCH_SIZE


def original_route(rows: list[dict[str, Any]], corpus: Corpus, size: int) -> tuple[list[str], str]:
    """Which images the original approach sends to its identifier, and a sentence saying so.

    Random weights make ResNet-50's verdicts meaningless, so the cascade follows the images
    our classifier called blurry in the tf.data row at the same size (the same work as a
    trained original pair with the same verdicts); without that row, the corpus's blurred set.
    """
    tfdata = reporting.find(rows, "tfdata", size)
    if tfdata and "_probabilities" in tfdata:
        route = sorted(n for n, p in tfdata["_probabilities"].items() if p >= BLUR_THRESHOLD)
        return route, "the images the benchmarked classifier called blurry in the tfdata row"
    return corpus.blurred_names(size), "the corpus's partially blurred images"


def run_row(row: str, folder: str, size: int, context: dict[str, Any],
            rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row at one size (``context``: the models, run folder, corpus and options)."""
    models, run_dir, args = context["models"], context["run_dir"], context["args"]
    if row == "detect":
        return run_detect(folder, size, models, run_dir, context["extra"])
    spec: dict[str, Any] = {"classifier": models.classifier, "identifier": models.identifier,
                            "batch_size": detect_batch_size(context["extra"]),
                            "threshold": BLUR_THRESHOLD}
    if row == "original":
        spec["route"], routing = original_route(rows, context["corpus"], size)
        spec |= {"original_classifier": args.original_classifier,
                 "original_identifier": args.original_identifier}
        result = run_worker(row, folder, size, spec, run_dir)
        result["routing"] = routing
        return result
    return run_worker(row, folder, size, spec, run_dir)


def run_all(context: dict[str, Any], sizes: Sequence[int], selected: Sequence[str]
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every selected row at every size, sizes outermost (rows compared at one size run close
    together in time); the detect-vs-tfdata check at each size."""
    rows: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    for size in sizes:
        folder = corpus_subset(context["corpus"], size)
        for row in selected:
            say(f"running {row} on {size} images: {ROW_LABELS[row]} ...")
            result = run_row(row, folder, size, context, rows)
            rows.append(result)
            say(f"  {'FAILED' if result.get('error') else 'ok'}: {result['wall_s']} s, "
                f"{result['images_per_s']} img/s, first result {result['first_result_s']} s, "
                f"peak RSS {result['peak_rss_mb']} MB")
            if result.get("error"):
                say(result["error"])
        detect, tfdata = reporting.find(rows, "detect", size), reporting.find(rows, "tfdata", size)
        if detect and tfdata:
            checks[f"detect vs tfdata at {size}"] = agreement_check(
                detect["_verdicts"], tfdata["_probabilities"])
    for row in rows:
        row.pop("_verdicts", None)
        row.pop("_probabilities", None)
    return rows, checks


def models_description(models: ModelChoice, extra: Sequence[str]) -> dict[str, Any]:
    """What the report says about the models (and the batch size both rows use)."""
    return {
        "classifier": models.classifier, "identifier": models.identifier,
        "shipped_defaults": models.default,
        "input_sizes": [models.classifier_size, models.identifier_size],
        "description": (
            f"{'shipped ' if models.default else ''}classifier "
            f"{os.path.basename(models.classifier)} ({models.classifier_size} px), identifier "
            f"{os.path.basename(models.identifier)} ({models.identifier_size} px); batch size "
            f"{detect_batch_size(extra)}"),
    }


def run_table(args: argparse.Namespace, models: ModelChoice, corpus: Corpus,
              extra: list[str]) -> int:
    """The main mode: rows x sizes, then steady state, ratios, checks; tables and files."""
    warm_page_cache(corpus.paths())
    run_dir = os.path.join(args.work, "runs", datetime.datetime.now().strftime("%Y%m%dT%H%M%S"))
    os.makedirs(run_dir)
    sizes = sorted(set(args.sizes))
    selected = [row for row in ALL_ROWS if row in (args.only or ALL_ROWS)]
    context = {"models": models, "run_dir": run_dir, "args": args, "corpus": corpus,
               "extra": extra}
    rows, checks = run_all(context, sizes, selected)
    states = reporting.steady_states(rows, sizes)
    report = {
        **reporting.header("throughput", args.tag, args.argv),
        "sizes": sizes, "corpus": corpus.describe(), "models": models_description(models, extra),
        "detect_extra_args": extra, "rows": rows, "steady_state": states,
        "ratios": reporting.issue_ratios(rows, sizes, states), "checks": checks,
        "notes": sorted({f"original row's identifier runs on {r['routing']}"
                         for r in rows if r.get("routing")}),
        "run_folder": run_dir,
    }
    paths = reporting.write_report(report, args.results_dir, "throughput",
                                   reporting.render_markdown(report))
    say("\n" + reporting.render_text(report) + f"\n\nsaved {paths[0]}\n      {paths[1]}")
    return 1 if any(row.get("error") for row in rows) else 0


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options (everything after ``--`` goes to ``sbdn detect``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description="sbdn detect next to a hand-written tf.data loop, the original research "
        "approach, OpenCV's Laplacian variance and scikit-image's blur_effect, at several "
        "sizes of one corpus. Arguments after `--` go to sbdn detect.")
    add = parser.add_argument
    add("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), metavar="N",
        help="run every row on the first N images of the corpus, for each N (default: "
        "%(default)s); the corpus is made for the largest")
    add("--sharp-images", metavar="PATH", help="folder of photos to derive the corpus from "
        "(crops, resizes, partial blur); default: generated street-like scenes")
    add("--long-side", type=int, default=1024,
        help="long side of the corpus images, px (default 1024; each is 90-100%%)")
    add("--blurred-fraction", type=float, default=0.3,
        help="share of images with a blurred region (default 0.3)")
    add("--classifier", metavar="PATH", help="classifier .keras (default: the shipped model)")
    add("--identifier", metavar="PATH", help="identifier .keras (default: the shipped model)")
    add("--work", metavar="DIR", default=os.path.join(tempfile.gettempdir(), "sbdn-throughput"),
        help="corpus cache and run folders (default: %(default)s)")
    add("--only", nargs="+", choices=ALL_ROWS, metavar="ROW",
        help=f"run only these rows: {', '.join(ALL_ROWS)}")
    add("--tag", default=None, help="replaces the date in the file names, e.g. 'smoke'")
    add("--results-dir", default=DEFAULT_RESULTS_DIR,
        help="where the JSON and Markdown go (default: benchmarks/results)")
    add("--memory-mode", action="store_true",
        help="detect only, on --memory-images small images: does peak RSS stay flat?")
    add("--memory-images", type=int, nargs="+", default=[1000, 10000])
    add("--memory-long-side", type=int, default=256)
    add("--profile", action="store_true", help="detect under py-spy on the largest --sizes; "
        "writes the profile and its top functions to the results folder")
    add("--profile-format", choices=("speedscope", "flamegraph"), default="speedscope")
    add("--profile-rate", type=int, default=50, help="py-spy samples per second")
    # Hidden: tiny stand-ins for ResNet-50 / the encoder-decoder so the smoke test is fast.
    add("--original-classifier", default=None, help=argparse.SUPPRESS)
    add("--original-identifier", default=None, help=argparse.SUPPRESS)
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """Fail in a second, before corpus generation and model loading take minutes.

    Raises:
        BenchmarkError: the first problem found.
    """
    if min(args.sizes) < 1 or not 0 <= args.blurred_fraction <= 1:
        raise BenchmarkError("--sizes must be >= 1 and --blurred-fraction in [0, 1]")
    if args.sharp_images:
        list_photos(args.sharp_images)
    for path in (args.original_classifier, args.original_identifier):
        if path and not os.path.exists(path):
            raise BenchmarkError(f"model file not found: {path}")
    if args.memory_mode and args.profile:
        raise BenchmarkError("--memory-mode and --profile are separate runs; pick one")
    if (args.memory_mode or args.profile) and args.only and args.only != ["detect"]:
        raise BenchmarkError("--memory-mode and --profile run the detect row only")
    if args.profile:
        from benchmarks.throughput.profile import find_py_spy

        find_py_spy()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 a row failed, 2 bad arguments)."""
    from benchmarks.throughput.memory import run_memory_mode
    from benchmarks.throughput.profile import run_profile

    argv = list(sys.argv[1:] if argv is None else argv)
    ours, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (
        argv, [])
    args = build_parser().parse_args(ours)
    args.argv = argv
    try:
        check_arguments(args)
        os.makedirs(args.work, exist_ok=True)
        models = resolve_models(args.classifier, args.identifier)
        if args.memory_mode:
            return run_memory_mode(models, args, extra)
        spec = CorpusSpec(max(args.sizes), args.long_side, args.blurred_fraction,
                          args.sharp_images)
        say(f"corpus: {spec.key()} under {args.work}")
        corpus = ensure_corpus(args.work, spec)
        say(f"corpus ready: {corpus.count} images, {corpus.manifest['blurred']} partially "
            f"blurred, {corpus.manifest['total_bytes'] / 2**20:.1f} MiB")
        if args.profile:
            return run_profile(corpus, models, args, extra)
        return run_table(args, models, corpus, extra)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
