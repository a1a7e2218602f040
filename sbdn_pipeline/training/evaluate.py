"""Evaluation job: trained models and classic baselines on held-out data, side by side.

Two kinds of input:

* a data set made by ``sbdn make-dataset`` (its ``test`` split by default): every image is
  decoded from its stored bytes, reduced and letterboxed exactly as the detect job does
  (:func:`model_view`), classified, segmented, and its mask mapped back onto the stored
  image; metrics go to ``metrics.json``, one row per image to ``predictions.csv``, figures
  to PNG files. The Laplacian-variance classifier gets its threshold from the validation
  split; the Laplacian-energy map is scored with the same mask metrics as the identifier.
* a folder (or glob, or manifest) of ordinary images without masks: per-file scores go to
  ``scores.csv`` and ``scores.json``. If paths contain a folder named ``sharp`` or
  ``blurry``/``blurred``, those are taken as labels and classifier metrics are added.

Metric definitions are in :mod:`sbdn_pipeline.training.metrics`.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from sbdn_pipeline import features
from sbdn_pipeline.options import DEFAULT_BLUR_THRESHOLD, DEFAULT_MASK_THRESHOLD
from sbdn_pipeline.training import baselines, metrics

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
SCORES_CSV = "scores.csv"
SCORES_JSON = "scores.json"
MODEL_CLASSIFIER = "classifier"
MODEL_IDENTIFIER = "identifier"
BASELINE_CLASSIFIER = "laplacian-variance"
BASELINE_MAP = "laplacian-energy"
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


def model_view(data: bytes, working_long_side: int) -> np.ndarray:
    """Decode image bytes and reduce them exactly as the detect job does before letterboxing.

    Large JPEGs are decoded with a DCT-domain downscale, then area-shrunk so the long side is
    at most ``working_long_side`` (the largest model input).
    """
    from sbdn_pipeline.inference import shrink_to_long_side
    from sbdn_pipeline import images

    decoded = images.decode_image(data, target_long_side=working_long_side)
    return shrink_to_long_side(decoded.pixels, working_long_side)


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float mask (h, w) to (height, width)."""
    from PIL import Image

    if mask.shape == (height, width):
        return mask.astype("float32")
    image = Image.fromarray(np.asarray(mask, dtype="float32"), mode="F")
    return np.asarray(image.resize((width, height), Image.BILINEAR), dtype="float32")


def predict_classifier(model: Any, size: int, views: list[np.ndarray]) -> np.ndarray:
    """P(blurry) for a list of RGB uint8 views (letterboxed here, as the detect job does)."""
    from sbdn_pipeline import inference

    batch = np.stack([inference.letterbox(view, size)[0] for view in views])
    return np.asarray(model.predict_on_batch(batch), dtype="float64").reshape(-1)


def predict_masks(
    model: Any, size: int, views: list[np.ndarray], shapes: list[tuple[int, int]]
) -> list[np.ndarray]:
    """Identifier masks mapped back onto images of the given (height, width)."""
    from sbdn_pipeline import inference

    boxed = [inference.letterbox(view, size) for view in views]
    outputs = np.asarray(model.predict_on_batch(np.stack([pixels for pixels, _ in boxed])))
    masks = []
    for output, (_, info), (height, width) in zip(outputs, boxed, shapes):
        content = inference.unletterbox_mask(output.astype("float32"), info)
        masks.append(np.clip(_resize_mask(content, height, width), 0.0, 1.0))
    return masks


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


