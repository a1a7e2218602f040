"""Parquet schemas of every table the tool writes, and the output folder layout.

This is the one place that defines them: the Beam writers, the readers (summaries, reports,
incremental runs) and the tests all import from here.

Output layout of ``sbdn detect ... --output OUT``::

    OUT/_sbdn_output.json                      marker: this folder belongs to sbdn
    OUT/results/run_id=<RUN_ID>/part-*.parquet one row per image that was classified
    OUT/errors/run_id=<RUN_ID>/part-*.parquet  one row per image that could not be

Files appear in ``results/`` and ``errors/`` only once complete: Beam writes them under
``OUT/_staging/<RUN_ID>/`` and the job renames each finished file into place, so a killed run
leaves nothing half-written where readers look.

The ``run_id=...`` folders are Hive-style, so ``OUT/results/*/*.parquet`` reads every run and a
run can be audited or deleted as a folder. The ``run_id`` column is also stored inside the files
so that readers which do not parse Hive folders still see it.
"""

from __future__ import annotations

import pyarrow as pa

RESULTS_DIR = "results"
ERRORS_DIR = "errors"
OUTPUT_MARKER = "_sbdn_output.json"
# Beam's sinks write here first; finished files are then renamed into results/ and errors/.
# Leading underscore: Spark, pyarrow datasets and pandas skip it when reading OUT/results.
STAGING_DIR = "_staging"
PARQUET_SUFFIX = ".parquet"

# Column names of the tables below: code that reads or writes a column names it through these.
IMAGE_URI = "image_uri"
IMAGE_SHA256 = "image_sha256"
IMAGE_SIZE_BYTES = "image_size_bytes"
IMAGE_MODIFIED_AT = "image_modified_at"
WIDTH = "width"
HEIGHT = "height"
FORMAT = "format"
BLUR_PROBABILITY = "blur_probability"
IS_BLURRY = "is_blurry"
BLUR_THRESHOLD = "blur_threshold"
MASK_THRESHOLD = "mask_threshold"
CLASSIFIER_MODEL = "classifier_model"
IDENTIFIER_MODEL = "identifier_model"
MASK_PNG = "mask_png"
MASK_WIDTH = "mask_width"
MASK_HEIGHT = "mask_height"
BLUR_AREA_FRACTION = "blur_area_fraction"
BLUR_REGION_COUNT = "blur_region_count"
BLUR_REGIONS = "blur_regions"
OVERLAY_URI = "overlay_uri"
RUN_ID = "run_id"
PROCESSED_AT = "processed_at"
STAGE = "stage"
ERROR_TYPE = "error_type"
ERROR_MESSAGE = "error_message"
# Fields of one element of the blur_regions column.
REGION_X_MIN = "x_min"
REGION_Y_MIN = "y_min"
REGION_X_MAX = "x_max"
REGION_Y_MAX = "y_max"
REGION_AREA_FRACTION = "area_fraction"
REGION_MEAN_CONFIDENCE = "mean_confidence"
# Hive-style run folders: results/run_id=<RUN_ID>/.
RUN_FOLDER_PREFIX = f"{RUN_ID}="

# Timestamps are microseconds in UTC: the widest common denominator of DuckDB, Spark, pandas
# and BigQuery (BigQuery rejects nanosecond Parquet timestamps).
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

BLUR_REGION_TYPE = pa.struct(
    [
        # Bounding box in ORIGINAL image pixel coordinates (after EXIF orientation);
        # x_min/y_min inclusive, x_max/y_max exclusive.
        pa.field(REGION_X_MIN, pa.int32(), nullable=False),
        pa.field(REGION_Y_MIN, pa.int32(), nullable=False),
        pa.field(REGION_X_MAX, pa.int32(), nullable=False),
        pa.field(REGION_Y_MAX, pa.int32(), nullable=False),
        pa.field(REGION_AREA_FRACTION, pa.float32(), nullable=False),
        pa.field(REGION_MEAN_CONFIDENCE, pa.float32(), nullable=False),
    ]
)

