"""The detect job's model stages: classify every image, segment the blurry ones.

Both are one RunModelStage (per-image inputs -> RunInference -> per-image results) with
every step's failures turned into that image's error row. The per-image steps themselves are
the cascade's (:mod:`sbdn_pipeline.cascade`), shared with the evaluation and the benchmark.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RunInference

from sbdn_pipeline import atomic, cascade, inference, masks, schemas
from sbdn_pipeline.inference import ModelInfo, TiledKerasModelHandler, ViewSpec
from sbdn_pipeline.options import DetectOptions
from beam_jobs.detect_records import (COUNTER_OVERLAYS_FAILED, COUNTER_OVERLAYS_WRITTEN,
                                       COUNTER_SEGMENTED, METRICS_NAMESPACE, _ERRORS_TAG,
                                       ImageRecord, _timestamp, _utc_now, error_row)

_LOGGER = logging.getLogger(__name__)


def _record_of(element: Any) -> ImageRecord:
    """The ImageRecord inside an element of the model stages (record, (record, x), ...)."""
    for _ in range(4):  # elements nest the record at most three tuples deep
        if isinstance(element, ImageRecord):
            return element
        element = element[0]
    raise TypeError(f"no ImageRecord in {type(element).__name__}")


def _image_error(record: ImageRecord, stage: str, error_type: str, message: str,
                 run_id: str) -> dict[str, Any]:
    record.source = None  # the image ends here: free its pixels
    return error_row(record.uri, stage, error_type, message, run_id, sha256=record.sha256,
                     size_bytes=record.size_bytes, modified_at_us=record.modified_at_us)


class _PerImageFn(beam.DoFn):
    """Apply a function to each image's element; an exception becomes that image's errors row.

    Tiling, pooling, stitching and refinement run per image, so a failure is the image's own
    (tagged ``errors``) and never fails the job or its batch-mates.
    """

    def __init__(self, fn: Any, stage: str, error_type: str, run_id: str):
        self._fn = fn
        self._stage = stage
        self._error_type = error_type
        self._run_id = run_id

    def process(self, element: Any) -> Iterator[Any]:
        try:
            result = self._fn(element)
        except Exception as exc:  # noqa: BLE001 - one image's failure is its own error row
            # Errors that know their kind (e.g. a model output outside [0, 1]) name it.
            error_type = getattr(exc, "error_type", None) or self._error_type
            yield beam.pvalue.TaggedOutput(_ERRORS_TAG, _image_error(
                _record_of(element), self._stage, error_type,
                f"{type(exc).__name__}: {exc}", self._run_id))
            return
        yield result


def _per_image(label: str, fn: Any, stage: str, error_type: str, run_id: str) -> Any:
    return label >> beam.ParDo(_PerImageFn(fn, stage, error_type, run_id)).with_outputs(
        _ERRORS_TAG, main="ok")


def _failed_batch_to_errors(failure: Any, stage: str, run_id: str) -> Iterator[dict[str, Any]]:
    """A batch whose inference raised: every image in it gets an errors row."""
    batch, exception = failure
    message = f"{type(exception).__name__}: {exception}"
    for element, _ in batch:
        yield _image_error(_record_of(element), stage, "inference_error", message, run_id)


class RunModelStage(beam.PTransform):
    """Per-image model inputs -> one model -> per-image results; failures become error rows.

    The one shape of both model stages: ``prepare`` turns an element into ((element, ...),
    input stack) — tiles and views of one image travel together — RunInference batches the
    stacks by their number of tiles, and ``finish`` turns ((element, ...), outputs) into the
    stage's result. Each of the three steps is exception-handled on its own: a failure in
    ``prepare`` or ``finish`` is that image's row (``tiling_error``, ``postprocess_error``, or
    the error's own ``error_type``); a failed model call gives every image of its batch a row
    (``inference_error``). Nothing takes the job down.

    Returns:
        {"ok": results, "errors": error rows}.
    """

    def __init__(self, model: ModelInfo, batch_size: int, intra_op_threads: int | None,
                 stage: str, run_id: str, prepare: tuple[str, Any], finish: tuple[str, Any]):
        super().__init__()
        self._handler = inference.ImageKeyedModelHandler(
            TiledKerasModelHandler(model, batch_size=batch_size,
                                   intra_op_threads=intra_op_threads))
        self._stage = stage
        self._run_id = run_id
        self._prepare = prepare
        self._finish = finish

    def expand(self, elements: beam.PCollection) -> dict[str, beam.PCollection]:
        stage, run_id = self._stage, self._run_id
        (prepare_label, prepare), (finish_label, finish) = self._prepare, self._finish
        inputs_ = elements | _per_image(prepare_label, prepare, stage, "tiling_error", run_id)
        predicted, failed = (
            inputs_.ok | "Predict" >> RunInference(self._handler).with_exception_handling())
        finished = predicted | _per_image(finish_label, finish, stage, "postprocess_error",
                                          run_id)
        errors = (
            inputs_[_ERRORS_TAG],
            failed.failed_inferences | "FailedBatches" >> beam.FlatMap(
                _failed_batch_to_errors, stage, run_id),
            finished[_ERRORS_TAG],
        ) | "MergeErrors" >> beam.Flatten()
        return {"ok": finished.ok, "errors": errors}


class ClassifyBlur(beam.PTransform):
    """ImageRecords -> the same records with ``blur_probability`` set; errors tagged.

    Each image's tiles (and its global view, when the pooling uses it) go through the
    classifier as one element; their probabilities are pooled into P(blurry).
    """

    def __init__(self, model: ModelInfo, options: DetectOptions, run_id: str,
                 intra_op_threads: int | None = None):
        super().__init__()
        self._model = model
        self._steps = classifier_steps(model, options)
        self._pooling = options.tile_pooling
        self._batch_size = options.batch_size
        self._run_id = run_id
        self._threads = intra_op_threads

    def model_input(self, record: ImageRecord) -> tuple[tuple[ImageRecord, Any], np.ndarray]:
        """(record, plan), then its batch: tiles first, global view last (when used)."""
        plan, batch = self._steps.model_input(record.source)
        return (record, plan), batch

    def attach_probability(self, keyed: tuple[tuple[ImageRecord, Any], Any]) -> ImageRecord:
        (record, plan), predictions = keyed
        record.blur_probability = self._steps.result(predictions, plan).pooled(self._pooling)
        return record

    def expand(self, records: beam.PCollection) -> dict[str, beam.PCollection]:
        out = records | "RunClassifier" >> RunModelStage(
            self._model, self._batch_size, self._threads, schemas.STAGE_CLASSIFY, self._run_id,
            ("Tiles", self.model_input), ("PoolTiles", self.attach_probability))
        return {"classified": out["ok"], "errors": out["errors"]}


def classifier_steps(model: ModelInfo, options: DetectOptions) -> cascade.ClassifierSteps:
    """The cascade's classifier steps under these options (their one pooling method)."""
    return cascade.ClassifierSteps(model.input_size, options.classifier_tiles,
                                   (options.tile_pooling,))


