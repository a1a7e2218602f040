"""What the evaluation job writes: file names, report keys, strict JSON, CSV, the headline."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from sbdn_pipeline import atomic
from sbdn_pipeline.training import baselines

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
SCORES_CSV = "scores.csv"
SCORES_JSON = "scores.json"
# The models' roles, also their keys in a report.
MODEL_CLASSIFIER = "classifier"
MODEL_IDENTIFIER = "identifier"
# A cross-recipe evaluation's two data sets: sub-folders of the output and report keys.
OWN_DATA = "own"
CROSS_RECIPE_DATA = "cross-recipe"


def write_metrics_json(path: str, document: Any) -> None:
    """Write a report atomically as strict JSON (indent 2); numpy becomes Python, NaN null."""
    atomic.write_json(path, json_ready(document), allow_nan=False)


def json_ready(value: Any) -> Any:
    """JSON-ready copy: numpy scalars become Python numbers, NaN (undefined metric) null."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    """Write rows (union of their keys as columns) to CSV atomically."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, text.getvalue())


def headline(report: dict[str, Any]) -> str:
    """A few lines with the main numbers of a data set (or folder) evaluation."""
    data = report["data"]
    prefix = f"{data['name']}: " if data.get("name") else ""
    if "split" in data:
        lines = [f"{prefix}{data['split']} split of {data['path']}: {data['n']} images"]
    else:
        lines = [f"{prefix}{data['path']}: {data['files']} files"]
    image_level = [b.name for b in baselines.image_level_baselines()]
    for name in (MODEL_CLASSIFIER, *image_level):
        part = report.get(name)
        if part and part.get("roc_auc") is not None:
            accuracy = part.get("accuracy")
            at = f"(threshold {part['threshold']:.3g})" if "threshold" in part else ""
            lines.append(
                f"  {name:20s} accuracy {'-' if accuracy is None else f'{accuracy:.4f}':6s}  "
                f"ROC AUC {part['roc_auc']:.4f}  {at}".rstrip()
            )
    for name in (MODEL_IDENTIFIER, *(b.name for b in baselines.map_baselines())):
        part = report.get(name)
        if part and part.get("n"):
            lines.append(
                f"  {name:20s} max-F-beta {part['max_f_beta']:.4f}  IoU@0.5 {part['iou']:.4f}  "
                f"MAE {part['mae']:.4f}"
            )
    return "\n".join(lines)
