"""How much of the labelled blur is visible at all? A ceiling for any blur identifier.

The synthetic masks mark every pixel inside the blurred region, but blurring a flat patch
(sky, a plain wall, a dark night corner) changes nothing there: no detector can see blur where
the pixels did not change. This job regenerates the blurred examples of one split exactly as
`sbdn make-dataset` made them (same photos, seed and variant, so the same random draws), keeps
the per-pixel change the blur made, and reports:

* ``visible_fraction``: the share of mask pixels whose local change (mean absolute change in a
  ``--window`` box, grey levels, before noise and JPEG) is at least T, for each ``--threshold``;
* ``oracle_iou``: the IoU with the label mask of the "changed by at least T" map, i.e. the
  score of an identifier that sees every visible change and nothing else;
* with ``--eval DIR`` (an `sbdn evaluate` folder of the same data and split), the model's own
  IoU on the same examples, overall and by visible-fraction bucket.

Usage:
    python -m benchmarks.blur_visibility --data DATA --sharp-images ../shared/data/sharp \\
        --split test --eval eval/shipped --json benchmarks/results/blur-visibility.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from scipy import ndimage

from beam_jobs.make_dataset import example_rng, read_source_pixels
from sbdn_pipeline.synth import recipes
from sbdn_pipeline.training.metrics import strength_bucket

DEFAULT_THRESHOLDS = (1.0, 2.0, 4.0)
DEFAULT_WINDOW = 7
VISIBLE_BUCKETS = ((0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.01))


def visibility(
    blur_change: np.ndarray, mask: np.ndarray, threshold: float, window: int
) -> tuple[float, float]:
    """(visible fraction of the mask, IoU of the visible-change map with the mask).

    ``blur_change`` is the per-pixel change in grey levels; it is averaged over a
    ``window`` x ``window`` box first, because a detector judges a neighbourhood, not a pixel.
    """
    local = ndimage.uniform_filter(blur_change.astype(np.float32), size=window, mode="reflect")
    visible = local >= threshold
    truth = mask.astype(bool)
    if not truth.any():
        raise ValueError("visibility is defined for blurred examples only (empty mask)")
    overlap = np.logical_and(visible, truth).sum()
    union = np.logical_or(visible, truth).sum()
    return float(overlap / truth.sum()), float(overlap / union)


def regenerate(
    row: dict[str, Any], sharp_images: str, recipe: recipes.RealisticRecipe, seed: int
) -> recipes.SyntheticExample:
    """The example `sbdn make-dataset` made for this manifest row, with its blur change."""
    pixels = read_source_pixels(os.path.join(sharp_images, row["source_path"]))
    example = recipes.synthesize_realistic(
        pixels,
        recipe,
        example_rng(seed, row["source_id"], int(row["variant"])),
        positive=True,
        keep_blur_change=True,
    )
    # The same draws must give the same example; a different source folder would not.
    if example.image.shape[:2] != (row["height"], row["width"]) or not np.isclose(
        example.area_fraction, row["area_fraction"], atol=1e-6
    ):
        raise SystemExit(
            f"{row['source_path']} variant {row['variant']} does not regenerate as stored: "
            "is --sharp-images the folder the data set was made from?"
        )
    return example


def _recipe_from_manifest(data_dir: str) -> tuple[recipes.RealisticRecipe, int]:
    with open(os.path.join(data_dir, "manifest.json"), encoding="utf-8") as handle:
        parameters = json.load(handle)["parameters"]
    if parameters.get("preset") != "realistic":
        raise SystemExit("blur_visibility supports data sets of the realistic preset only")
    recipe = recipes.recipe_for_preset("realistic", max_long_side=parameters["max_long_side"])
    # JSON turns tuples into lists: compare through the same round trip.
    if json.loads(json.dumps(recipe.to_dict())) != parameters["recipe"]:
        raise SystemExit("the data set was made with another recipe than this version's")
    return recipe, int(parameters["seed"])


def _model_iou(eval_dir: str | None) -> dict[tuple[str, int], float]:
    if not eval_dir:
        return {}
    with open(os.path.join(eval_dir, "predictions.csv"), encoding="utf-8") as handle:
        return {
            (row["source_id"], int(row["variant"])): float(row["identifier_iou"])
            for row in csv.DictReader(handle)
            if row["label"] == "1" and row["identifier_iou"] not in ("", "nan")
        }


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def measure(
    data_dir: str,
    sharp_images: str,
    split: str,
    *,
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    window: int = DEFAULT_WINDOW,
    eval_dir: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Visibility of the labelled blur over the blurred examples of one split."""
    recipe, seed = _recipe_from_manifest(data_dir)
    rows = [
        row
        for row in pq.read_table(os.path.join(data_dir, "manifest.parquet")).to_pylist()
        if row["split"] == split and row["label"] == 1
    ]
    rows = rows[:limit] if limit else rows
    model_iou = _model_iou(eval_dir)
    per_example = []
    started = time.monotonic()
    for index, row in enumerate(rows, 1):
        example = regenerate(row, sharp_images, recipe, seed)
        entry = {
            "source_id": row["source_id"],
            "variant": row["variant"],
            "blur_kind": row["blur_kind"],
            "strength_bucket": strength_bucket(
                row["strength"], max(row["height"], row["width"]), 1
            ),
            "model_iou": model_iou.get((row["source_id"], int(row["variant"]))),
        }
        for threshold in thresholds:
            visible, oracle = visibility(example.blur_change, example.mask, threshold, window)
            entry[f"visible_fraction@{threshold:g}"] = visible
            entry[f"oracle_iou@{threshold:g}"] = oracle
        per_example.append(entry)
        if index % 50 == 0 or index == len(rows):
            print(f"{index}/{len(rows)} examples  {time.monotonic() - started:.0f}s", flush=True)
    return summarize(per_example, thresholds, window, data_dir, split, eval_dir)


