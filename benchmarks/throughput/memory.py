"""``--memory-mode``: does ``sbdn detect`` stream? Peak RSS on 1,000 vs 10,000 small images.

A streaming job holds nothing per image, so ten times the images should cost (almost) no
more memory: the target is a peak-RSS ratio of at most 1.2. Each run also checks that every
image got a row, so a run that "saves" memory by dropping images does not pass.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from benchmarks.tables import markdown_table, number, text_table
from benchmarks.throughput.common import say
from benchmarks.throughput.corpus import CorpusSpec, ensure_corpus, warm_page_cache
from benchmarks.throughput.launch import ModelChoice, run_detect
from benchmarks.throughput.report import header, write_report

MEMORY_TARGET_RATIO = 1.2
HEADERS = ("images", "wall s", "img/s", "peak RSS MB", "rows written", "status")


def memory_ratio(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Peak RSS of the largest run over that of the smallest, against the target."""
    good = sorted((r for r in rows if not r.get("error")), key=lambda r: r["images"])
    if len(good) < 2:
        return None
    value = good[-1]["peak_rss_mb"] / max(1, good[0]["peak_rss_mb"])
    return {"images": [good[0]["images"], good[-1]["images"]], "peak_rss_ratio": round(value, 3),
            "at_most": MEMORY_TARGET_RATIO, "met": value <= MEMORY_TARGET_RATIO}


def _markdown(report: dict[str, Any], table: list[list[str]], ratio_line: str) -> str:
    tag = report["tag"]
    return "\n".join([
        f"# Memory: sbdn detect on few vs many small images{' (' + tag + ')' if tag else ''}",
        "", f"- date: {report['date']}; {report['machine']['cores']} cores",
        f"- command: `{report['command']}`", "", markdown_table(HEADERS, table), "",
        ratio_line, "",
    ])


def run_memory_mode(models: ModelChoice, args: Any, extra: list[str]) -> int:
    """The detect row on each of ``--memory-images`` corpora of ``--memory-long-side`` px."""
    run_dir = os.path.join(
        args.work, "runs", "memory-" + datetime.datetime.now().strftime("%Y%m%dT%H%M%S"))
    os.makedirs(run_dir)
    rows = []
    for count in args.memory_images:
        corpus = ensure_corpus(args.work, CorpusSpec(
            count, args.memory_long_side, args.blurred_fraction, args.sharp_images))
        warm_page_cache(corpus.paths())
        say(f"running detect on {count} images of ~{args.memory_long_side} px ...")
        result = run_detect(corpus.images, count, models, run_dir, extra)
        result.pop("_verdicts", None)
        if not result.get("error") and result["rows_written"] != count:
            result["error"] = f"{result['rows_written']} rows written for {count} images"
        rows.append(result)
        say(f"  peak RSS {result['peak_rss_mb']} MB, {result['images_per_s']} img/s")
    ratio = memory_ratio(rows)
    report = {**header("throughput-memory", args.tag, args.argv),
              "long_side": args.memory_long_side, "rows": rows, "peak_rss_ratio": ratio,
              "run_folder": run_dir}
    table = [[str(r["images"]), number(r["wall_s"]), number(r["images_per_s"]),
              str(r["peak_rss_mb"]), number(r.get("rows_written")),
              "FAILED" if r.get("error") else "ok"] for r in rows]
    ratio_line = "- peak RSS ratio: needs two successful runs" if ratio is None else (
        f"- peak RSS at {ratio['images'][1]:,} / at {ratio['images'][0]:,} images = "
        f"{ratio['peak_rss_ratio']:.2f} (target <= {MEMORY_TARGET_RATIO}: "
        f"{'met' if ratio['met'] else 'NOT MET'})")
    paths = write_report(report, args.results_dir, "throughput-memory",
                         _markdown(report, table, ratio_line))
    say("\n" + text_table(HEADERS, table) + "\n" + ratio_line)
    say(f"\nsaved {paths[0]}\n      {paths[1]}")
    return 0 if all(not r.get("error") for r in rows) else 1
