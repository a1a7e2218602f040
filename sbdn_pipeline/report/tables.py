"""Read the detect job's Parquet output (every run, or one) for summaries and reports.

Reads ``OUT/results/*/*.parquet`` and ``OUT/errors/*/*.parquet`` through Beam's file systems,
so ``OUT`` may be local or ``gs://`` / ``s3://``. Only the columns a caller asks for are read:
the ``mask_png`` column, by far the largest, is fetched later and only for the rows shown.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sbdn_pipeline import inputs, schemas

# Optional column written by ``sbdn detect --overlays DIR``; runs without it read as null.
OVERLAY_URI_COLUMN = schemas.OVERLAY_URI
# Where each row came from, so a column left out at first (mask_png) can be fetched later.
FILE_COLUMN = "_file"
ROW_COLUMN = "_row"

RESULTS_COLUMNS = (
    schemas.IMAGE_URI, schemas.IMAGE_SHA256, schemas.WIDTH, schemas.HEIGHT, schemas.FORMAT,
    schemas.BLUR_PROBABILITY, schemas.IS_BLURRY, schemas.BLUR_THRESHOLD, schemas.MASK_THRESHOLD,
    schemas.CLASSIFIER_MODEL, schemas.MASK_WIDTH, schemas.MASK_HEIGHT, schemas.BLUR_AREA_FRACTION,
    schemas.BLUR_REGION_COUNT, schemas.BLUR_REGIONS, schemas.RUN_ID, schemas.PROCESSED_AT,
    OVERLAY_URI_COLUMN,
)
ERRORS_COLUMNS = (
    schemas.IMAGE_URI, schemas.STAGE, schemas.ERROR_TYPE, schemas.ERROR_MESSAGE,
    schemas.IMAGE_SHA256, schemas.RUN_ID, schemas.PROCESSED_AT,
)


class OutputError(Exception):
    """OUT holds no sbdn output, or the requested run is not in it."""


def _field_type(schema: pa.Schema, name: str) -> pa.DataType:
    if name == OVERLAY_URI_COLUMN:
        return pa.string()
    return schema.field(name).type


def _open(path: str):  # noqa: ANN202 - a binary file object
    """Local files directly; cloud URIs through Beam (imported only then: reading a local
    output must not pay for importing Beam)."""
    if not inputs.is_remote(path):
        return open(path, "rb")
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type="uncompressed")


def list_table_files(output: str, table: str) -> list[str]:
    """Parquet files of one table (``results`` or ``errors``) over all runs, sorted."""
    parts = (table, f"{schemas.RUN_FOLDER_PREFIX}*", "*" + schemas.PARQUET_SUFFIX)
    if not inputs.is_remote(output):
        return sorted(glob.glob(os.path.join(output, *parts)))
    from apache_beam.io.filesystems import FileSystems

    try:
        matched = FileSystems.match([FileSystems.join(output, *parts)])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises when nothing matches on some file systems
        return []
    return sorted(metadata.path for metadata in matched)


def _read_file(path: str, columns: Sequence[str], schema: pa.Schema, index: int) -> pa.Table:
    with _open(path) as handle:
        parquet = pq.ParquetFile(handle)
        present = [name for name in columns if name in parquet.schema_arrow.names]
        table = parquet.read(columns=present)
    arrays, fields = [], []
    for name in columns:
        wanted = _field_type(schema, name)
        if name in present:
            column = table.column(name)
            arrays.append(column.cast(wanted) if column.type != wanted else column)
        else:  # a column added after this run was written (e.g. overlay_uri)
            arrays.append(pa.nulls(table.num_rows, wanted))
        fields.append(pa.field(name, wanted))
    arrays.append(pa.array(np.full(table.num_rows, index, dtype=np.int32)))
    arrays.append(pa.array(np.arange(table.num_rows, dtype=np.int64)))
    fields += [pa.field(FILE_COLUMN, pa.int32()), pa.field(ROW_COLUMN, pa.int64())]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _empty(columns: Sequence[str], schema: pa.Schema) -> pa.Table:
    fields = [pa.field(name, _field_type(schema, name)) for name in columns]
    fields += [pa.field(FILE_COLUMN, pa.int32()), pa.field(ROW_COLUMN, pa.int64())]
    return pa.schema(fields).empty_table()


def read_table_files(files: Sequence[str], columns: Sequence[str], schema: pa.Schema,
                     run_id: str | None = None) -> pa.Table:
    """Concatenate ``columns`` of the given Parquet files, optionally of one run only."""
    tables = [_read_file(path, columns, schema, index) for index, path in enumerate(files)]
    table = pa.concat_tables(tables) if tables else _empty(columns, schema)
    if run_id is not None:
        table = table.filter(pc.equal(table.column(schemas.RUN_ID), run_id))
    return table


@dataclasses.dataclass
class Output:
    """The readable part of one output folder.

    Attributes:
        output: the folder (local path or URI).
        results: results rows (``RESULTS_COLUMNS`` plus ``_file``/``_row``), every run or one.
        errors: errors rows (``ERRORS_COLUMNS`` plus ``_file``/``_row``).
        result_files: the results files; ``_file`` indexes this list.
        run_id: the run the tables were restricted to, or None for every run.
    """

    output: str
    results: pa.Table
    errors: pa.Table
    result_files: list[str]
    run_id: str | None = None

    def fetch_column(self, file_index: int, row_index: int, column: str) -> object:
        """One cell of a column that was not read up front (e.g. ``mask_png``)."""
        path = self.result_files[file_index]
        with _open(path) as handle:
            parquet = pq.ParquetFile(handle)
            # Read only the row group that holds the row: masks are the bulk of the file.
            start = 0
            for group in range(parquet.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                if row_index < start + rows:
                    table = parquet.read_row_group(group, columns=[column])
                    return table.column(column)[row_index - start].as_py()
                start += rows
        raise IndexError(f"row {row_index} is not in {path}")


def read_output(output: str, run_id: str | None = None) -> Output:
    """Read the results and errors tables of an output folder.

    Args:
        output: the folder given to ``sbdn detect --output`` (local, gs://, s3://).
        run_id: keep only this run; None keeps every run.

    Raises:
        OutputError: no sbdn tables in the folder, or no rows of ``run_id``.
    """
    if not inputs.is_remote(output) and not os.path.exists(output):
        raise OutputError(f"output folder '{output}' does not exist")
    result_files = list_table_files(output, schemas.RESULTS_DIR)
    error_files = list_table_files(output, schemas.ERRORS_DIR)
    if not result_files and not error_files:
        raise OutputError(
            f"'{output}' holds no sbdn output (no {schemas.RESULTS_DIR}/run_id=*/*.parquet or "
            f"{schemas.ERRORS_DIR}/run_id=*/*.parquet); give the folder passed to "
            "'sbdn detect --output'"
        )
    results = read_table_files(result_files, RESULTS_COLUMNS, schemas.RESULTS_SCHEMA, run_id)
    errors = read_table_files(error_files, ERRORS_COLUMNS, schemas.ERRORS_SCHEMA, run_id)
    if run_id is not None and results.num_rows + errors.num_rows == 0:
        runs = [schemas.RUN_ID]
        known = sorted(set(read_table_files(result_files, runs, schemas.RESULTS_SCHEMA)
                           .column(schemas.RUN_ID).to_pylist())
                       | set(read_table_files(error_files, runs, schemas.ERRORS_SCHEMA)
                             .column(schemas.RUN_ID).to_pylist()))
        listing = ", ".join(known[-10:]) or "none"
        raise OutputError(f"run '{run_id}' is not in '{output}' (runs there: {listing})")
    return Output(output=output, results=results, errors=errors, result_files=result_files,
                  run_id=run_id)


def latest_per_image(results: pa.Table, errors: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Keep each image URI's most recent row over both tables (the collection as it is now).

    An image processed by several runs (a re-run without ``--skip-existing``, or a file that
    failed once and was fixed) then counts once, with its latest verdict.
    """
    if results.num_rows + errors.num_rows == 0:
        return results, errors
    uris = pa.chunked_array(results.column(schemas.IMAGE_URI).chunks
                            + errors.column(schemas.IMAGE_URI).chunks,
                            type=pa.string())
    times = pa.chunked_array(
        results.column(schemas.PROCESSED_AT).chunks + errors.column(schemas.PROCESSED_AT).chunks,
        type=schemas.TIMESTAMP_TYPE,
    )
    codes = pc.dictionary_encode(uris).combine_chunks().indices.to_numpy()
    stamps = times.cast(pa.int64()).to_numpy()
    # Sort by image, newest first; the first row of each image is the one to keep.
    order = np.lexsort((-stamps, codes))
    first = np.ones(len(order), dtype=bool)
    first[1:] = codes[order][1:] != codes[order][:-1]
    keep = np.zeros(len(order), dtype=bool)
    keep[order[first]] = True
    split = results.num_rows
    return results.filter(pa.array(keep[:split])), errors.filter(pa.array(keep[split:]))