def summarize(
    per_example: list[dict[str, Any]],
    thresholds: tuple[float, ...],
    window: int,
    data_dir: str,
    split: str,
    eval_dir: str | None,
) -> dict[str, Any]:
    """Means overall, per blur kind and strength, and the model's IoU by visibility."""
    report: dict[str, Any] = {
        "data": data_dir,
        "split": split,
        "blurred_examples": len(per_example),
        "window": window,
        "eval": eval_dir,
        "overall": {},
        "per_blur_kind": {},
        "per_strength_bucket": {},
    }
    groups: dict[str, dict[str, list[dict]]] = {"per_blur_kind": defaultdict(list),
                                                 "per_strength_bucket": defaultdict(list)}
    for entry in per_example:
        groups["per_blur_kind"][entry["blur_kind"]].append(entry)
        groups["per_strength_bucket"][entry["strength_bucket"]].append(entry)

    def means(entries: list[dict]) -> dict[str, Any]:
        out: dict[str, Any] = {"n": len(entries)}
        for threshold in thresholds:
            for key in ("visible_fraction", "oracle_iou"):
                out[f"{key}@{threshold:g}"] = _mean([e[f"{key}@{threshold:g}"] for e in entries])
        out["model_iou"] = _mean([e["model_iou"] for e in entries if e["model_iou"] is not None])
        return out

    report["overall"] = means(per_example)
    for name, grouped in groups.items():
        report[name] = {key: means(entries) for key, entries in sorted(grouped.items())}
    if eval_dir:
        middle = thresholds[len(thresholds) // 2]
        report["model_iou_by_visible_fraction"] = {
            "threshold": middle,
            "buckets": {
                f"{low:.2f}-{min(high, 1.0):.2f}": means(
                    [e for e in per_example if low <= e[f"visible_fraction@{middle:g}"] < high]
                )
                for low, high in VISIBLE_BUCKETS
            },
        }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data set folder of `sbdn make-dataset`")
    parser.add_argument("--sharp-images", required=True, help="the folder it was made from")
    parser.add_argument("--split", default="test")
    parser.add_argument("--eval", dest="eval_dir", help="`sbdn evaluate` folder of that split")
    parser.add_argument("--threshold", type=float, action="append",
                        help="grey levels of local change counted as visible (repeatable)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    parser.add_argument("--limit", type=int, help="first N blurred examples only")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    report = measure(
        args.data,
        args.sharp_images,
        args.split,
        thresholds=tuple(args.threshold or DEFAULT_THRESHOLDS),
        window=args.window,
        eval_dir=args.eval_dir,
        limit=args.limit,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
