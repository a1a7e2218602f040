"""Evaluation on one split of a data set made by ``sbdn make-dataset``, and on a cross-recipe pair.

Each batch of records is decoded, run through the models as the detect job runs them
(:class:`~sbdn_pipeline.training.evaluate.LoadedModels`) and handed, with every baseline, to
:class:`DatasetScorers`; the report is assembled from the scorers' reports. What is written
is described in :mod:`sbdn_pipeline.training.evaluate`.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import time
from typing import Any

import numpy as np

from sbdn_pipeline import cascade, features
from sbdn_pipeline.training import metrics, plots
from sbdn_pipeline.training.evaluate import BatchPredictions, EvaluationSettings, LoadedModels
from sbdn_pipeline.training.evaluation_inputs import (
    batched,
    check_dataset_split,
    expected_examples,
    fit_baseline_thresholds,
    iterate_records,
    native_pixels,
)
from sbdn_pipeline.training.evaluation_outputs import (
    CROSS_RECIPE_DATA,
    METRICS_FILE,
    MODEL_CLASSIFIER,
    MODEL_IDENTIFIER,
    OWN_DATA,
    PREDICTIONS_FILE,
    headline,
    write_csv,
    write_metrics_json,
)
from sbdn_pipeline.training.scorers import (
    BaselineScorer,
    Calibration,
    ClassifierScorer,
    EndToEndScorer,
    MaskScorer,
    prefixed,
)

# The groups a data set's images are reported by (accuracies and mask metrics per value).
DATASET_GROUPS = ("blur_kind", "region_shape", "strength_bucket", "source_group")
END_TO_END_DEFINITION = (
    "every image: the identifier mask if the classifier calls it blurry, "
    "else an empty mask, scored against the truth (empty for sharp images)"
)


@dataclasses.dataclass(frozen=True)
class DatasetExample:
    """One record, decoded: stored bytes and pixels, truth mask, label, groups, CSV row."""

    encoded: bytes
    native: np.ndarray
    truth: np.ndarray
    label: int
    groups: dict[str, str]
    row: dict[str, Any]

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) at the stored size."""
        return self.native.shape[:2]


def decode_example(record: dict[str, Any]) -> DatasetExample:
    """Decode a record's image and mask and start its CSV row.

    Raises:
        ValueError: when the mask and the image differ in size.
    """
    label = int(record[features.LABEL])
    native = native_pixels(record[features.IMAGE])
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
    return DatasetExample(record[features.IMAGE], native, truth, label, groups, row)


class DatasetScorers:
    """Every scorer of a data set evaluation; ``add`` also fills each example's CSV row.

    ``calibration`` (the baselines' fitted thresholds) None: no baselines.
    """

    def __init__(
        self, models: LoadedModels, settings: EvaluationSettings, calibration: Calibration | None
    ) -> None:
        self.threshold = settings.threshold
        self.mask_threshold = settings.mask_threshold
        self.classifier: ClassifierScorer | None = None
        self.identifier: MaskScorer | None = None
        self.end_to_end: EndToEndScorer | None = None
        self.baselines: BaselineScorer | None = None
        if MODEL_CLASSIFIER in models:
            self.classifier = ClassifierScorer(settings.threshold, DATASET_GROUPS)
        if MODEL_IDENTIFIER in models:
            self.identifier = MaskScorer(settings.mask_threshold)
        if self.classifier and self.identifier:
            self.end_to_end = EndToEndScorer(settings.mask_threshold)
        if calibration is not None:
            calibrated = functools.partial(ClassifierScorer.calibrated, group_names=DATASET_GROUPS)
            self.baselines = BaselineScorer(calibration, settings.mask_threshold, calibrated)

    def add(self, examples: list[DatasetExample], predicted: BatchPredictions) -> None:
        """Score a batch of examples and what the models said about them."""
        labels = [example.label for example in examples]
        groups = [example.groups for example in examples]
        truths = [example.truth for example in examples]
        # Identifier metrics on blurred images only; sharp ones count end to end.
        blurred_truths = [example.truth if example.label else None for example in examples]
        rows = [example.row for example in examples]
        if predicted.probabilities is not None:
            self.classifier.add(labels, predicted.probabilities, groups)
            for index, row in enumerate(rows):
                row["classifier_score"] = float(predicted.probabilities[index])
                row.update(predicted.pooled_columns(index))
        if predicted.masks is not None:
            mask_scores = self.identifier.add(predicted.masks, blurred_truths, groups)
            for row, mask, scores in zip(rows, predicted.masks, mask_scores):
                row["predicted_area_fraction"] = float(np.mean(mask >= self.mask_threshold))
                row.update(prefixed(MODEL_IDENTIFIER, scores or {}))
        if self.end_to_end:
            verdicts = np.array([cascade.is_blurry(p, self.threshold)
                                 for p in predicted.probabilities])
            self.end_to_end.add(labels, verdicts, predicted.masks, truths)
        if self.baselines:
            natives = [example.native for example in examples]
            columns = self.baselines.add(natives, labels, blurred_truths, groups, truths)
            for row, image_columns in zip(rows, columns):
                row.update(image_columns)

    def report(self) -> dict[str, Any]:
        """The classifier, identifier, baselines and end-to-end parts of the report."""
        report: dict[str, Any] = {}
        if self.classifier:
            report[MODEL_CLASSIFIER] = self.classifier.report()
        if self.identifier:
            report[MODEL_IDENTIFIER] = self.identifier.report()
        if self.baselines:
            report.update(self.baselines.report())
        end_to_end = {}
        if self.end_to_end:
            end_to_end["models"] = self.end_to_end.report()
        if self.baselines:
            end_to_end["baselines"] = self.baselines.end_to_end_report()
        if end_to_end:
            report["end_to_end"] = {"definition": END_TO_END_DEFINITION, **end_to_end}
        return report

    def write_plots(self, report: dict[str, Any], out_dir: str) -> list[str]:
        """The figures of :func:`plots.write_dataset_plots`; returns the file names."""
        classifiers = {MODEL_CLASSIFIER: self.classifier} if self.classifier else {}
        masks = {MODEL_IDENTIFIER: self.identifier} if self.identifier else {}
        if self.baselines:
            classifiers.update(self.baselines.image_scorers)
            masks.update(self.baselines.maps)
        return plots.write_dataset_plots(report, out_dir, classifiers, masks)