def identifier_steps(model: ModelInfo, options: DetectOptions) -> cascade.IdentifierSteps:
    """The cascade's identifier steps under these options."""
    return cascade.IdentifierSteps(model.input_size, options.identifier_tiles,
                                   model.mask_stride)


def classifier_view(model: ModelInfo, options: DetectOptions) -> ViewSpec:
    """How the classifier looks at images under these options (decoding follows it)."""
    return classifier_steps(model, options).view


def identifier_view(model: ModelInfo, options: DetectOptions) -> ViewSpec:
    """How the identifier looks at images under these options."""
    return identifier_steps(model, options).view


def sharp_result_row(record: ImageRecord, options: DetectOptions, classifier_id: str,
                     run_id: str) -> dict[str, Any]:
    """Results row of an image the classifier called sharp (no mask, no regions)."""
    return _result_row(record, options, classifier_id, run_id, is_blurry=False)


def _result_row(record: ImageRecord, options: DetectOptions, classifier_id: str, run_id: str,
                *, is_blurry: bool, identifier_id: str | None = None,
                mask: np.ndarray | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        schemas.IMAGE_URI: record.uri,
        schemas.IMAGE_SHA256: record.sha256,
        schemas.IMAGE_SIZE_BYTES: record.size_bytes,
        schemas.IMAGE_MODIFIED_AT: _timestamp(record.modified_at_us),
        schemas.WIDTH: record.width,
        schemas.HEIGHT: record.height,
        schemas.FORMAT: record.format,
        schemas.BLUR_PROBABILITY: record.blur_probability,
        schemas.IS_BLURRY: is_blurry,
        schemas.BLUR_THRESHOLD: options.blur_threshold,
        schemas.MASK_THRESHOLD: options.mask_threshold,
        schemas.CLASSIFIER_MODEL: classifier_id,
        schemas.IDENTIFIER_MODEL: identifier_id,
        schemas.MASK_PNG: None,
        schemas.MASK_WIDTH: None,
        schemas.MASK_HEIGHT: None,
        schemas.BLUR_AREA_FRACTION: None,
        schemas.BLUR_REGION_COUNT: None,
        schemas.BLUR_REGIONS: None,
        schemas.OVERLAY_URI: None,
        schemas.RUN_ID: run_id,
        schemas.PROCESSED_AT: _utc_now(),
    }
    if mask is not None:
        stats = masks.mask_statistics(
            mask,
            threshold=options.mask_threshold,
            image_width=record.width,
            image_height=record.height,
            min_region_fraction=options.min_region_fraction,
        )
        stored = masks.reduce_for_storage(mask)  # statistics above use the full mask
        row.update({
            schemas.MASK_PNG: masks.encode_mask_png(stored),
            schemas.MASK_WIDTH: int(stored.shape[1]),
            schemas.MASK_HEIGHT: int(stored.shape[0]),
            schemas.BLUR_AREA_FRACTION: stats.blur_area_fraction,
            schemas.BLUR_REGION_COUNT: len(stats.regions),
            schemas.BLUR_REGIONS: [dataclasses.asdict(region) for region in stats.regions],
        })
    return row


