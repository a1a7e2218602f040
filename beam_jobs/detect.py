"""The detect job: classify every image, segment the blurry ones, write Parquet.

    MatchInputs -> DecodeImages -> ClassifyBlur -> (sharp | blurry -> SegmentBlur)
                        |                                  -> WriteResults
                        +-- errors (any stage) ------------> WriteErrors

Only URIs cross the one shuffle (after matching, to spread work over workers); reading,
decoding, classification and segmentation are fused, so pixel arrays are never serialised.
Every matched URI ends in exactly one of the two tables: failures at any stage become an
errors row, never an exception that fails the job or takes batch-mates down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from sbdn_pipeline import (images, inference, inputs, masks, output_folder, progress, schemas,
                           tiling)
from sbdn_pipeline.inference import ImageSource, ModelInfo, TiledKerasModelHandler, ViewSpec
from sbdn_pipeline.options import DetectOptions, make_runner

_LOGGER = logging.getLogger(__name__)
METRICS_NAMESPACE = "sbdn"
COUNTER_MATCHED = "images_matched"
COUNTER_SHARP = "images_sharp"
COUNTER_BLURRY = "images_blurry"
COUNTER_ERRORS = "images_errors"
COUNTER_SEGMENTED = "identifier_images"
COUNTER_SKIPPED = "images_skipped"
COUNTER_OVERLAYS_WRITTEN = "overlays_written"
COUNTER_OVERLAYS_FAILED = "overlays_failed"
_ERRORS_TAG = "errors"


@dataclasses.dataclass
class ImageRecord:
    """One decoded image travelling through the fused model stages."""

    uri: str
    sha256: str
    size_bytes: int
    modified_at_us: int | None
    format: str
    width: int
    height: int
    # The bytes and their decodes; each model takes the decode its own options ask for.
    # Dropped once the image's last model has run.
    source: ImageSource | None
    blur_probability: float | None = None


def new_run_id(now: datetime.datetime | None = None) -> str:
    """Sortable, unique run id: UTC time plus a random suffix, e.g. 20261125T174002Z-3f2a9c."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _timestamp(microseconds: int | None) -> datetime.datetime | None:
    """The timestamp of a row; None (NULL) when no datetime can hold it (year > 9999 or < 1).

    Never raises: one file's odd mtime must not fail the step that writes every row.
    """
    microseconds = inputs.representable_us(microseconds)
    if microseconds is None:
        return None
    return _EPOCH + datetime.timedelta(microseconds=microseconds)