def calibrate_laplacian_threshold(
    data_dir: str, split: str, max_examples: int | None = None
) -> dict[str, Any]:
    """Choose the Laplacian-variance blur-score threshold with the best accuracy on ``split``."""
    labels, scores = [], []
    for index, record in enumerate(iterate_records(data_dir, split)):
        if max_examples is not None and index >= max_examples:
            break
        labels.append(int(record[features.LABEL]))
        scores.append(baselines.laplacian_blur_score(_native_pixels(record[features.IMAGE])))
    threshold = metrics.best_accuracy_threshold(labels, scores)
    return {
        "split": split,
        "n": len(labels),
        "threshold": threshold,
        "accuracy_on_split": metrics.accuracy(labels, scores, threshold),
    }


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
    batch_size: int = 16,
    max_examples: int | None = None,
    make_plots: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate models and baselines on one split of a synthetic data set (module docstring)."""
    os.makedirs(out_dir, exist_ok=True)
    loaded, working_long_side = load_models(classifier, identifier, run_baselines)

    calibration = None
    if run_baselines:
        log(f"calibrating the Laplacian-variance threshold on the {calibration_split} split")
        calibration = calibrate_laplacian_threshold(data_dir, calibration_split)

    total = _split_size(data_dir, split)
    if max_examples is not None:
        total = min(total or max_examples, max_examples)
    rows: list[dict[str, Any]] = []
    identifier_masks = _MaskGroups(mask_threshold)
    baseline_masks = _MaskGroups(mask_threshold)
    end_to_end = {
        name: metrics.MaskMetrics(threshold=mask_threshold) for name in ("models", "baselines")
    }
    sharp_flagged = {"models": 0, "baselines": 0}
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
            scores = predict_classifier(model, info.input_size, views)
        if MODEL_IDENTIFIER in loaded:
            model, info = loaded[MODEL_IDENTIFIER]
            masks = predict_masks(model, info.input_size, views, shapes)
        for index, (record, native) in enumerate(zip(batch, natives)):
            label = int(record[features.LABEL])
            truth = features.decode_mask(record[features.MASK]).astype("float32")
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
                blur_score = baselines.laplacian_blur_score(native)
                row["laplacian_score"] = blur_score
                energy_map = baselines.laplacian_energy_map(native)
                if label:
                    mask_scores = baseline_masks.add(energy_map, truth, groups)
                    row.update(
                        {f"laplacian_energy_{key}": value for key, value in mask_scores.items()}
                    )
                gated = (
                    energy_map
                    if blur_score >= calibration["threshold"]
                    else np.zeros_like(energy_map)
                )
                end_to_end["baselines"].add(gated, truth)
                if not label and np.any(gated >= mask_threshold):
                    sharp_flagged["baselines"] += 1
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
        },
        "protocol": {
            "classifier_threshold": threshold,
            "mask_threshold": mask_threshold,
            "beta_squared": metrics.BETA_SQUARED,
            "max_f_beta_sweep_steps": metrics.DEFAULT_SWEEP_STEPS,
            "images": "stored (native) size; models see them decoded, reduced and letterboxed "
            "as the detect job does; masks are mapped back and resized to the stored size",
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
        report[BASELINE_CLASSIFIER] = {
            **classifier_report("laplacian_score", calibration["threshold"]),
            "threshold_calibration": calibration,
        }
        report[BASELINE_MAP] = baseline_masks.summary()
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
            **end_to_end["baselines"].summary(),
            "sharp_images_with_nonempty_mask": sharp_flagged["baselines"],
            "sharp_images_with_nonempty_mask_fraction": sharp_flagged["baselines"] / negatives
            if negatives
            else None,
        }
    if e2e:
        report["end_to_end"] = {
            "definition": "every image: the identifier mask if the classifier calls it blurry, "
            "else an empty mask, scored against the truth (empty for sharp images)",
            **e2e,
        }

    write_csv(rows, os.path.join(out_dir, PREDICTIONS_FILE))
    if make_plots:
        report["plots"] = write_dataset_plots(
            report, rows, out_dir, identifier_masks, baseline_masks
        )
    write_json(report, os.path.join(out_dir, METRICS_FILE))
    log(headline(report))
    return report


def headline(report: dict[str, Any]) -> str:
    """A few lines with the main numbers of a data set evaluation."""
    lines = [f"{report['data']['split']} split: {report['data']['n']} images"]
    for name in (MODEL_CLASSIFIER, BASELINE_CLASSIFIER):
        if name in report:
            part = report[name]
            lines.append(
                f"  {name:20s} accuracy {part['accuracy']:.4f}  ROC AUC {part['roc_auc']:.4f}  "
                f"(threshold {part['threshold']:.3g})"
            )
    for name in (MODEL_IDENTIFIER, BASELINE_MAP):
        if name in report and report[name].get("n"):
            part = report[name]
            lines.append(
                f"  {name:20s} max-F-beta {part['max_f_beta']:.4f}  IoU@0.5 {part['iou']:.4f}  "
                f"MAE {part['mae']:.4f}"
            )
    return "\n".join(lines)


def write_dataset_plots(
    report: dict[str, Any],
    rows: list[dict[str, Any]],
    out_dir: str,
    identifier_masks: _MaskGroups,
    baseline_masks: _MaskGroups,
) -> list[str]:
    """ROC, confusion matrices, accuracy per kind and strength, mask PR curves, per-kind bars."""
    from sbdn_pipeline.training import plots

    written = []
    labels = np.array([row["label"] for row in rows])
    series = [
        (name, key)
        for name, key in (
            (MODEL_CLASSIFIER, "classifier_score"),
            (BASELINE_CLASSIFIER, "laplacian_score"),
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
        for name, accumulator in (
            (MODEL_IDENTIFIER, identifier_masks),
            (BASELINE_MAP, baseline_masks),
        )
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
    batch_size: int = 16,
    max_examples: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score every image of a folder, glob or manifest (no masks needed); module docstring."""
    from apache_beam.io.filesystems import FileSystems

    from sbdn_pipeline import images, inputs

    os.makedirs(out_dir, exist_ok=True)
    inputs.check_input(input_spec, exclude=out_dir)
    loaded, working_long_side = load_models(classifier, identifier, run_baselines)

    uris = list(inputs.expand_input(input_spec, exclude=out_dir))
    if max_examples is not None:
        uris = uris[:max_examples]
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
            if run_baselines:
                row["laplacian_variance"] = baselines.laplacian_variance(native)
                row["laplacian_score"] = baselines.laplacian_blur_score(native)
            decoded.append((row, view))
            rows.append(row)
        if decoded and MODEL_CLASSIFIER in loaded:
            model, info = loaded[MODEL_CLASSIFIER]
            scores = predict_classifier(model, info.input_size, [view for _, view in decoded])
            for (row, _), score in zip(decoded, scores):
                row["blur_probability"] = float(score)
                row["blurry"] = bool(score >= threshold)
        if decoded and MODEL_IDENTIFIER in loaded:
            model, info = loaded[MODEL_IDENTIFIER]
            shapes = [(row["height"], row["width"]) for row, _ in decoded]
            masks = predict_masks(model, info.input_size, [view for _, view in decoded], shapes)
            for (row, _), mask in zip(decoded, masks):
                row["blur_area_fraction"] = float(np.mean(mask >= mask_threshold))
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
    labelled = [row for row in rows if row["label"] is not None and "error" not in row]
    label_values = {row["label"] for row in labelled}
    if label_values == {0, 1}:
        labels = [row["label"] for row in labelled]
        if MODEL_CLASSIFIER in loaded:
            report[MODEL_CLASSIFIER] = metrics.classifier_summary(
                labels, [row["blur_probability"] for row in labelled], threshold
            )
        if run_baselines:
            laplacian_scores = [row["laplacian_score"] for row in labelled]
            report[BASELINE_CLASSIFIER] = {
                "n": len(labelled),
                "roc_auc": metrics.roc_auc(labels, laplacian_scores),
                "note": "no validation split to choose a threshold from: ROC AUC only",
            }
        report["labels"] = "from folder names (sharp / blurry or blurred)"
    write_csv(rows, os.path.join(out_dir, SCORES_CSV))
    write_json({"report": report, "files": rows}, os.path.join(out_dir, SCORES_JSON))
    write_json(report, os.path.join(out_dir, METRICS_FILE))
    log(f"wrote {os.path.join(out_dir, SCORES_CSV)}")
    return report


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
    split: str = "test",
    calibration_split: str = "val",
    batch_size: int = 16,
    max_examples: int | None = None,
    make_plots: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate models (and baselines) on a data set or a folder of images.

    Args:
        data: data set folder from ``sbdn make-dataset``, or a folder / glob / manifest of
            images.
        out_dir: where ``metrics.json``, the per-image CSV and the plots go.
        classifier: ``.keras`` classifier to evaluate, or None.
        identifier: ``.keras`` identifier to evaluate, or None.
        baselines: also evaluate the Laplacian baselines.
        threshold: the classifier's decision threshold (the shipped one by default).
        mask_threshold: a mask pixel is blurred when its confidence is >= this.
        split: data set split to evaluate.
        calibration_split: split on which the Laplacian-variance threshold is chosen.
        batch_size: images per model call.
        max_examples: evaluate only the first N images (quick looks).
        make_plots: write the PNG figures (data sets only).
        log: progress printer.

    Returns:
        The report written to ``out_dir/metrics.json``.
    """
    if is_dataset(data):
        return evaluate_dataset(
            data,
            out_dir,
            classifier=classifier,
            identifier=identifier,
            run_baselines=baselines,
            threshold=threshold,
            mask_threshold=mask_threshold,
            split=split,
            calibration_split=calibration_split,
            batch_size=batch_size,
            max_examples=max_examples,
            make_plots=make_plots,
            log=log,
        )
    return evaluate_folder(
        data,
        out_dir,
        classifier=classifier,
        identifier=identifier,
        run_baselines=baselines,
        threshold=threshold,
        mask_threshold=mask_threshold,
        batch_size=batch_size,
        max_examples=max_examples,
        log=log,
    )


def write_json(document: Any, path: str) -> None:
    """Write JSON atomically (temporary file, then rename); NaN becomes null."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(_plain(document), handle, indent=2, allow_nan=False)
    os.replace(temporary, path)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars become Python numbers, NaN (undefined metric) null."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_csv(rows: list[dict[str, Any]], path: str) -> None:
    """Write rows (union of their keys as columns) to CSV atomically."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    temporary = f"{path}.tmp"
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
