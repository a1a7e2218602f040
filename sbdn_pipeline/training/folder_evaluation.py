"""Evaluation on a folder (or glob, or manifest) of ordinary images.

Each file is read and decoded; its baselines are scored at once, so that a batch holds the
files' bytes rather than their full-size pixels. The batch then goes through the models as
the detect job runs them (:class:`~sbdn_pipeline.training.evaluate.LoadedModels`) and into
:class:`FolderScorers`. Labels come from folder names (``sharp``, ``blurry``/``blurred``),
truth masks from a masks folder; what is written is described in
:mod:`sbdn_pipeline.training.evaluate`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from sbdn_pipeline import cascade
from sbdn_pipeline.training.evaluate import BatchPredictions, EvaluationSettings, LoadedModels
from sbdn_pipeline.training.evaluation_inputs import (
    batched,
    fit_baseline_thresholds,
    label_from_path,
    match_masks,
    read_mask,
)
from sbdn_pipeline.training.evaluation_outputs import (
    METRICS_FILE,
    MODEL_CLASSIFIER,
    MODEL_IDENTIFIER,
    SCORES_CSV,
    SCORES_JSON,
    headline,
    write_csv,
    write_metrics_json,
)
from sbdn_pipeline.training.scorers import (
    BaselineScorer,
    Calibration,
    InSampleClassifierScorer,
    MaskScorer,
    baseline_catalogue,
    prefixed,
)

LABEL_GROUPS = {0: "sharp", 1: "blurry", None: "unlabelled"}


@dataclasses.dataclass(frozen=True)
class FolderImage:
    """One file of a batch: its CSV row, its bytes (None: not an image) and its truth mask."""

    row: dict[str, Any]
    encoded: bytes | None = None
    truth: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the decoded image."""
        return self.row["height"], self.row["width"]

    @property
    def groups(self) -> dict[str, str]:
        """Mask-metric groups of the image: its folder label."""
        return {"label": LABEL_GROUPS[self.row["label"]]}


def read_image(uri: str, mask_path: str | None) -> tuple[FolderImage, np.ndarray | None]:
    """Read and decode one file, and its truth mask when ``mask_path`` is given.

    Returns:
        (the image, its pixels); pixels None when the file is not a usable image, the
        reason then in the row's ``error``.
    """
    from apache_beam.io.filesystems import FileSystems

    from sbdn_pipeline import images

    row: dict[str, Any] = {"uri": uri, "label": label_from_path(uri)}
    try:
        with FileSystems.open(uri, compression_type="uncompressed") as handle:
            data = handle.read()
        native = images.decode_image(data).pixels
    except images.ImageError as exc:
        row["error"] = f"{exc.error_type}: {exc.message}"
        return FolderImage(row), None
    row.update({"height": native.shape[0], "width": native.shape[1]})
    truth = None
    if mask_path:
        row["mask"] = mask_path
        truth = read_mask(mask_path, *native.shape[:2])
    return FolderImage(row, data, truth), native


