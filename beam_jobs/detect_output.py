"""The detect job's output: Parquet tables staged per run, published by renames, the marker."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from sbdn_pipeline import atomic, inputs, progress, schemas
from beam_jobs.detect_records import (COUNTER_BLURRY, COUNTER_ERRORS, COUNTER_SHARP,
                                       METRICS_NAMESPACE)

_LOGGER = logging.getLogger(__name__)


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


def write_output_marker(output: str, run_id: str) -> None:
    """Mark OUT as an sbdn output folder (so later runs may write into it)."""
    marker = FileSystems.join(output, schemas.OUTPUT_MARKER)
    if FileSystems.exists(marker):
        return
    if not inputs.is_remote(output):
        os.makedirs(output, exist_ok=True)
    payload = {"tool": "sbdn-pipeline", "created_by_run": run_id,
               "layout": "results/run_id=*/part-*.parquet, errors/run_id=*/part-*.parquet"}
    atomic.write_json(marker, payload, indent=2)


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
