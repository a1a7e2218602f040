"""Evaluation job: trained models and classic baselines on held-out data, side by side.

Two kinds of input:

* a data set made by ``sbdn make-dataset`` (its ``test`` split by default): every image is
  decoded from its stored bytes, reduced and letterboxed exactly as the detect job does
  (:func:`model_view`), classified, segmented, and its mask mapped back onto the stored
  image; metrics go to ``metrics.json``, one row per image to ``predictions.csv``, figures
  to PNG files. Every classic baseline of :mod:`~sbdn_pipeline.training.baselines` runs in
  the same pass: image-level ones get their threshold from the validation split, maps are
  scored with the same mask metrics as the identifier. With a cross-recipe data set
  (:func:`~sbdn_pipeline.training.dataset_evaluation.evaluate_cross_recipe`) the same models
  and thresholds are measured on both.
* a folder (or glob, or manifest) of ordinary images: per-file scores go to ``scores.csv``
  and ``scores.json``. If paths contain a folder named ``sharp`` or ``blurry``/``blurred``,
  those are taken as labels and classifier metrics are added; truth masks named
  ``<image stem>.png`` in a masks folder add mask metrics for those images.

This module is the entry point (:func:`evaluate`) and runs the models as the detect job does;
the rest is in ``dataset_evaluation`` and ``folder_evaluation`` (the two loops),
``scorers`` (the metrics, batch by batch), ``evaluation_inputs`` (reading data sets, folder
labels and masks, fitting baseline thresholds) and ``evaluation_outputs`` (JSON, CSV, the
headline); their public names are importable from here too. Metric definitions are in
:mod:`sbdn_pipeline.training.metrics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sbdn_pipeline.geometry import resize_mask
from sbdn_pipeline.options import (
    DEFAULT_BLUR_THRESHOLD,
    DEFAULT_CLASSIFIER_TILES,
    DEFAULT_IDENTIFIER_TILES,
    DEFAULT_MASK_THRESHOLD,
    DEFAULT_TILE_POOLING,
)
from sbdn_pipeline.training.defaults import DEFAULT_EVAL_BATCH_SIZE, DEFAULT_EVAL_SPLIT
# Re-exported (see __all__): the evaluation job's names, importable from here as before it
# was split into modules.
from sbdn_pipeline.training.evaluation_inputs import (
    BLURRY_FOLDER_NAMES, SHARP_FOLDER_NAMES, calibrate_baselines, check_dataset_split,
    fit_baseline_thresholds, is_dataset, iterate_records, label_from_path, match_masks, read_mask,
)
from sbdn_pipeline.training.evaluation_outputs import (
    CROSS_RECIPE_DATA, METRICS_FILE, MODEL_CLASSIFIER, MODEL_IDENTIFIER, OWN_DATA,
    PREDICTIONS_FILE, SCORES_CSV, SCORES_JSON, headline, json_ready, write_csv, write_metrics_json,
)
from sbdn_pipeline.training.scorers import END_TO_END_BASELINES, baseline_catalogue, baseline_key

__all__ = [
    "BLURRY_FOLDER_NAMES", "CROSS_RECIPE_DATA", "END_TO_END_BASELINES", "METRICS_FILE",
    "MODEL_CLASSIFIER", "MODEL_IDENTIFIER", "OWN_DATA", "PREDICTIONS_FILE", "SCORES_CSV",
    "SCORES_JSON", "SHARP_FOLDER_NAMES", "BatchPredictions", "EvaluationSettings",
    "LoadedModels", "TileSettings", "baseline_catalogue", "baseline_key",
    "calibrate_baselines", "check_dataset_split", "evaluate", "fit_baseline_thresholds",
    "headline", "is_dataset", "iterate_records", "json_ready", "label_from_path",
    "load_model", "load_models", "match_masks", "model_view", "predict_classifier",
    "predict_masks", "read_mask", "write_csv", "write_metrics_json",
]


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


# --- a batch through the models ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BatchPredictions:
    """What the models said about a batch of images; None for a model not evaluated."""

    probabilities: np.ndarray | None = None  # P(blurry) under the chosen tile pooling
    pooled: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # every pooling's P
    masks: list[np.ndarray] | None = None  # at each image's stored size

    def pooled_columns(self, index: int) -> dict[str, float]:
        """Every tile pooling's P of one image, as CSV columns (to choose detect's default)."""
        return {key: float(values[index]) for key, values in self.pooled.items()}


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """What a data set and a folder evaluation share; :func:`evaluate` documents each."""

    classifier: str | None = None
    identifier: str | None = None
    run_baselines: bool = True
    threshold: float = DEFAULT_BLUR_THRESHOLD
    mask_threshold: float = DEFAULT_MASK_THRESHOLD
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE
    max_examples: int | None = None
    tiles: TileSettings = TileSettings()
    log: Callable[[str], None] = print


class LoadedModels:
    """The models of one evaluation, loaded once, run on batches as the detect job runs them.

    Raises:
        ValueError: when there is nothing to evaluate (no model and no baselines).
    """

    def __init__(self, settings: EvaluationSettings) -> None:
        self.loaded, self._working_long_side = load_models(
            settings.classifier, settings.identifier, settings.run_baselines
        )
        self.tiles = settings.tiles

    def __contains__(self, role: str) -> bool:
        return role in self.loaded

    def predict(
        self, encoded: Sequence[bytes], shapes: Sequence[tuple[int, int]]
    ) -> BatchPredictions:
        """Classify and segment encoded images; masks come at the given (height, width)."""
        if not encoded or not self.loaded:
            return BatchPredictions()
        views = [model_view(data, self._working_long_side) for data in encoded]
        probabilities, pooled, masks = None, {}, None
        if MODEL_CLASSIFIER in self.loaded:
            model, info = self.loaded[MODEL_CLASSIFIER]
            probabilities = predict_classifier(model, info.input_size, views, pooled, self.tiles)
        if MODEL_IDENTIFIER in self.loaded:
            model, info = self.loaded[MODEL_IDENTIFIER]
            masks = predict_masks(model, info.input_size, views, list(shapes), self.tiles)
        return BatchPredictions(probabilities, pooled, masks)


# --- entry point ------------------------------------------------------------------------------


def evaluate(
    data: str, out_dir: str, classifier: str | None = None, identifier: str | None = None,
    baselines: bool = True, threshold: float = DEFAULT_BLUR_THRESHOLD, *,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD, split: str = DEFAULT_EVAL_SPLIT,
    calibration_split: str = "val", calibration_data: str | None = None,
    cross_recipe: str | None = None, masks: str | None = None,
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE, max_examples: int | None = None,
    make_plots: bool = True, tiles: TileSettings = TileSettings(),
    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate models (and baselines) on a data set or a folder of images.

    Args:
        data: a data set folder (``sbdn make-dataset``) or a folder / glob / manifest of images.
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
    # Imported here, as both import this module (for the models).
    from sbdn_pipeline.training import dataset_evaluation, folder_evaluation

    settings = EvaluationSettings(
        classifier=classifier, identifier=identifier, run_baselines=baselines,
        threshold=threshold, mask_threshold=mask_threshold, batch_size=batch_size,
        max_examples=max_examples, tiles=tiles, log=log,
    )
    fit_on = dict(calibration_split=calibration_split, calibration_data=calibration_data)
    if not is_dataset(data):
        if cross_recipe:
            raise ValueError(f"--cross-recipe needs --data to be a data set; {data} is not one")
        return folder_evaluation.evaluate_folder(data, out_dir, settings, masks_dir=masks, **fit_on)
    if masks:
        raise ValueError("--masks is for a folder of images; a data set has its own masks")
    if cross_recipe:
        return dataset_evaluation.evaluate_cross_recipe(
            data, cross_recipe, out_dir, settings, split=split, make_plots=make_plots, **fit_on)
    return dataset_evaluation.evaluate_dataset(
        data, out_dir, settings, split=split, make_plots=make_plots, **fit_on)