def evaluate_dataset(
    data_dir: str, out_dir: str, settings: EvaluationSettings = EvaluationSettings(), *,
    split: str = "test", calibration_split: str = "val", calibration_data: str | None = None,
    calibration: Calibration | None = None, name: str | None = None, make_plots: bool = True,
) -> dict[str, Any]:
    """Evaluate models and baselines on one split of a synthetic data set.

    Baseline thresholds are ``calibration`` when given, else fitted on ``calibration_split``
    of ``calibration_data`` (default: this data set). ``name`` labels the data set in the
    report and headline (e.g. "cross-recipe").
    """
    os.makedirs(out_dir, exist_ok=True)
    models = LoadedModels(settings)
    if settings.run_baselines and calibration is None:
        calibration = fit_baseline_thresholds(
            calibration_data or data_dir, calibration_split, settings.log
        )
    scorers = DatasetScorers(models, settings, calibration if settings.run_baselines else None)
    total = expected_examples(data_dir, split, settings.max_examples)
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    records = iterate_records(data_dir, split, settings.max_examples)
    for batch in batched(records, settings.batch_size):
        examples = [decode_example(record) for record in batch]
        encoded = [example.encoded for example in examples]
        scorers.add(examples, models.predict(encoded, [example.shape for example in examples]))
        rows.extend(example.row for example in examples)
        rate = len(rows) / max(time.monotonic() - start, 1e-9)
        of_total = f"/{total}" if total else ""
        settings.log(f"evaluated {len(rows)}{of_total} images ({rate:.1f} img/s)")
    if not rows:
        raise ValueError(f"the {split} split of {data_dir} has no examples")
    report = {
        **_report_head(data_dir, split, name, rows, settings, models, start),
        **scorers.report(),
    }
    write_csv(os.path.join(out_dir, PREDICTIONS_FILE), rows)
    if make_plots:
        report["plots"] = scorers.write_plots(report, out_dir)
    write_metrics_json(os.path.join(out_dir, METRICS_FILE), report)
    settings.log(headline(report))
    return report


def _report_head(
    data_dir: str,
    split: str,
    name: str | None,
    rows: list[dict[str, Any]],
    settings: EvaluationSettings,
    models: LoadedModels,
    start: float,
) -> dict[str, Any]:
    """What was evaluated, and how: the report's first parts."""
    return {
        "data": {
            "path": data_dir,
            "split": split,
            "n": len(rows),
            "positives": sum(row["label"] for row in rows),
            "negatives": sum(1 - row["label"] for row in rows),
            **({"name": name} if name else {}),
        },
        "protocol": {
            "classifier_threshold": settings.threshold,
            "mask_threshold": settings.mask_threshold,
            "beta_squared": metrics.BETA_SQUARED,
            "max_f_beta_sweep_steps": metrics.DEFAULT_SWEEP_STEPS,
            "images": "stored (native) size; models see them decoded and tiled (with a global "
            "letterbox view) as the detect job does; masks are stitched, refined and resized "
            "to the stored size",
            "tiles": dataclasses.asdict(settings.tiles),
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
            for role, (model, info) in models.loaded.items()
        },
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(time.monotonic() - start, 1),
    }


def evaluate_cross_recipe(
    data_dir: str, cross_dir: str, out_dir: str,
    settings: EvaluationSettings = EvaluationSettings(), *, split: str = "test",
    calibration_split: str = "val", calibration_data: str | None = None, make_plots: bool = True,
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
    if settings.run_baselines:
        calibration = fit_baseline_thresholds(
            calibration_data, calibration_split, settings.log, checked_as="calibration data"
        )
    os.makedirs(out_dir, exist_ok=True)
    reports = {}
    for name, path in ((OWN_DATA, data_dir), (CROSS_RECIPE_DATA, cross_dir)):
        settings.log(f"--- {name}: the {split} split of {path}")
        reports[name] = evaluate_dataset(
            path, os.path.join(out_dir, name), settings, split=split, calibration=calibration,
            name=name, make_plots=make_plots,
        )
    combined = {
        "datasets": reports,
        "folders": {name: name for name in reports},
        "baseline_threshold_calibration": {"data": calibration_data, "split": calibration_split}
        if settings.run_baselines
        else None,
    }
    write_metrics_json(os.path.join(out_dir, METRICS_FILE), combined)
    settings.log("\n".join(headline(report) for report in reports.values()))
    return combined