RESULTS_SCHEMA = pa.schema(
    [
        pa.field(IMAGE_URI, pa.string(), nullable=False),
        pa.field(IMAGE_SHA256, pa.string(), nullable=False),
        pa.field(IMAGE_SIZE_BYTES, pa.int64(), nullable=False),
        # Last-modified time reported by the file system; with image_uri and image_size_bytes it
        # is the key incremental runs (--skip-existing) use to tell new and changed files.
        pa.field(IMAGE_MODIFIED_AT, TIMESTAMP_TYPE),
        pa.field(WIDTH, pa.int32(), nullable=False),
        pa.field(HEIGHT, pa.int32(), nullable=False),
        pa.field(FORMAT, pa.string(), nullable=False),
        pa.field(BLUR_PROBABILITY, pa.float32(), nullable=False),
        pa.field(IS_BLURRY, pa.bool_(), nullable=False),
        pa.field(BLUR_THRESHOLD, pa.float32(), nullable=False),
        pa.field(MASK_THRESHOLD, pa.float32(), nullable=False),
        pa.field(CLASSIFIER_MODEL, pa.string(), nullable=False),
        # Everything below is null for sharp images: the identifier never runs on them.
        pa.field(IDENTIFIER_MODEL, pa.string()),
        pa.field(MASK_PNG, pa.binary()),
        pa.field(MASK_WIDTH, pa.int32()),
        pa.field(MASK_HEIGHT, pa.int32()),
        pa.field(BLUR_AREA_FRACTION, pa.float32()),
        pa.field(BLUR_REGION_COUNT, pa.int32()),
        pa.field(BLUR_REGIONS, pa.list_(pa.field("element", BLUR_REGION_TYPE))),
        # With --overlays DIR: the JPEG of the photo with blurred pixels tinted red.
        pa.field(OVERLAY_URI, pa.string()),
        pa.field(RUN_ID, pa.string(), nullable=False),
        pa.field(PROCESSED_AT, TIMESTAMP_TYPE, nullable=False),
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        pa.field(IMAGE_URI, pa.string(), nullable=False),
        # Pipeline stage that failed: list, read, decode, classify, segment. A "list" row's
        # image_uri is the folder (or INPUT) that could not be listed, or the file not stat'd.
        pa.field(STAGE, pa.string(), nullable=False),
        # Short machine-readable reason, e.g. "empty_file", "not_an_image", "too_many_pixels".
        pa.field(ERROR_TYPE, pa.string(), nullable=False),
        pa.field(ERROR_MESSAGE, pa.string(), nullable=False),
        # Known when the bytes could be read; lets incremental runs tell a changed file apart.
        pa.field(IMAGE_SHA256, pa.string()),
        pa.field(IMAGE_SIZE_BYTES, pa.int64()),
        pa.field(IMAGE_MODIFIED_AT, TIMESTAMP_TYPE),
        pa.field(RUN_ID, pa.string(), nullable=False),
        pa.field(PROCESSED_AT, TIMESTAMP_TYPE, nullable=False),
    ]
)

# Values of the ``stage`` column of the errors table.
STAGE_LIST = "list"
STAGE_READ = "read"
STAGE_DECODE = "decode"
STAGE_CLASSIFY = "classify"
STAGE_SEGMENT = "segment"


# BigQuery types of the Arrow types above (Parquet load: int32 widens to INTEGER, float32 to
# FLOAT); a list becomes a REPEATED field (bq load --parquet_enable_list_inference=true).
_BIGQUERY_TYPES = {
    pa.string(): "STRING",
    pa.int32(): "INTEGER",
    pa.int64(): "INTEGER",
    pa.float32(): "FLOAT",
    pa.float64(): "FLOAT",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BYTES",
    TIMESTAMP_TYPE: "TIMESTAMP",
}
# Tables whose BigQuery schema is committed in docs/bigquery/<table>.json.
BIGQUERY_TABLES = {RESULTS_DIR: RESULTS_SCHEMA, ERRORS_DIR: ERRORS_SCHEMA}


def bigquery_field(field: pa.Field) -> dict[str, object]:
    """One column as a BigQuery JSON schema field (name, type, mode, nested fields)."""
    if pa.types.is_list(field.type):
        element = bigquery_field(field.type.value_field.with_name(field.name))
        return {**element, "mode": "REPEATED"}
    mode = "NULLABLE" if field.nullable else "REQUIRED"
    if pa.types.is_struct(field.type):
        children = [bigquery_field(field.type.field(i)) for i in range(field.type.num_fields)]
        return {"name": field.name, "type": "RECORD", "mode": mode, "fields": children}
    if field.type not in _BIGQUERY_TYPES:
        raise ValueError(f"no BigQuery type for column {field.name!r} ({field.type})")
    return {"name": field.name, "type": _BIGQUERY_TYPES[field.type], "mode": mode}


def bigquery_schema(schema: pa.Schema) -> list[dict[str, object]]:
    """A table's BigQuery JSON schema (what ``bq load ... SCHEMA_FILE`` reads)."""
    return [bigquery_field(field) for field in schema]


def bigquery_schema_json(schema: pa.Schema) -> str:
    """The committed file's exact text: 2-space indented JSON and a final newline."""
    import json

    return json.dumps(bigquery_schema(schema), indent=2) + "\n"


def write_bigquery_schemas(folder: str) -> list[str]:
    """Write ``<folder>/<table>.json`` for both tables; returns the paths."""
    import os

    os.makedirs(folder, exist_ok=True)
    paths = []
    for table, schema in BIGQUERY_TABLES.items():
        path = os.path.join(folder, f"{table}.json")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(bigquery_schema_json(schema))
        paths.append(path)
    return paths


if __name__ == "__main__":  # python -m sbdn_pipeline.schemas docs/bigquery
    import sys

    print("\n".join(write_bigquery_schemas(sys.argv[1] if len(sys.argv) > 1 else "docs/bigquery")))
