"""The detect job's first stages: list INPUT, skip what earlier runs did, read and decode."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from sbdn_pipeline import images, inputs, schemas
from sbdn_pipeline.inference import ImageSource, ViewSpec
from sbdn_pipeline.options import DetectOptions
from beam_jobs.detect_records import (COUNTER_MATCHED, COUNTER_SKIPPED, METRICS_NAMESPACE,
                                       _ERRORS_TAG, ImageRecord, error_row,
                                       microseconds_since_epoch)

_LOGGER = logging.getLogger(__name__)


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
