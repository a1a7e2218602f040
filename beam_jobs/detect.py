"""The detect job: classify every image, segment the blurry ones, write Parquet.

    MatchInputs -> DecodeImages -> ClassifyBlur -> (sharp | blurry -> SegmentBlur)
                        |                                  -> WriteResults
                        +-- errors (any stage) ------------> WriteErrors

Only URIs cross the one shuffle (after matching, to spread work over workers); reading,
decoding, classification and segmentation are fused, so pixel arrays are never serialised.
Every matched URI ends in exactly one of the two tables: failures at any stage become an
errors row, never an exception that fails the job or takes batch-mates down.

This module assembles the pipeline and runs it; the stages live in detect_inputs (matching,
skipping, decoding), detect_models (the two model stages), detect_output (tables, publishing)
and detect_records (what travels between them); their names are importable from here.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tempfile
import time
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from sbdn_pipeline import cascade, inputs, output_folder, progress, schemas
from sbdn_pipeline.inference import ModelInfo
from sbdn_pipeline.options import DetectOptions, make_runner
from beam_jobs.detect_inputs import (  # noqa: F401 - the job's stages, importable from here
    DecodeImages,
    MatchInputs,
    SkipProcessed,
    previous_output_patterns,
    previous_row_key,
    read_image_bytes,
)
from beam_jobs.detect_models import (  # noqa: F401
    ClassifyBlur,
    RunModelStage,
    SegmentBlur,
    _per_image,
    blurry_result_row,
    classifier_view,
    identifier_view,
    sharp_result_row,
    write_overlay,
)
from beam_jobs.detect_output import (  # noqa: F401
    WriteErrors,
    WriteResults,
    WriteTable,
    _ReportProgressFn,
    publish_run,
    run_folder,
    staging_folder,
    write_output_marker,
)
from beam_jobs.detect_records import (  # noqa: F401
    COUNTER_BLURRY,
    COUNTER_ERRORS,
    COUNTER_MATCHED,
    COUNTER_OVERLAYS_FAILED,
    COUNTER_OVERLAYS_WRITTEN,
    COUNTER_SEGMENTED,
    COUNTER_SHARP,
    COUNTER_SKIPPED,
    METRICS_NAMESPACE,
    _ERRORS_TAG,
    ImageRecord,
    error_row,
    microseconds_since_epoch,
    new_run_id,
)

_LOGGER = logging.getLogger(__name__)


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
        return int(cascade.is_blurry(record.blur_probability, options.blur_threshold))

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