def blurry_result_row(record: ImageRecord, mask: np.ndarray, options: DetectOptions,
                      classifier_id: str, identifier_id: str, run_id: str) -> dict[str, Any]:
    """Results row of a blurry image with its mask (covering the whole image) and statistics."""
    return _result_row(record, options, classifier_id, run_id, is_blurry=True,
                       identifier_id=identifier_id, mask=mask)


def write_overlay(record: ImageRecord, pixels: np.ndarray, mask: np.ndarray,
                  row: dict[str, Any], folder: str, mask_threshold: float) -> str:
    """Write the overlay JPEG of a blurry image; returns its URI.

    The name comes from the image's content hash only (never from its path), and the file is
    written under a temporary name and renamed, so a reader never sees half an overlay.
    """
    from sbdn_pipeline.report import overlays

    pixels = overlays.render_overlay(pixels, mask, row["blur_regions"] or [],
                                     mask_threshold, image_size=(record.width, record.height))
    target = FileSystems.join(folder, overlays.overlay_name(record.sha256))
    atomic.write_bytes(target, overlays.encode_overlay_jpeg(pixels), mime_type="image/jpeg")
    return target


class SegmentBlur(beam.PTransform):
    """Blurry ImageRecords -> result rows with mask and statistics; errors tagged.

    Each image's native-scale tiles go through the identifier as one element; the tile masks
    (1/4 of the analysed resolution) are stitched, then refined by the image's own edges
    (guided filter) back to the analysed resolution, from which area and regions are computed.
    """

    def __init__(self, model: ModelInfo, options: DetectOptions, classifier_id: str,
                 run_id: str, intra_op_threads: int | None = None):
        super().__init__()
        self._model = model
        self._steps = identifier_steps(model, options)
        self._options = options
        self._classifier_id = classifier_id
        self._run_id = run_id
        self._threads = intra_op_threads
        self._segmented = Metrics.counter(METRICS_NAMESPACE, COUNTER_SEGMENTED)
        self._overlays_written = Metrics.counter(METRICS_NAMESPACE, COUNTER_OVERLAYS_WRITTEN)
        self._overlays_failed = Metrics.counter(METRICS_NAMESPACE, COUNTER_OVERLAYS_FAILED)

    def model_input(self, record: ImageRecord) -> tuple[tuple[ImageRecord, Any], np.ndarray]:
        """((record, layout), batch); the layout holds the analysed pixels for the refinement."""
        layout, batch = self._steps.model_input(record.source)
        record.source = None  # the image's last model: only the analysed copy is needed now
        return (record, layout), batch

    def to_row(self, keyed: tuple[tuple[ImageRecord, Any], Any]) -> dict[str, Any]:
        (record, layout), predictions = keyed
        self._segmented.inc()
        mask, pixels = self._steps.result(predictions, layout)
        options = self._options
        row = blurry_result_row(record, mask, options, self._classifier_id,
                                self._model.model_id, self._run_id)
        if options.overlays_dir:
            row["overlay_uri"] = self._overlay(record, pixels, mask, row)
        return row

    def _overlay(self, record: ImageRecord, pixels: np.ndarray, mask: np.ndarray,
                 row: dict[str, Any]) -> str | None:
        """The overlay's URI, or None when it could not be written (counted, the row stays).

        An overlay is an extra for people looking at results; a full or read-only overlay
        folder must not turn a classified image into an error.
        """
        try:
            uri = write_overlay(record, pixels, mask, row, self._options.overlays_dir,
                                self._options.mask_threshold)
        except Exception as exc:  # noqa: BLE001 - any file system error
            self._overlays_failed.inc()
            _LOGGER.warning("overlay of %s not written: %s: %s", record.uri,
                            type(exc).__name__, exc)
            return None
        self._overlays_written.inc()
        return uri

    def expand(self, records: beam.PCollection) -> dict[str, beam.PCollection]:
        out = records | "RunIdentifier" >> RunModelStage(
            self._model, self._options.batch_size, self._threads, schemas.STAGE_SEGMENT,
            self._run_id, ("Tiles", self.model_input), ("MaskStatistics", self.to_row))
        return {"rows": out["ok"], "errors": out["errors"]}