class FolderScorers:
    """Every scorer of a folder evaluation; the ``add`` methods also fill the CSV rows.

    ``calibration`` gives the image-level baselines a decision threshold; without it they
    get ROC AUC and in-sample accuracy only.
    """

    def __init__(
        self, models: LoadedModels, settings: EvaluationSettings, calibration: Calibration | None
    ) -> None:
        self.threshold, self.mask_threshold = settings.threshold, settings.mask_threshold
        self.classifier: InSampleClassifierScorer | None = None
        if MODEL_CLASSIFIER in models:
            self.classifier = InSampleClassifierScorer(settings.threshold)
        # Always there: an identifier that met no truth mask is left out of the report.
        self.identifier = MaskScorer(settings.mask_threshold)
        self.baselines: BaselineScorer | None = None
        if settings.run_baselines:
            self.baselines = BaselineScorer(
                calibration, settings.mask_threshold, InSampleClassifierScorer.calibrated
            )
        self.masked_uris: set[str] = set()

    def add_pixels(self, image: FolderImage, native: np.ndarray) -> None:
        """Score the baselines on one decoded image (right after decoding: see module)."""
        if image.truth is not None:
            self.masked_uris.add(image.row["uri"])
        if self.baselines:
            (columns,) = self.baselines.add(
                [native], [image.row["label"]], [image.truth], [image.groups]
            )
            image.row.update(columns)

    def add(self, images: list[FolderImage], predicted: BatchPredictions) -> None:
        """Score what the models said about a batch of decoded images."""
        rows = [image.row for image in images]
        if predicted.probabilities is not None:
            self.classifier.add([row["label"] for row in rows], predicted.probabilities)
            for index, (row, probability) in enumerate(zip(rows, predicted.probabilities)):
                row["blur_probability"] = float(probability)
                row["blurry"] = cascade.is_blurry(probability, self.threshold)
                row.update(predicted.pooled_columns(index))
        if predicted.masks is not None:
            truths = [image.truth for image in images]
            scores = self.identifier.add(predicted.masks, truths, [im.groups for im in images])
            for row, mask, image_scores in zip(rows, predicted.masks, scores):
                row["blur_area_fraction"] = float(np.mean(mask >= self.mask_threshold))
                row.update(prefixed(MODEL_IDENTIFIER, image_scores or {}))

    def report(self, masks_dir: str | None) -> dict[str, Any]:
        """Image-level reports (with labels), the baseline catalogue, then mask metrics."""
        report = self._image_level_reports()
        if self.baselines:
            report["baselines"] = baseline_catalogue()
        if masks_dir:
            report["masks"] = {
                "dir": masks_dir,
                "images_with_masks": len(self.masked_uris),
                "metrics_on": "every decoded image that has a mask (blurred or not)",
            }
            if self.identifier.count:
                report[MODEL_IDENTIFIER] = self.identifier.report()
            if self.baselines:
                report.update(self.baselines.map_reports())
        return report

    def _image_level_reports(self) -> dict[str, Any]:
        # Labelled folders only, with both labels: else there is no ROC AUC to report.
        scorers: dict[str, InSampleClassifierScorer] = {}
        if self.classifier:
            scorers[MODEL_CLASSIFIER] = self.classifier
        if self.baselines:
            scorers.update(self.baselines.image_scorers)
        if not scorers or not next(iter(scorers.values())).has_both_classes:
            return {}
        return {
            "labels": "from folder names (sharp / blurry or blurred)",
            **{name: scorer.report() for name, scorer in scorers.items()},
        }


def evaluate_folder(
    input_spec: str,
    out_dir: str,
    settings: EvaluationSettings = EvaluationSettings(),
    *,
    masks_dir: str | None = None,
    calibration_split: str = "val",
    calibration_data: str | None = None,
) -> dict[str, Any]:
    """Score every image of a folder, glob or manifest.

    ``masks_dir`` holds optional truth masks (``<image stem>.png``, white = blurred) for
    mask metrics; thresholds fitted on ``calibration_split`` of the data set
    ``calibration_data`` give the image-level baselines a decision threshold, without it
    they get ROC AUC and in-sample accuracy only.
    """
    from sbdn_pipeline import inputs

    calibration = None
    if settings.run_baselines and calibration_data:
        calibration = fit_baseline_thresholds(
            calibration_data, calibration_split, settings.log, checked_as="--calibration-data"
        )
    os.makedirs(out_dir, exist_ok=True)
    inputs.check_input(input_spec, exclude=out_dir)
    uris = list(inputs.expand_input(input_spec, exclude=out_dir))
    mask_files = match_masks(masks_dir, uris) if masks_dir else {}
    models = LoadedModels(settings)
    uris = uris[: settings.max_examples]
    scorers = FolderScorers(models, settings, calibration)
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    for batch in batched(uris, settings.batch_size):
        decoded = []
        for uri in batch:
            image, native = read_image(uri, mask_files.get(uri))
            rows.append(image.row)
            if native is not None:
                scorers.add_pixels(image, native)
                decoded.append(image)
        encoded = [image.encoded for image in decoded]
        scorers.add(decoded, models.predict(encoded, [image.shape for image in decoded]))
        rate = len(rows) / max(time.monotonic() - start, 1e-9)
        settings.log(f"scored {len(rows)}/{len(uris)} files ({rate:.1f} img/s)")
    report = {**_report_head(input_spec, rows, models, settings), **scorers.report(masks_dir)}
    write_csv(os.path.join(out_dir, SCORES_CSV), rows)
    write_metrics_json(os.path.join(out_dir, SCORES_JSON), {"report": report, "files": rows})
    write_metrics_json(os.path.join(out_dir, METRICS_FILE), report)
    settings.log(headline(report))
    settings.log(f"wrote {os.path.join(out_dir, SCORES_CSV)}")
    return report


def _report_head(
    input_spec: str, rows: list[dict[str, Any]], models: LoadedModels, settings: EvaluationSettings
) -> dict[str, Any]:
    """What was evaluated, and at which thresholds: the report's first parts."""
    return {
        "data": {
            "path": input_spec,
            "files": len(rows),
            "errors": sum("error" in row for row in rows),
        },
        "models": {
            role: {"path": info.path, "sha256": info.sha256, "input_size": info.input_size}
            for role, (_, info) in models.loaded.items()
        },
        "classifier_threshold": settings.threshold,
        "mask_threshold": settings.mask_threshold,
    }
