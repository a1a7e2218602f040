"""Compare the classifier's tile-pooling methods on evaluation outputs (choose on val splits).

`sbdn evaluate` writes, per image, P(blurry) under every pooling method of
:data:`sbdn_pipeline.tiling.POOLING_METHODS` (columns ``p_mean``, ``p_topk``, ``p_max``,
``p_global``, ``p_mean_global``, ...). This table shows each method's ROC AUC, its accuracy at
the shipped threshold and its best accuracy (with that threshold) per evaluation, so the
default pooling and budget are picked on validation splits, never on test::

    python -m benchmarks.select_pooling --eval own-b4=eval/val-b4/own \\
        --eval cross-b4=eval/val-b4/cross-recipe [--threshold 0.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Any

import numpy as np

from sbdn_pipeline.training import metrics

LABEL_COLUMN = "label"
PREFIX = "p_"


def read_predictions(folder: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(labels, {pooling method: scores}) from an evaluation folder's predictions.csv."""
    path = os.path.join(folder, "predictions.csv")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path}: no rows")
    methods = [name for name in rows[0] if name.startswith(PREFIX) and rows[0][name] != ""]
    if not methods:
        raise ValueError(f"{path}: no p_<pooling> columns; evaluated without a classifier?")
    labels = np.array([int(row[LABEL_COLUMN]) for row in rows])
    scores = {name[len(PREFIX):]: np.array([float(row[name]) for row in rows]) for name in methods}
    return labels, scores


def pooling_table(labels: np.ndarray, scores: dict[str, np.ndarray], threshold: float) -> list[dict]:
    """One row per pooling method: ROC AUC, accuracy at ``threshold``, best accuracy."""
    table = []
    for method, values in scores.items():
        best = metrics.best_accuracy_threshold(labels, values)
        table.append({
            "pooling": method,
            "roc_auc": metrics.roc_auc(labels, values),
            "accuracy": metrics.accuracy(labels, values, threshold),
            "best_accuracy": metrics.accuracy(labels, values, best),
            "best_threshold": best,
        })
    return table


def render(tables: dict[str, list[dict]], threshold: float) -> str:
    """Markdown: one table per evaluation."""
    lines = []
    for name, table in tables.items():
        lines += [f"### {name}", "",
                  f"| pooling | ROC AUC | accuracy @ {threshold:g} | best accuracy (threshold) |",
                  "|---|---|---|---|"]
        for row in table:
            lines.append(f"| {row['pooling']} | {row['roc_auc']:.3f} | {row['accuracy']:.3f} | "
                         f"{row['best_accuracy']:.3f} ({row['best_threshold']:.2f}) |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", action="append", required=True, metavar="NAME=FOLDER",
                        help="an evaluation folder (with predictions.csv); repeat")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--json", default=None, help="also write the tables as JSON here")
    args = parser.parse_args(argv)
    tables: dict[str, Any] = {}
    for item in args.eval:
        name, _, folder = item.partition("=")
        if not folder:
            parser.error(f"--eval wants NAME=FOLDER, got {item!r}")
        try:
            tables[name] = pooling_table(*read_predictions(folder), args.threshold)
        except (OSError, ValueError, KeyError) as exc:
            print(f"select_pooling: {exc}", file=sys.stderr)
            return 1
    print(render(tables, args.threshold))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(tables, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
