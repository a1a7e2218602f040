"""Evaluation job: trained models and classic baselines on held-out data, side by side.

Two kinds of input:

* a data set made by ``sbdn make-dataset`` (its ``test`` split by default): every image is
  decoded from its stored bytes, reduced and letterboxed exactly as the detect job does
  (:func:`model_view`), classified, segmented, and its mask mapped back onto the stored
  image; metrics go to ``metrics.json``, one row per image to ``predictions.csv``, figures
  to PNG files. Every classic baseline of :mod:`~sbdn_pipeline.training.baselines` runs in
  the same pass: image-level ones get their threshold from the validation split, maps are
  scored with the same mask metrics as the identifier. With a cross-recipe data set
  (:func:`evaluate_cross_recipe`) the same models and thresholds are measured on both.
* a folder (or glob, or manifest) of ordinary images: per-file scores go to ``scores.csv``
  and ``scores.json``. If paths contain a folder named ``sharp`` or ``blurry``/``blurred``,
  those are taken as labels and classifier metrics are added; truth masks named
  ``<image stem>.png`` in a masks folder add mask metrics for those images.

Metric definitions are in :mod:`sbdn_pipeline.training.metrics`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from sbdn_pipeline import atomic, features
from sbdn_pipeline.geometry import resize_mask
from sbdn_pipeline.options import (
    DEFAULT_BLUR_THRESHOLD,
    DEFAULT_CLASSIFIER_TILES,
    DEFAULT_IDENTIFIER_TILES,
    DEFAULT_MASK_THRESHOLD,
    DEFAULT_TILE_POOLING,
)
from sbdn_pipeline.training import baselines, metrics
from sbdn_pipeline.training.defaults import DEFAULT_EVAL_BATCH_SIZE, DEFAULT_EVAL_SPLIT

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
SCORES_CSV = "scores.csv"
SCORES_JSON = "scores.json"
MODEL_CLASSIFIER = "classifier"
MODEL_IDENTIFIER = "identifier"
# The classic pair gated end to end like the models: (image-level gate, map).
END_TO_END_BASELINES = ("laplacian-variance", "laplacian-energy")
OWN_DATA = "own"
CROSS_RECIPE_DATA = "cross-recipe"
SHARP_FOLDER_NAMES = ("sharp",)
BLURRY_FOLDER_NAMES = ("blurry", "blurred")


# --- models -----------------------------------------------------------------------------------


def load_model(path: str, role: str) -> tuple[Any, Any]:
    """Load a ``.keras`` model for a role and check it fits the model contract.

    Returns:
        (keras model, :class:`sbdn_pipeline.inference.ModelInfo`).
    """
    from sbdn_pipeline import inference

    info = inference.inspect_model(path, role)
    return inference.load_keras_model(path, info.sha256), info


def load_models(
    classifier: str | None, identifier: str | None, run_baselines: bool
) -> tuple[dict[str, tuple[Any, Any]], int]:
    """Load the models to evaluate; also return the long side the detect job would decode to.

    Returns:
        ({role: (model, ModelInfo)}, largest model input side, 0 without models).

    Raises:
        ValueError: when there is nothing to evaluate.
    """
    loaded = {}
    if classifier:
        loaded[MODEL_CLASSIFIER] = load_model(classifier, MODEL_CLASSIFIER)
    if identifier:
        loaded[MODEL_IDENTIFIER] = load_model(identifier, MODEL_IDENTIFIER)
    if not loaded and not run_baselines:
        raise ValueError("nothing to evaluate: give a classifier, an identifier or baselines=True")
    return loaded, max((info.input_size for _, info in loaded.values()), default=0)


def model_view(data: bytes, working_long_side: int) -> Any:
    """An image as the detect job holds it: its bytes, decoded for each model on demand.

    Each model then sees the decode and scale its own tile options ask for
    (:func:`sbdn_pipeline.inference.model_pixels`), exactly as in the detect job.
    ``working_long_side`` is no longer needed (models choose their own scale); kept for callers.

    Returns:
        An :class:`sbdn_pipeline.inference.ImageSource`.
    """
    from sbdn_pipeline.inference import ImageSource

    return ImageSource(data)


@dataclasses.dataclass(frozen=True)
class TileSettings:
    """How the models look at an image, as ``sbdn detect``'s options of the same names.

    Evaluations with other budgets or poolings than the defaults are how the defaults are
    chosen (on validation splits).
    """

    classifier_tiles: int = DEFAULT_CLASSIFIER_TILES
    identifier_tiles: int = DEFAULT_IDENTIFIER_TILES
    tile_pooling: str = DEFAULT_TILE_POOLING


def predict_classifier(
    model: Any, size: int, views: list[Any], pooled: dict[str, np.ndarray] | None = None,
    tiles: TileSettings = TileSettings(),
) -> np.ndarray:
    """P(blurry) for a list of views (:func:`model_view`), by the detect job's cascade.

    Uses ``tiles`` (default: the detect job's tile budget and pooling). Each image's tiles and
    its global view (the letterbox) go through the model once, whatever the pooling, so that
    when ``pooled`` is a dict it can be filled with every pooling method's P per image
    (``p_mean``, ``p_topk``, ``p_max``, ``p_global``, ``p_mean_global``, ...): the default is
    chosen on a validation split.
    """
    from sbdn_pipeline import cascade, tiling

    steps = cascade.ClassifierSteps(size, tiles.classifier_tiles, tiling.POOLING_METHODS)
    by_image = [probabilities.every_pooling()
                for probabilities in cascade.run_steps(model, steps, views, chunk=16)]
    if pooled is not None:
        pooled.update({f"p_{method.replace('+', '_')}": np.array([p[method] for p in by_image])
                       for method in tiling.POOLING_METHODS})
    return np.array([p[tiles.tile_pooling] for p in by_image], dtype="float64")


def predict_masks(
    model: Any, size: int, views: list[Any], shapes: list[tuple[int, int]],
    tiles: TileSettings = TileSettings(),
) -> list[np.ndarray]:
    """Identifier masks on images of the given (height, width), by the detect job's cascade.

    Native-scale tiles (the default identifier budget), stitched, refined by the image's edges
    (guided filter) at the analysed resolution (capped as in detect), resized to the shape.
    """
    from sbdn_pipeline import cascade

    steps = cascade.IdentifierSteps(size, tiles.identifier_tiles,
                                    cascade.mask_stride(model, size))
    refined = cascade.run_steps(model, steps, views, chunk=16)
    return [np.clip(resize_mask(mask, height, width), 0.0, 1.0)
            for (mask, _), (height, width) in zip(refined, shapes)]


# --- data set input ---------------------------------------------------------------------------


def is_dataset(path: str) -> bool:
    """True if ``path`` is a data set folder written by ``sbdn make-dataset``."""
    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(path, features.MANIFEST_JSON)) or any(
        tf.io.gfile.glob(features.shard_pattern(path, split)) for split in features.SPLITS
    )


def iterate_records(data_dir: str, split: str) -> Iterator[dict[str, Any]]:
    """Parsed records of one split, undecoded (image and mask stay encoded bytes)."""
    import tensorflow as tf

    from sbdn_pipeline.training import reader

    files = reader.list_shards(data_dir, split)
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").map(reader.parse_serialized)
    for record in records.as_numpy_iterator():
        yield {
            key: value.decode("utf-8")
            if isinstance(value, bytes) and key not in (features.IMAGE, features.MASK)
            else value
            for key, value in record.items()
        }


def _native_pixels(data: bytes) -> np.ndarray:
    from sbdn_pipeline import images

    return images.decode_image(data).pixels


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _split_size(data_dir: str, split: str) -> int | None:
    try:
        with open(os.path.join(data_dir, features.MANIFEST_JSON), encoding="utf-8") as handle:
            return int(json.load(handle)["splits"][split]["examples"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def baseline_key(name: str) -> str:
    """Column prefix of a baseline in the per-image CSV files ("lbp-map" -> "lbp_map")."""
    return name.replace("-", "_")


def calibrate_baselines(
    data_dir: str, split: str, max_examples: int | None = None
) -> dict[str, dict[str, Any]]:
    """Choose each image-level baseline's threshold for the best accuracy on ``split``.

    Returns:
        {baseline name: {"data", "split", "n", "threshold", "accuracy_on_split"}}.
    """
    scorers = baselines.image_level_baselines()
    labels: list[int] = []
    scores: dict[str, list[float]] = {baseline.name: [] for baseline in scorers}
    for index, record in enumerate(iterate_records(data_dir, split)):
        if max_examples is not None and index >= max_examples:
            break
        labels.append(int(record[features.LABEL]))
        native = _native_pixels(record[features.IMAGE])
        for baseline in scorers:
            scores[baseline.name].append(baseline.compute(native))
    if not labels:
        raise ValueError(f"the {split} split of {data_dir} has no examples to calibrate on")
    calibration = {}
    for name, values in scores.items():
        threshold = metrics.best_accuracy_threshold(labels, values)
        calibration[name] = {
            "data": data_dir,
            "split": split,
            "n": len(labels),
            "threshold": threshold,
            "accuracy_on_split": metrics.accuracy(labels, values, threshold),
        }
    return calibration


class _MaskGroups:
    """MaskMetrics for a whole set of images and for its groups (kind, shape, strength)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.overall = metrics.MaskMetrics(threshold=threshold)
        self.groups: dict[str, dict[str, metrics.MaskMetrics]] = {}

    def add(
        self, predicted: np.ndarray, truth: np.ndarray, groups: dict[str, str]
    ) -> dict[str, float]:
        scores = self.overall.add(predicted, truth)
        for name, value in groups.items():
            per_value = self.groups.setdefault(name, {})
            per_value.setdefault(value, metrics.MaskMetrics(threshold=self.threshold)).add(
                predicted, truth
            )
        return scores

    def summary(self) -> dict[str, Any]:
        result = self.overall.summary()
        for name, per_value in self.groups.items():
            result[f"per_{name}"] = {
                value: accumulator.summary() for value, accumulator in sorted(per_value.items())
            }
        return result


class BaselineRun:
    """Every registered baseline over a stream of images: per-image scores and mask metrics.

    Image-level scores go into each image's row; maps are scored against the truth where
    there is one (blurred examples of a data set; images with a mask in folder mode), and
    the end-to-end pair (:data:`END_TO_END_BASELINES`) is gated like the models.
    """

    def __init__(
        self, calibration: dict[str, dict[str, Any]] | None, mask_threshold: float
    ) -> None:
        self.calibration = calibration or {}
        self.mask_threshold = mask_threshold
        self.masks = {b.name: _MaskGroups(mask_threshold) for b in baselines.map_baselines()}
        self.end_to_end = metrics.MaskMetrics(threshold=mask_threshold)
        self.sharp_flagged = 0

    def add(
        self,
        native: np.ndarray,
        row: dict[str, Any],
        truth: np.ndarray | None = None,
        groups: dict[str, str] | None = None,
        gate_truth: np.ndarray | None = None,
    ) -> None:
        """Score one image into ``row``; ``truth`` for the map metrics, ``gate_truth`` (every
        image of a data set, empty for sharp ones) for the end-to-end metrics."""
        for baseline in baselines.image_level_baselines():
            row[f"{baseline_key(baseline.name)}_score"] = float(baseline.compute(native))
        gate_name, map_name = END_TO_END_BASELINES
        for baseline in baselines.map_baselines():
            gated_here = (
                gate_truth is not None
                and baseline.name == map_name
                and gate_name in self.calibration
            )
            if truth is None and not gated_here:
                continue  # maps cost more; this one has nothing to be compared with
            blur_map = baseline.compute(native)
            if truth is not None:
                scores = self.masks[baseline.name].add(blur_map, truth, groups or {})
                row.update({f"{baseline_key(baseline.name)}_{k}": v for k, v in scores.items()})
            if gated_here:
                score = row[f"{baseline_key(gate_name)}_score"]
                blurry = score >= self.calibration[gate_name]["threshold"]
                gated = blur_map if blurry else np.zeros_like(blur_map)
                self.end_to_end.add(gated, gate_truth)
                if not gate_truth.any() and np.any(gated >= self.mask_threshold):
                    self.sharp_flagged += 1

    def map_reports(self) -> dict[str, dict[str, Any]]:
        """{map baseline: mask metrics} for the maps that met a truth mask."""
        return {
            name: groups.summary() for name, groups in self.masks.items() if groups.overall.count
        }


def evaluate_dataset(
    data_dir: str,
    out_dir: str,
    *,
    classifier: str | None = None,
    identifier: str | None = None,
    run_baselines: bool = True,
    threshold: float = DEFAULT_BLUR_THRESHOLD,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    split: str = "test",
    calibration_split: str = "val",
    calibration_data: str | None = None,
    calibration: dict[str, dict[str, Any]] | None = None,
    name: str | None = None,
    batch_size: int = 16,
    max_examples: int | None = None,
    make_plots: bool = True,
    tiles: TileSettings = TileSettings(),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate models and baselines on one split of a synthetic data set (module docstring).

    Baseline thresholds are ``calibration`` when given, else fitted on ``calibration_split``
    of ``calibration_data`` (default: this data set). ``name`` labels the data set in the
    report and headline (e.g. "cross-recipe").
    """
    os.makedirs(out_dir, exist_ok=True)
    loaded, working_long_side = load_models(classifier, identifier, run_baselines)

    if run_baselines and calibration is None:
        calibration_data = calibration_data or data_dir
        log(f"fitting baseline thresholds on the {calibration_split} split of {calibration_data}")
        calibration = calibrate_baselines(calibration_data, calibration_split)

    total = _split_size(data_dir, split)
    if max_examples is not None:
        total = min(total or max_examples, max_examples)
    rows: list[dict[str, Any]] = []
    identifier_masks = _MaskGroups(mask_threshold)
    baseline_run = BaselineRun(calibration, mask_threshold)
    end_to_end = {"models": metrics.MaskMetrics(threshold=mask_threshold)}
    sharp_flagged = {"models": 0}
    start = time.monotonic()
    records = iterate_records(data_dir, split)
    if max_examples is not None:
        records = (record for index, record in enumerate(records) if index < max_examples)
    for batch in _batched(records, batch_size):
        natives = [_native_pixels(record[features.IMAGE]) for record in batch]
        shapes = [native.shape[:2] for native in natives]
        views = None
        if loaded:
            views = [model_view(record[features.IMAGE], working_long_side) for record in batch]
        scores = masks = None
        if MODEL_CLASSIFIER in loaded:
            model, info = loaded[MODEL_CLASSIFIER]
            pooled: dict[str, np.ndarray] = {}
            scores = predict_classifier(model, info.input_size, views, pooled, tiles)
        if MODEL_IDENTIFIER in loaded:
            model, info = loaded[MODEL_IDENTIFIER]
            masks = predict_masks(model, info.input_size, views, shapes, tiles)
        for index, (record, native) in enumerate(zip(batch, natives)):
            label = int(record[features.LABEL])
            truth = features.decode_example_mask(record[features.MASK]).astype("float32")
            height, width = native.shape[:2]
            if truth.shape != (height, width):
                raise ValueError(
                    f"example {record[features.SOURCE_ID]}: mask {truth.shape} does not match "
                    f"image {native.shape[:2]}"
                )
            groups = {
                "blur_kind": record[features.BLUR_KIND],
                "region_shape": record[features.REGION_SHAPE],
                "strength_bucket": metrics.strength_bucket(
                    record[features.STRENGTH], max(height, width), label
                ),
                # BSDS photos have natural depth of field the masks call sharp: report apart.
                "source_group": record[features.SOURCE_GROUP],
            }
            row: dict[str, Any] = {
                "source_id": record[features.SOURCE_ID],
                "variant": int(record[features.VARIANT]),
                "label": label,
                **groups,
                "strength": round(float(record[features.STRENGTH]), 3),
                "area_fraction": round(float(record[features.AREA_FRACTION]), 4),
                "height": height,
                "width": width,
            }
            if scores is not None:
                row["classifier_score"] = float(scores[index])
                # Every tile pooling's P, to choose the detect job's default on val.
                row.update({key: float(values[index]) for key, values in pooled.items()})
            if masks is not None:
                predicted = masks[index]
                row["predicted_area_fraction"] = float(np.mean(predicted >= mask_threshold))
                if label:
                    mask_scores = identifier_masks.add(predicted, truth, groups)
                    row.update({f"identifier_{key}": value for key, value in mask_scores.items()})
                if scores is not None:
                    gated = predicted if scores[index] >= threshold else np.zeros_like(predicted)
                    end_to_end["models"].add(gated, truth)
                    if not label and np.any(gated >= mask_threshold):
                        sharp_flagged["models"] += 1
            if run_baselines:
                baseline_run.add(native, row, truth if label else None, groups, truth)
            rows.append(row)
        rate = len(rows) / max(time.monotonic() - start, 1e-9)
        log(f"evaluated {len(rows)}{f'/{total}' if total else ''} images ({rate:.1f} img/s)")

    if not rows:
        raise ValueError(f"the {split} split of {data_dir} has no examples")
    report = {
        "data": {
            "path": data_dir,
            "split": split,
            "n": len(rows),
            "positives": sum(row["label"] for row in rows),
            "negatives": sum(1 - row["label"] for row in rows),
            **({"name": name} if name else {}),
        },
        "protocol": {
            "classifier_threshold": threshold,
            "mask_threshold": mask_threshold,
            "beta_squared": metrics.BETA_SQUARED,
            "max_f_beta_sweep_steps": metrics.DEFAULT_SWEEP_STEPS,
            "images": "stored (native) size; models see them decoded and tiled (with a global "
            "letterbox view) as the detect job does; masks are stitched, refined and resized "
            "to the stored size",
            "tiles": dataclasses.asdict(tiles),
            "identifier_metrics_on": "blurred images only (label 1)",
            "strength_buckets": "effective Gaussian sigma rescaled to a 1024 px long side",
        },
        "models": {
            role: {
                "path": info.path,
                "sha256": info.sha256,
                "input_size": info.input_size,
                "mask_stride": info.mask_stride,
                "architecture": type(model).__name__,
            }
            for role, (model, info) in loaded.items()
        },
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(time.monotonic() - start, 1),
    }
    labels = np.array([row["label"] for row in rows])
    groups_of = {
        name: [row[name] for row in rows]
        for name in ("blur_kind", "region_shape", "strength_bucket", "source_group")
    }

    def classifier_report(key: str, decision_threshold: float) -> dict[str, Any]:
        scores = np.array([row[key] for row in rows])
        result = metrics.classifier_summary(labels, scores, decision_threshold)
        for name, values in groups_of.items():
            result[f"accuracy_per_{name}"] = metrics.accuracy_by_group(
                labels, scores, values, decision_threshold
            )
        result["auc_per_blur_kind_vs_sharp"] = metrics.auc_by_group_against_sharp(
            labels, scores, groups_of["blur_kind"]
        )
        return result

    if MODEL_CLASSIFIER in loaded:
        report[MODEL_CLASSIFIER] = classifier_report("classifier_score", threshold)
    if MODEL_IDENTIFIER in loaded:
        report[MODEL_IDENTIFIER] = identifier_masks.summary()
    if run_baselines:
        report["baselines"] = baseline_catalogue()
        for baseline in baselines.image_level_baselines():
            fitted = calibration[baseline.name]
            report[baseline.name] = {
                **classifier_report(f"{baseline_key(baseline.name)}_score", fitted["threshold"]),
                "threshold_calibration": fitted,
            }
        report.update(baseline_run.map_reports())
    negatives = int(report["data"]["negatives"])
    e2e = {}
    if MODEL_CLASSIFIER in loaded and MODEL_IDENTIFIER in loaded:
        e2e["models"] = {
            **end_to_end["models"].summary(),
            "sharp_images_with_nonempty_mask": sharp_flagged["models"],
            "sharp_images_with_nonempty_mask_fraction": sharp_flagged["models"] / negatives
            if negatives
            else None,
        }
    if run_baselines:
        e2e["baselines"] = {
            "pair": list(END_TO_END_BASELINES),
            **baseline_run.end_to_end.summary(),
            "sharp_images_with_nonempty_mask": baseline_run.sharp_flagged,
            "sharp_images_with_nonempty_mask_fraction": baseline_run.sharp_flagged / negatives
            if negatives
            else None,
        }
    if e2e:
        report["end_to_end"] = {
            "definition": "every image: the identifier mask if the classifier calls it blurry, "
            "else an empty mask, scored against the truth (empty for sharp images)",
            **e2e,
        }

    write_csv(os.path.join(out_dir, PREDICTIONS_FILE), rows)
    if make_plots:
        report["plots"] = write_dataset_plots(
            report, rows, out_dir, {MODEL_IDENTIFIER: identifier_masks, **baseline_run.masks}
        )
    write_metrics_json(os.path.join(out_dir, METRICS_FILE), report)
    log(headline(report))
    return report


def baseline_catalogue() -> dict[str, dict[str, str]]:
    """{name: {"kind", "description"}} of every baseline, for reports and tables."""
    return {
        baseline.name: {"kind": baseline.kind, "description": baseline.description}
        for baseline in baselines.BASELINES.values()
    }


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


def write_dataset_plots(
    report: dict[str, Any],
    rows: list[dict[str, Any]],
    out_dir: str,
    mask_groups: dict[str, _MaskGroups],
) -> list[str]:
    """ROC, confusion matrices, accuracy per kind and strength, mask PR curves, per-kind bars.

    ``mask_groups``: the mask accumulators of the identifier and of each map baseline.
    """
    from sbdn_pipeline.training import plots

    written = []
    labels = np.array([row["label"] for row in rows])
    series = [
        (name, key)
        for name, key in (
            (MODEL_CLASSIFIER, "classifier_score"),
            *(
                (b.name, f"{baseline_key(b.name)}_score")
                for b in baselines.image_level_baselines()
            ),
        )
        if name in report
    ]
    if series:
        curves = {}
        for name, key in series:
            fpr, tpr, _ = metrics.roc_curve(labels, [row[key] for row in rows])
            curves[name] = (fpr, tpr, report[name]["roc_auc"])
        written.append(plots.plot_roc_curves(curves, os.path.join(out_dir, "roc.png")))
        for name, _ in series:
            matrix = report[name]["confusion_matrix"]
            written.append(
                plots.plot_confusion_matrix(
                    [[matrix["tn"], matrix["fp"]], [matrix["fn"], matrix["tp"]]],
                    os.path.join(out_dir, f"confusion_matrix_{name}.png"),
                    title=f"{name} at threshold {report[name]['threshold']:.3g}",
                )
            )
        for group, file_name, title in (
            ("blur_kind", "accuracy_per_blur_kind.png", "accuracy per blur kind ('none' = sharp)"),
            ("strength_bucket", "accuracy_per_strength.png", "accuracy per blur strength"),
        ):
            values = {
                name: {k: v["accuracy"] for k, v in report[name][f"accuracy_per_{group}"].items()}
                for name, _ in series
            }
            counts = {k: v["n"] for k, v in report[series[0][0]][f"accuracy_per_{group}"].items()}
            written.append(
                plots.plot_group_bars(
                    values, os.path.join(out_dir, file_name), title=title, counts=counts
                )
            )
    mask_series = {
        name: accumulator
        for name, accumulator in mask_groups.items()
        if name in report and accumulator.overall.count
    }
    if mask_series:
        curves = {}
        for name, accumulator in mask_series.items():
            _, precision, recall = accumulator.overall.curves()
            curves[f"{name} (max F {report[name]['max_f_beta']:.3f})"] = (recall, precision)
        written.append(
            plots.plot_precision_recall_curves(
                curves, os.path.join(out_dir, "identifier_pr_curve.png")
            )
        )
        values = {
            name: {
                kind: summary["max_f_beta"]
                for kind, summary in report[name]["per_blur_kind"].items()
            }
            for name in mask_series
        }
        written.append(
            plots.plot_group_bars(
                values,
                os.path.join(out_dir, "identifier_max_f_beta_per_blur_kind.png"),
                ylabel="max F-beta",
                title="blur masks per blur kind (blurred images)",
            )
        )
    return [os.path.basename(path) for path in written]


# --- folder input -----------------------------------------------------------------------------


def label_from_path(path: str) -> int | None:
    """1 if a folder in the path is named blurry/blurred, 0 if one is named sharp, else None."""
    parts = [part.lower() for part in path.replace("\\", "/").split("/")[:-1]]
    for part in reversed(parts):
        if part in BLURRY_FOLDER_NAMES:
            return 1
        if part in SHARP_FOLDER_NAMES:
            return 0
    return None


def evaluate_folder(
    input_spec: str,
    out_dir: str,
    *,
    classifier: str | None = None,
    identifier: str | None = None,
    run_baselines: bool = True,
    threshold: float = DEFAULT_BLUR_THRESHOLD,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    masks_dir: str | None = None,
    calibration: dict[str, dict[str, Any]] | None = None,
    batch_size: int = 16,
    max_examples: int | None = None,
    tiles: TileSettings = TileSettings(),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score every image of a folder, glob or manifest; module docstring.

    ``masks_dir`` holds optional truth masks (``<image stem>.png``, white = blurred) for
    mask metrics; ``calibration`` (from :func:`calibrate_baselines`) gives the image-level
    baselines a decision threshold, without it they get ROC AUC and in-sample accuracy only.
    """
    from apache_beam.io.filesystems import FileSystems

    from sbdn_pipeline import images, inputs

    os.makedirs(out_dir, exist_ok=True)
    inputs.check_input(input_spec, exclude=out_dir)
    uris = list(inputs.expand_input(input_spec, exclude=out_dir))
    mask_files = match_masks(masks_dir, uris) if masks_dir else {}
    loaded, working_long_side = load_models(classifier, identifier, run_baselines)

    if max_examples is not None:
        uris = uris[:max_examples]
    truths: dict[str, np.ndarray] = {}
    identifier_masks = _MaskGroups(mask_threshold)
    baseline_run = BaselineRun(calibration, mask_threshold)
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    for batch in _batched(uris, batch_size):
        decoded = []
        for uri in batch:
            row: dict[str, Any] = {"uri": uri, "label": label_from_path(uri)}
            try:
                with FileSystems.open(uri, compression_type="uncompressed") as handle:
                    data = handle.read()
                native = images.decode_image(data).pixels
                view = model_view(data, working_long_side) if loaded else None
            except images.ImageError as exc:
                row["error"] = f"{exc.error_type}: {exc.message}"
                rows.append(row)
                continue
            row.update({"height": native.shape[0], "width": native.shape[1]})
            if uri in mask_files:
                row["mask"] = mask_files[uri]
                truths[uri] = read_mask(mask_files[uri], *native.shape[:2])
            if run_baselines:
                baseline_run.add(native, row, truths.get(uri), _folder_groups(row))
            decoded.append((row, view))
            rows.append(row)
        if decoded and MODEL_CLASSIFIER in loaded:
            model, info = loaded[MODEL_CLASSIFIER]
            pooled_folder: dict[str, np.ndarray] = {}
            scores = predict_classifier(model, info.input_size, [view for _, view in decoded],
                                        pooled_folder, tiles)
            for index, ((row, _), score) in enumerate(zip(decoded, scores)):
                row["blur_probability"] = float(score)
                row["blurry"] = bool(score >= threshold)
                row.update({key: float(values[index]) for key, values in pooled_folder.items()})
        if decoded and MODEL_IDENTIFIER in loaded:
            model, info = loaded[MODEL_IDENTIFIER]
            shapes = [(row["height"], row["width"]) for row, _ in decoded]
            masks = predict_masks(model, info.input_size, [view for _, view in decoded], shapes,
                                  tiles)
            for (row, _), mask in zip(decoded, masks):
                row["blur_area_fraction"] = float(np.mean(mask >= mask_threshold))
                if row["uri"] in truths:
                    scores = identifier_masks.add(mask, truths[row["uri"]], _folder_groups(row))
                    row.update({f"identifier_{key}": value for key, value in scores.items()})
        log(
            f"scored {len(rows)}/{len(uris)} files "
            f"({len(rows) / max(time.monotonic() - start, 1e-9):.1f} img/s)"
        )

    report: dict[str, Any] = {
        "data": {
            "path": input_spec,
            "files": len(rows),
            "errors": sum("error" in row for row in rows),
        },
        "models": {
            role: {"path": info.path, "sha256": info.sha256, "input_size": info.input_size}
            for role, (_, info) in loaded.items()
        },
        "classifier_threshold": threshold,
        "mask_threshold": mask_threshold,
    }
    report.update(folder_classifier_reports(rows, threshold, calibration))
    if run_baselines:
        report["baselines"] = baseline_catalogue()
    if masks_dir:
        report["masks"] = {
            "dir": masks_dir,
            "images_with_masks": len(truths),
            "metrics_on": "every decoded image that has a mask (blurred or not)",
        }
        if identifier_masks.overall.count:
            report[MODEL_IDENTIFIER] = identifier_masks.summary()
        report.update(baseline_run.map_reports())
    write_csv(os.path.join(out_dir, SCORES_CSV), rows)
    write_metrics_json(os.path.join(out_dir, SCORES_JSON), {"report": report, "files": rows})
    write_metrics_json(os.path.join(out_dir, METRICS_FILE), report)
    log(headline(report))
    log(f"wrote {os.path.join(out_dir, SCORES_CSV)}")
    return report


def _folder_groups(row: dict[str, Any]) -> dict[str, str]:
    """Mask-metric groups of a folder image: its folder label."""
    return {"label": {0: "sharp", 1: "blurry", None: "unlabelled"}[row["label"]]}


def folder_classifier_reports(
    rows: list[dict[str, Any]],
    threshold: float,
    calibration: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    """Image-level metrics of the classifier and baselines on the labelled images.

    Every scorer also gets its best accuracy over all thresholds *on these images* (an upper
    bound, labelled as such); baselines get a real accuracy only from a calibration split.
    """
    labelled = [row for row in rows if row["label"] is not None and "error" not in row]
    labels = [row["label"] for row in labelled]
    if set(labels) != {0, 1}:
        return {}
    scorers = [(MODEL_CLASSIFIER, "blur_probability", threshold)]
    for baseline in baselines.image_level_baselines():
        fitted = (calibration or {}).get(baseline.name)
        key = f"{baseline_key(baseline.name)}_score"
        scorers.append((baseline.name, key, fitted["threshold"] if fitted else None))
    result: dict[str, Any] = {"labels": "from folder names (sharp / blurry or blurred)"}
    for name, key, decision_threshold in scorers:
        if key not in labelled[0]:
            continue
        scores = [row[key] for row in labelled]
        best = metrics.best_accuracy_threshold(labels, scores)
        part: dict[str, Any] = {"n": len(labels), "roc_auc": metrics.roc_auc(labels, scores)}
        if decision_threshold is not None:
            part.update(metrics.classifier_summary(labels, scores, decision_threshold))
        elif name != MODEL_CLASSIFIER:
            part["note"] = "no calibration split (--calibration-data): ROC AUC only"
        if calibration and name in calibration:
            part["threshold_calibration"] = calibration[name]
        part["best_accuracy_in_sample"] = metrics.accuracy(labels, scores, best)
        part["best_threshold_in_sample"] = best
        result[name] = part
    return result


def match_masks(masks_dir: str, uris: list[str]) -> dict[str, str]:
    """Pair each ``DIR/<stem>.png`` with the image ``<stem>.*``; fail on any loose end.

    Returns:
        {image URI: mask path}.

    Raises:
        ValueError: one line naming the mask that has no image, more than one image, is not
            a PNG, or cannot be read.
    """
    from PIL import Image

    if not os.path.isdir(masks_dir):
        raise ValueError(f"--masks {masks_dir}: not a folder")
    by_stem: dict[str, list[str]] = {}
    for uri in uris:
        by_stem.setdefault(os.path.splitext(os.path.basename(uri))[0], []).append(uri)
    found = {}
    for entry in sorted(os.listdir(masks_dir)):
        path = os.path.join(masks_dir, entry)
        if entry.startswith(".") or os.path.isdir(path):
            continue
        stem, extension = os.path.splitext(entry)
        if extension.lower() != ".png":
            raise ValueError(f"mask {path}: masks must be PNG files named <image stem>.png")
        matches = by_stem.get(stem, [])
        if not matches:
            raise ValueError(f"mask {path} matches no image (no input file named {stem}.*)")
        if len(matches) > 1:
            raise ValueError(
                f"mask {path} matches {len(matches)} images ({', '.join(matches[:3])}); "
                "masks are matched by file name, so those images need distinct names"
            )
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as exc:  # PIL raises many types for broken files
            raise ValueError(f"mask {path} is not a readable PNG ({exc})") from exc
        found[matches[0]] = path
    if not found:
        raise ValueError(f"--masks {masks_dir}: no PNG masks in the folder")
    return found


def read_mask(path: str, height: int, width: int) -> np.ndarray:
    """A truth mask as float32 (height, width) in [0, 1] (white = blurred), resized if needed."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode in ("I", "I;16", "I;16B", "I;16L"):
                grey = np.asarray(image, dtype="float32") / 65535.0
            else:
                grey = np.asarray(image.convert("L"), dtype="float32") / 255.0
    except Exception as exc:  # PIL raises many types for broken files
        raise ValueError(f"mask {path} is not a readable PNG ({exc})") from exc
    return np.clip(resize_mask(grey, height, width), 0.0, 1.0)


# --- entry point ------------------------------------------------------------------------------


def evaluate(
    data: str,
    out_dir: str,
    classifier: str | None = None,
    identifier: str | None = None,
    baselines: bool = True,
    threshold: float = DEFAULT_BLUR_THRESHOLD,
    *,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    split: str = DEFAULT_EVAL_SPLIT,
    calibration_split: str = "val",
    calibration_data: str | None = None,
    cross_recipe: str | None = None,
    masks: str | None = None,
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE,
    max_examples: int | None = None,
    make_plots: bool = True,
    tiles: TileSettings = TileSettings(),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate models (and baselines) on a data set or a folder of images.

    Args:
        data: data set folder from ``sbdn make-dataset``, or a folder / glob / manifest of
            images.
        out_dir: where ``metrics.json``, the per-image CSV and the plots go.
        classifier: ``.keras`` classifier to evaluate, or None.
        identifier: ``.keras`` identifier to evaluate, or None.
        baselines: also evaluate the classic baselines (:data:`baselines.BASELINES`).
        threshold: the classifier's decision threshold (the shipped one by default).
        mask_threshold: a mask pixel is blurred when its confidence is >= this.
        split: data set split to evaluate.
        calibration_split: split on which the image-level baselines' thresholds are fitted.
        calibration_data: data set whose ``calibration_split`` is used for that (default:
            ``data`` when it is a data set; a folder gets no baseline thresholds without it).
        cross_recipe: a second data set (another generator recipe): its same-named split is
            evaluated too, with the same models and baseline thresholds; ``out_dir`` then gets
            ``own/`` and ``cross-recipe/`` and a ``metrics.json`` with both.
        masks: folder mode only: folder of truth masks named ``<image stem>.png``.
        batch_size: images per model call.
        max_examples: evaluate only the first N images (quick looks).
        make_plots: write the PNG figures (data sets only).
        tiles: tile budgets and pooling of the models (the detect job's defaults).
        log: progress printer.

    Returns:
        The report written to ``out_dir/metrics.json``.

    Raises:
        ValueError: on options that do not fit the input (one line).
    """
    options = dict(
        classifier=classifier,
        identifier=identifier,
        run_baselines=baselines,
        threshold=threshold,
        mask_threshold=mask_threshold,
        batch_size=batch_size,
        max_examples=max_examples,
        tiles=tiles,
        log=log,
    )
    if is_dataset(data):
        if masks:
            raise ValueError("--masks is for a folder of images; a data set has its own masks")
        data_options = dict(
            split=split,
            calibration_split=calibration_split,
            calibration_data=calibration_data,
            make_plots=make_plots,
            **options,
        )
        if cross_recipe:
            return evaluate_cross_recipe(data, cross_recipe, out_dir, **data_options)
        return evaluate_dataset(data, out_dir, **data_options)
    if cross_recipe:
        raise ValueError(f"--cross-recipe needs --data to be a data set; {data} is not one")
    calibration = None
    if baselines and calibration_data:
        check_dataset_split(calibration_data, calibration_split, "--calibration-data")
        log(f"fitting baseline thresholds on the {calibration_split} split of {calibration_data}")
        calibration = calibrate_baselines(calibration_data, calibration_split)
    return evaluate_folder(data, out_dir, masks_dir=masks, calibration=calibration, **options)


def check_dataset_split(path: str, split: str, what: str) -> None:
    """Fail early, in one line, when ``path`` is not a data set or lacks ``split``."""
    import tensorflow as tf

    if not is_dataset(path):
        raise ValueError(f"{what} {path}: not a data set written by `sbdn make-dataset`")
    if not tf.io.gfile.glob(features.shard_pattern(path, split)):
        raise ValueError(f"{what} {path}: the data set has no {split} split")


def evaluate_cross_recipe(
    data_dir: str,
    cross_dir: str,
    out_dir: str,
    *,
    split: str = "test",
    calibration_split: str = "val",
    calibration_data: str | None = None,
    run_baselines: bool = True,
    log: Callable[[str], None] = print,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate the same models and baselines on ``split`` of our own data set and of a
    cross-recipe one (blur made with generator settings training never saw).

    Baseline thresholds are fitted once, on ``calibration_split`` of ``calibration_data``
    (default: our own data set), exactly as the models only ever saw our own recipe.
    Writes ``out_dir/own/``, ``out_dir/cross-recipe/`` (each a full evaluation) and
    ``out_dir/metrics.json`` = {"datasets": {"own": ..., "cross-recipe": ...}}.
    """
    if os.path.realpath(data_dir) == os.path.realpath(cross_dir):
        raise ValueError("--cross-recipe names the same data set as --data")
    calibration_data = calibration_data or data_dir
    check_dataset_split(data_dir, split, "--data")
    check_dataset_split(cross_dir, split, "--cross-recipe")
    calibration = None
    if run_baselines:
        check_dataset_split(calibration_data, calibration_split, "calibration data")
        log(f"fitting baseline thresholds on the {calibration_split} split of {calibration_data}")
        calibration = calibrate_baselines(calibration_data, calibration_split)
    os.makedirs(out_dir, exist_ok=True)
    reports = {}
    for name, path in ((OWN_DATA, data_dir), (CROSS_RECIPE_DATA, cross_dir)):
        log(f"--- {name}: the {split} split of {path}")
        reports[name] = evaluate_dataset(
            path,
            os.path.join(out_dir, name),
            split=split,
            run_baselines=run_baselines,
            calibration=calibration,
            name=name,
            log=log,
            **options,
        )
    combined = {
        "datasets": reports,
        "folders": {name: name for name in reports},
        "baseline_threshold_calibration": {
            "data": calibration_data,
            "split": calibration_split,
        }
        if run_baselines
        else None,
    }
    write_metrics_json(os.path.join(out_dir, METRICS_FILE), combined)
    log("\n".join(headline(report) for report in reports.values()))
    return combined


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