def microseconds_since_epoch(value: Any) -> int | None:
    """Inverse of the timestamps we write (datetime or pandas Timestamp) -> int microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return (value - _EPOCH) // datetime.timedelta(microseconds=1)


def error_row(
    uri: str,
    stage: str,
    error_type: str,
    message: str,
    run_id: str,
    *,
    sha256: str | None = None,
    size_bytes: int | None = None,
    modified_at_us: int | None = None,
) -> dict[str, Any]:
    """A row of the errors table (schemas.ERRORS_SCHEMA)."""
    return {
        schemas.IMAGE_URI: uri,
        schemas.STAGE: stage,
        schemas.ERROR_TYPE: error_type,
        schemas.ERROR_MESSAGE: message[:2000],
        schemas.IMAGE_SHA256: sha256,
        schemas.IMAGE_SIZE_BYTES: size_bytes,
        schemas.IMAGE_MODIFIED_AT: _timestamp(modified_at_us),
        schemas.RUN_ID: run_id,
        schemas.PROCESSED_AT: _utc_now(),
    }


def read_image_bytes(uri: str, max_file_bytes: int) -> bytes:
    """All bytes of one file, refusing files larger than max_file_bytes.

    Raises:
        images.ImageError: unreadable, missing or oversized file.
    """
    try:
        if not inputs.is_remote(uri):
            if not os.path.exists(uri):
                kind = "broken symlink" if os.path.islink(uri) else "file does not exist"
                raise images.ImageError("unreadable", f"{kind}: {uri}")
            if not stat.S_ISREG(os.stat(uri).st_mode):
                # FIFOs and devices could block or never end; folders are not images.
                raise images.ImageError("unreadable", f"not a regular file: {uri}")
        with FileSystems.open(uri, compression_type="uncompressed") as handle:
            data = handle.read(max_file_bytes + 1)
    except images.ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any file system error is a per-image error
        raise images.ImageError("unreadable", f"cannot read file: {exc}") from exc
    if len(data) > max_file_bytes:
        raise images.ImageError(
            "file_too_large", f"file is larger than the limit of {max_file_bytes:,} bytes"
        )
    return data


class _DecodeImagesFn(beam.DoFn):
    def __init__(self, options: DetectOptions, run_id: str, classifier_view: ViewSpec):
        self._options = options
        self._run_id = run_id
        self._classifier_view = classifier_view
        self._decoded = Metrics.counter(METRICS_NAMESPACE, "images_decoded")

    def process(self, input_file: inputs.InputFile) -> Iterator[Any]:
        options = self._options
        uri, modified = input_file.uri, input_file.modified_at_us
        sha256 = size = None
        try:
            data = read_image_bytes(uri, options.max_file_bytes)
            sha256, size = hashlib.sha256(data).hexdigest(), len(data)
            source = ImageSource(data, max_pixels=options.max_pixels,
                                 min_side=options.min_side,
                                 max_aspect_ratio=options.max_aspect_ratio,
                                 max_jpeg_scan_pixels=options.max_jpeg_scan_pixels)
            # Decoded here (not lazily) so broken files are decode errors, at the size the
            # classifier asks for: a JPEG needing only half its pixels is decoded at half size.
            decoded = source.decode_for(self._classifier_view)
        except images.ImageError as exc:
            stage = schemas.STAGE_READ if sha256 is None else schemas.STAGE_DECODE
            yield beam.pvalue.TaggedOutput(
                _ERRORS_TAG,
                error_row(uri, stage, exc.error_type, exc.message, self._run_id,
                          sha256=sha256, size_bytes=size or input_file.size_bytes,
                          modified_at_us=modified),
            )
            return
        except Exception as exc:  # noqa: BLE001 - never let one file fail the job
            yield beam.pvalue.TaggedOutput(
                _ERRORS_TAG,
                error_row(uri, schemas.STAGE_DECODE, "internal_error",
                          f"{type(exc).__name__}: {exc}", self._run_id,
                          sha256=sha256, size_bytes=size or input_file.size_bytes,
                          modified_at_us=modified),
            )
            return
        self._decoded.inc()
        yield ImageRecord(
            uri=uri,
            sha256=sha256,
            size_bytes=size,
            modified_at_us=modified,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            source=source,
        )


class _ListInputsFn(beam.DoFn):
    """INPUT -> its URIs; folders that cannot be listed (or a listing that fails) -> errors rows.

    Each such row counts as one matched input (it stands for the folder's unknown files), so
    matched == skipped + sharp + blurry + errors still holds.
    """

    def __init__(self, exclude: str | None, run_id: str):
        self._exclude = exclude
        self._run_id = run_id
        self._matched = Metrics.counter(METRICS_NAMESPACE, COUNTER_MATCHED)

    def _error(self, uri: str, error_type: str, message: str) -> beam.pvalue.TaggedOutput:
        self._matched.inc()
        return beam.pvalue.TaggedOutput(_ERRORS_TAG, error_row(
            uri, schemas.STAGE_LIST, error_type, message, self._run_id))

    def process(self, input_spec: str) -> Iterator[Any]:
        try:
            for item in inputs.list_input(input_spec, self._exclude):
                if isinstance(item, inputs.ListingError):
                    yield self._error(item.uri, item.error_type, item.message)
                else:
                    yield item
        except Exception as exc:  # noqa: BLE001 - e.g. an unreadable manifest or bucket
            # The URIs listed so far go on; the rest of INPUT is this one row.
            yield self._error(input_spec, "list_error",
                              f"cannot list input: {type(exc).__name__}: {exc}")


class _StatFilesFn(beam.DoFn):
    """URI -> InputFile; a failure is the URI's errors row (stat_input itself never raises)."""

    def __init__(self, run_id: str):
        self._run_id = run_id

    def process(self, uri: str) -> Iterator[Any]:
        try:
            yield inputs.stat_input(uri)
        except Exception as exc:  # noqa: BLE001 - one file's metadata must not fail the job
            yield beam.pvalue.TaggedOutput(_ERRORS_TAG, error_row(
                uri, schemas.STAGE_LIST, "stat_error", f"{type(exc).__name__}: {exc}",
                self._run_id))


class MatchInputs(beam.PTransform):
    """INPUTs (folders, globs, manifests, files) -> distinct InputFiles, spread over workers.

    Size and modification time come from the file system's metadata (no file is read here);
    they are looked up after the shuffle so that, at scale, many workers do it in parallel.
    Returns ``{"files": InputFiles, "errors": errors rows}`` (stage "list").
    """

    def __init__(self, input_specs: str | Sequence[str], exclude: str | None = None,
                 run_id: str = ""):
        super().__init__()
        self._input_specs = [input_specs] if isinstance(input_specs, str) else list(input_specs)
        self._exclude = exclude
        self._run_id = run_id

    def expand(self, pipeline: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        matched = Metrics.counter(METRICS_NAMESPACE, COUNTER_MATCHED)

        def count(uri: str) -> str:
            matched.inc()
            return uri

        listed = (
            pipeline
            | "InputSpecs" >> beam.Create(self._input_specs)
            | "Expand" >> beam.ParDo(_ListInputsFn(self._exclude, self._run_id)).with_outputs(
                _ERRORS_TAG, main="uris")
        )
        stats = (
            listed.uris
            # A duplicated manifest line must not give one image two rows. Distinct also
            # shuffles the URIs, which spreads the work over all workers.
            | "Deduplicate" >> beam.Distinct()
            | "Count" >> beam.Map(count)
            | "StatFiles" >> beam.ParDo(_StatFilesFn(self._run_id)).with_outputs(
                _ERRORS_TAG, main="files")
        )
        errors = (listed[_ERRORS_TAG], stats[_ERRORS_TAG]) | "ListErrors" >> beam.Flatten()
        return {"files": stats.files, "errors": errors}


def previous_output_patterns(output: str, include_errors: bool) -> list[str]:
    """Globs of the Parquet files earlier runs left in OUT (only those that match something)."""
    tables = [schemas.RESULTS_DIR] + ([schemas.ERRORS_DIR] if include_errors else [])
    patterns = []
    for table in tables:
        pattern = FileSystems.join(output, table, f"{schemas.RUN_FOLDER_PREFIX}*",
                                   f"*{schemas.PARQUET_SUFFIX}")
        if FileSystems.match([pattern], limits=[1])[0].metadata_list:
            patterns.append(pattern)
    return patterns


def previous_row_key(row: dict[str, Any]) -> tuple[str, tuple[int | None, int | None]]:
    """(uri, version key) of a row an earlier run wrote; matches InputFile.version_key."""
    return row[schemas.IMAGE_URI], (row[schemas.IMAGE_SIZE_BYTES],
                                    microseconds_since_epoch(row[schemas.IMAGE_MODIFIED_AT]))


class SkipProcessed(beam.PTransform):
    """Drop inputs whose URI *and* version (size, mtime) are already in earlier output.

    An anti-join: CoGroupByKey on the URI between this run's inputs and the keys read from
    the earlier runs' Parquet files. A changed file (same URI, new size or mtime) is kept.
    Rows of ``replaced_run`` (the run this one overwrites) do not count as done: their
    images are processed again, so replacing a run never loses its rows.
    """

    def __init__(self, patterns: list[str], replaced_run: str | None = None):
        super().__init__()
        self._patterns = patterns
        self._replaced_run = replaced_run

    def expand(self, files: beam.PCollection) -> beam.PCollection:
        skipped = Metrics.counter(METRICS_NAMESPACE, COUNTER_SKIPPED)
        replaced_run = self._replaced_run
        columns = [schemas.IMAGE_URI, schemas.IMAGE_SIZE_BYTES, schemas.IMAGE_MODIFIED_AT,
                   schemas.RUN_ID]
        previous = [
            files.pipeline
            | f"ReadPrevious{index}" >> beam.io.ReadFromParquet(pattern, columns=columns)
            | f"NotReplaced{index}" >> beam.Filter(lambda row: row[schemas.RUN_ID] != replaced_run)
            | f"PreviousKeys{index}" >> beam.Map(previous_row_key)
            for index, pattern in enumerate(self._patterns)
        ]
        done = previous | "AllPrevious" >> beam.Flatten() if previous else (
            files.pipeline | "NoPrevious" >> beam.Create([]))

        def keep_new(grouped: tuple[str, dict[str, list[Any]]]) -> Iterator[inputs.InputFile]:
            _, sides = grouped
            done_versions = set(sides["done"])
            for input_file in sides["now"]:
                if input_file.version_key in done_versions:
                    skipped.inc()
                else:
                    yield input_file

        return (
            {"now": files | "KeyByUri" >> beam.Map(lambda f: (f.uri, f)), "done": done}
            | "JoinWithPrevious" >> beam.CoGroupByKey()
            | "KeepNewAndChanged" >> beam.FlatMap(keep_new)
        )


class DecodeImages(beam.PTransform):
    """URIs -> ImageRecords (main output) and error rows (tagged ``errors``)."""

    def __init__(self, options: DetectOptions, run_id: str, classifier_view: ViewSpec):
        super().__init__()
        self._fn = _DecodeImagesFn(options, run_id, classifier_view)

    def expand(self, uris: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return uris | "ReadAndDecode" >> beam.ParDo(self._fn).with_outputs(
            _ERRORS_TAG, main="images"
        )


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
        self._view = classifier_view(model, options)
        self._pooling = options.tile_pooling
        self._batch_size = options.batch_size
        self._run_id = run_id
        self._threads = intra_op_threads

    def model_input(self, record: ImageRecord) -> tuple[tuple[ImageRecord, Any], np.ndarray]:
        """(record, plan), then its batch: tiles first, global view last (when used)."""
        pixels, plan = inference.model_pixels(record.source, self._view)
        use_global = tiling.needs_global_view(self._pooling)
        if plan is not None and not tiling.needs_tiles(self._pooling):
            plan = None  # "global" pooling: the letterbox alone
        batch, _ = inference.model_inputs(pixels, plan, self._model.input_size, use_global)
        return (record, plan), batch

    def attach_probability(self, keyed: tuple[tuple[ImageRecord, Any], Any]) -> ImageRecord:
        (record, plan), predictions = keyed
        use_global = tiling.needs_global_view(self._pooling)
        record.blur_probability = inference.pooled_probability(predictions, plan, use_global,
                                                               self._pooling)
        return record

    def expand(self, records: beam.PCollection) -> dict[str, beam.PCollection]:
        out = records | "RunClassifier" >> RunModelStage(
            self._model, self._batch_size, self._threads, schemas.STAGE_CLASSIFY, self._run_id,
            ("Tiles", self.model_input), ("PoolTiles", self.attach_probability))
        return {"classified": out["ok"], "errors": out["errors"]}


def classifier_view(model: ModelInfo, options: DetectOptions) -> ViewSpec:
    """How the classifier looks at images under these options."""
    return ViewSpec(model.input_size, options.classifier_tiles)


def identifier_view(model: ModelInfo, options: DetectOptions) -> ViewSpec:
    """How the identifier looks at images: tile starts on whole mask pixels.

    Its tiles always cover the frame (a mask must cover all of it): when the budget cannot at
    2x, they go further down, which costs no more model passes than the budget.
    """
    return ViewSpec(model.input_size, options.identifier_tiles, align=model.mask_stride,
                    max_scale=None)


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
    partial = f"{target}.{uuid.uuid4().hex}.partial"
    try:
        with FileSystems.create(partial) as handle:
            handle.write(overlays.encode_overlay_jpeg(pixels))
        FileSystems.rename([partial], [target])
    except Exception:
        with contextlib.suppress(Exception):  # a full disk may refuse even this
            FileSystems.delete([partial])
        raise
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
        self._view = identifier_view(model, options)
        self._options = options
        self._classifier_id = classifier_id
        self._run_id = run_id
        self._threads = intra_op_threads
        self._segmented = Metrics.counter(METRICS_NAMESPACE, COUNTER_SEGMENTED)
        self._overlays_written = Metrics.counter(METRICS_NAMESPACE, COUNTER_OVERLAYS_WRITTEN)
        self._overlays_failed = Metrics.counter(METRICS_NAMESPACE, COUNTER_OVERLAYS_FAILED)

    def model_input(self, record: ImageRecord) -> tuple[tuple[ImageRecord, Any, Any, Any],
                                                         np.ndarray]:
        """((record, plan, global view geometry, analysed pixels), batch).

        The global view is added only where the tiles leave gaps; the analysed pixels guide
        the mask's refinement later.
        """
        pixels, plan = inference.model_pixels(record.source, self._view)
        record.source = None  # the image's last model: only the analysed copy is needed now
        use_global = plan is not None and not plan.covers
        batch, info = inference.model_inputs(pixels, plan, self._model.input_size, use_global)
        return (record, plan, info, pixels), batch

    def to_row(self, keyed: tuple[tuple[ImageRecord, Any, Any, Any], Any]) -> dict[str, Any]:
        (record, plan, info, analysed), predictions = keyed
        self._segmented.inc()
        coarse = inference.identifier_mask(predictions, plan, info, self._model.mask_stride)
        mask, pixels = inference.refine_to_image(coarse, analysed)
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


def staging_folder(output: str, run_id: str, table: str) -> str:
    """Where Beam writes a table's files before they are published."""
    return FileSystems.join(output, schemas.STAGING_DIR, run_id, table)


def run_folder(output: str, run_id: str, table: str) -> str:
    """Where a run's finished files of one table are published."""
    return FileSystems.join(output, table, f"{schemas.RUN_FOLDER_PREFIX}{run_id}")


class _ReportProgressFn(beam.DoFn):
    """Pass rows through, counting them in a file the submitting process reads (local runs).

    Worker processes cannot print a useful line themselves (each knows only its share, and
    their output interleaves); the CLI's ProgressMonitor sums the counts of all of them.
    """

    def __init__(self, progress_dir: str):
        self._progress_dir = progress_dir
        self._counter: progress.CountFile | None = None

    def setup(self) -> None:
        self._counter = progress.count_file(self._progress_dir)

    def process(self, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        self._counter.add()
        yield row

    def finish_bundle(self) -> None:
        self._counter.flush()


class WriteTable(beam.PTransform):
    """Rows -> ``OUT/_staging/<RUN_ID>/<table>/part-*.parquet``; published after the run."""

    def __init__(self, output: str, table: str, schema: Any, run_id: str,
                 counter_of: Any):
        super().__init__()
        self._prefix = FileSystems.join(staging_folder(output, run_id, table), "part")
        self._schema = schema
        self._counter_of = counter_of

    def expand(self, rows: beam.PCollection) -> Any:
        counter_of = self._counter_of

        def count(row: dict[str, Any]) -> dict[str, Any]:
            # Counted here, as rows reach the table, so an image that fails after its verdict
            # is counted once (as an error), and the summary's sum always reconciles.
            Metrics.counter(METRICS_NAMESPACE, counter_of(row)).inc()
            return row

        return rows | "Count" >> beam.Map(count) | "WriteParquet" >> beam.io.WriteToParquet(
            self._prefix,
            schema=self._schema,
            codec="snappy",
            file_name_suffix=schemas.PARQUET_SUFFIX,
            # Spark/BigQuery-compatible list encoding (child field named "element").
            use_compliant_nested_type=True,
        )


def _verdict_counter(row: dict[str, Any]) -> str:
    return COUNTER_BLURRY if row[schemas.IS_BLURRY] else COUNTER_SHARP


def _error_counter(_: dict[str, Any]) -> str:
    return COUNTER_ERRORS


def WriteResults(output: str, run_id: str) -> WriteTable:  # noqa: N802 - a transform factory
    """Result rows -> the results table of this run; counts sharp and blurry rows."""
    return WriteTable(output, schemas.RESULTS_DIR, schemas.RESULTS_SCHEMA, run_id,
                      _verdict_counter)


def WriteErrors(output: str, run_id: str) -> WriteTable:  # noqa: N802 - a transform factory
    """Error rows -> the errors table of this run; counts them."""
    return WriteTable(output, schemas.ERRORS_DIR, schemas.ERRORS_SCHEMA, run_id, _error_counter)


def build_pipeline(
    pipeline: beam.Pipeline,
    options: DetectOptions,
    classifier: ModelInfo,
    identifier: ModelInfo,
    run_id: str,
    intra_op_threads: int | None = None,
    progress_dir: str | None = None,
) -> None:
    """Add the whole detect job to ``pipeline`` (shared by the CLI, tests and benchmarks).

    Args:
        progress_dir: a local folder where workers keep their count of finished images, for
            the progress lines of local runs (None: no counting; cluster runners show the
            Beam counters in their UIs instead).
    """
    exclude = None if inputs.is_remote(options.output) else options.output
    matched = pipeline | "MatchInputs" >> MatchInputs(options.input_specs, exclude, run_id)
    files = matched["files"]
    if options.skip_existing:
        files = files | "SkipProcessed" >> SkipProcessed(
            previous_output_patterns(options.output, include_errors=not options.retry_errors),
            replaced_run=run_id if options.overwrite_run else None)
    decoded = files | "DecodeImages" >> DecodeImages(options, run_id,
                                                     classifier_view(classifier, options))
    classified = decoded.images | "ClassifyBlur" >> ClassifyBlur(
        classifier, options, run_id, intra_op_threads
    )

    def by_verdict(record: ImageRecord, _: int) -> int:
        return int(record.blur_probability >= options.blur_threshold)

    sharp, blurry = classified["classified"] | "SplitByVerdict" >> beam.Partition(by_verdict, 2)
    sharp_rows = sharp | _per_image(
        "SharpRows", functools.partial(sharp_result_row, options=options,
                                       classifier_id=classifier.model_id, run_id=run_id),
        schemas.STAGE_CLASSIFY, "postprocess_error", run_id)
    segmented = blurry | "SegmentBlur" >> SegmentBlur(
        identifier, options, classifier.model_id, run_id, intra_op_threads
    )
    results = (sharp_rows.ok, segmented["rows"]) | "AllResults" >> beam.Flatten()
    errors = (
        (matched["errors"], decoded[_ERRORS_TAG], classified["errors"],
         sharp_rows[_ERRORS_TAG], segmented["errors"])
        | "AllErrors" >> beam.Flatten()
    )
    if progress_dir:
        report = _ReportProgressFn(progress_dir)
        results = results | "ProgressResults" >> beam.ParDo(report)
        errors = errors | "ProgressErrors" >> beam.ParDo(report)
    results | "WriteResults" >> WriteResults(options.output, run_id)
    errors | "WriteErrors" >> WriteErrors(options.output, run_id)


@dataclasses.dataclass(frozen=True)
class DetectSummary:
    """Counts of one run; ``matched == skipped + sharp + blurry + errors`` when nothing was lost.

    A folder that could not be listed is one errors row and counts as one matched input.
    """

    run_id: str
    matched: int
    skipped: int
    sharp: int
    blurry: int
    errors: int
    segmented: int
    wall_seconds: float
    overlays_written: int = 0
    overlays_failed: int = 0
    # Seconds from the pipeline's start to the first finished image (local runs), None if
    # not followed; rows are published at the end, this says when work got going.
    first_result_seconds: float | None = None

    @property
    def reconciled(self) -> bool:
        return self.matched == self.skipped + self.sharp + self.blurry + self.errors

    @property
    def error_fraction(self) -> float:
        """Errors among the images this run processed (skipped ones excluded)."""
        processed = self.matched - self.skipped
        return self.errors / processed if processed else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "reconciled": self.reconciled}


def _counter_value(result: Any, name: str) -> int:
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name))
    total = 0
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        total += int(value or 0)
    return total


def write_output_marker(output: str, run_id: str) -> None:
    """Mark OUT as an sbdn output folder (so later runs may write into it)."""
    marker = FileSystems.join(output, schemas.OUTPUT_MARKER)
    if FileSystems.exists(marker):
        return
    if not inputs.is_remote(output):
        os.makedirs(output, exist_ok=True)
    payload = {"tool": "sbdn-pipeline", "created_by_run": run_id,
               "layout": "results/run_id=*/part-*.parquet, errors/run_id=*/part-*.parquet"}
    partial = f"{marker}.{uuid.uuid4().hex}.partial"
    with FileSystems.create(partial) as handle:
        handle.write(json.dumps(payload, indent=2).encode("utf-8"))
    FileSystems.rename([partial], [marker])


def _files_in(folder: str) -> list[str]:
    return [m.path for m in FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list]


def _move(sources: list[str], folder: str, local: bool) -> None:
    if not sources:
        return
    if local:
        os.makedirs(folder, exist_ok=True)
    FileSystems.rename(sources, [FileSystems.join(folder, os.path.basename(p)) for p in sources])


def publish_run(output: str, run_id: str, replace: bool = False) -> int:
    """Move the run's finished files from staging into results/ and errors/ (one rename each).

    A run killed before or during this step leaves only whole files in the tables (each file
    is renamed complete); whatever stays in staging is invisible to readers, and a re-run with
    --skip-existing processes exactly the images whose rows never reached the tables.

    Args:
        replace: the run overwrites an earlier run of the same id; that run's files are moved
            out of the tables just before this run's files move in, then deleted.

    Returns:
        Number of files published.
    """
    local = not inputs.is_remote(output)
    published = 0
    for table in (schemas.RESULTS_DIR, schemas.ERRORS_DIR):
        destination = run_folder(output, run_id, table)
        if replace:
            _move(_files_in(destination), FileSystems.join(
                output, schemas.STAGING_DIR, run_id, f"replaced-{table}"), local)
        sources = _files_in(staging_folder(output, run_id, table))
        sources = [path for path in sources if path.endswith(schemas.PARQUET_SUFFIX)]
        _move(sources, destination, local)
        published += len(sources)
    try:
        FileSystems.delete([FileSystems.join(output, schemas.STAGING_DIR, run_id)])
    except Exception:  # noqa: BLE001 - an empty staging folder left behind is harmless
        _LOGGER.debug("could not remove staging folder of run %s", run_id)
    return published


def local_workers(pipeline_options: PipelineOptions) -> int:
    """Number of local worker processes the FnApiRunner will start (1 when in process)."""
    direct = pipeline_options.view_as(DirectOptions)
    if direct.direct_running_mode == "multi_processing":
        return max(1, direct.direct_num_workers or 1)
    return 1


def intra_op_threads_for(pipeline_options: PipelineOptions) -> int | None:
    """TF threads per worker process: share the cores between local worker processes."""
    workers = local_workers(pipeline_options)
    if workers > 1:
        return max(1, (os.cpu_count() or 1) // workers)
    return None


def _prepare_output(options: DetectOptions, run_id: str) -> None:
    """Marker, a clean staging area for this run id, and the folders local sinks need."""
    write_output_marker(options.output, run_id)
    staging = FileSystems.join(options.output, schemas.STAGING_DIR, run_id)
    if FileSystems.exists(staging):
        # Left by a killed run of the same id: its parts must not be published with ours.
        FileSystems.delete([staging])
    if not inputs.is_remote(options.output):
        # Local file sinks lose output renamed into a missing sub-folder: create them first.
        for table in (schemas.RESULTS_DIR, schemas.ERRORS_DIR):
            os.makedirs(staging_folder(options.output, run_id, table), exist_ok=True)
    if options.overlays_dir and not inputs.is_remote(options.overlays_dir):
        os.makedirs(options.overlays_dir, exist_ok=True)


@dataclasses.dataclass(frozen=True)
class ProgressSettings:
    """Progress lines of a local run: how often, towards which total, to which stream."""

    interval_s: float = 10.0
    total: int | Any = None  # a count, or a function that counts (called while workers start)
    stream: Any = None
    silent: bool = False  # follow the run (first result time) without printing


def _run_pipeline(options: DetectOptions, classifier: ModelInfo, identifier: ModelInfo,
                  pipeline_options: PipelineOptions, run_id: str,
                  progress_settings: ProgressSettings | None) -> tuple[Any, float | None]:
    """Run the pipeline; returns its result and when the first image was finished."""
    pipeline = beam.Pipeline(runner=make_runner(pipeline_options), options=pipeline_options)
    threads = intra_op_threads_for(pipeline_options)
    if progress_settings is None:
        build_pipeline(pipeline, options, classifier, identifier, run_id, threads)
        result = pipeline.run()
        result.wait_until_finish()
        return result, None
    with tempfile.TemporaryDirectory(prefix="sbdn-progress-") as folder:
        build_pipeline(pipeline, options, classifier, identifier, run_id, threads, folder)
        with progress.ProgressMonitor(
                folder, progress_settings.total, progress_settings.interval_s,
                progress_settings.stream, progress_settings.silent) as monitor:
            result = pipeline.run()
            result.wait_until_finish()
    return result, monitor.first_result_s


def run(
    options: DetectOptions,
    classifier: ModelInfo,
    identifier: ModelInfo,
    pipeline_options: PipelineOptions,
    progress_settings: ProgressSettings | None = None,
) -> DetectSummary:
    """Run the detect job to completion and return its counts.

    The caller has validated the arguments (see ``sbdn_pipeline.cli``). Under OUT's lock (one
    run at a time per output folder) this refuses an existing run id unless
    ``options.overwrite_run``, writes the output marker, runs the pipeline, publishes the
    tables and reads the counts from Beam's metrics.

    Args:
        progress_settings: print progress lines (local runners only; None: none).

    Raises:
        output_folder.OutputError: OUT is locked by another run, or has this run id already.
    """
    run_id = options.run_id or new_run_id()
    with output_folder.output_lock(options.output, run_id):
        output_folder.check_new_run(options.output, run_id, options.overwrite_run)
        _prepare_output(options, run_id)
        started = time.monotonic()
        result, first_result_s = _run_pipeline(options, classifier, identifier,
                                               pipeline_options, run_id, progress_settings)
        publish_run(options.output, run_id, replace=options.overwrite_run)
    return DetectSummary(
        run_id=run_id,
        matched=_counter_value(result, COUNTER_MATCHED),
        skipped=_counter_value(result, COUNTER_SKIPPED),
        sharp=_counter_value(result, COUNTER_SHARP),
        blurry=_counter_value(result, COUNTER_BLURRY),
        errors=_counter_value(result, COUNTER_ERRORS),
        segmented=_counter_value(result, COUNTER_SEGMENTED),
        wall_seconds=time.monotonic() - started,
        overlays_written=_counter_value(result, COUNTER_OVERLAYS_WRITTEN),
        overlays_failed=_counter_value(result, COUNTER_OVERLAYS_FAILED),
        first_result_seconds=first_result_s,
    )
