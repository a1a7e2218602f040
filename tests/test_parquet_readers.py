"""Both tables read by real engines: Spark (pyspark, local mode) and DuckDB, and BigQuery's
load schema, against the one definition in sbdn_pipeline/schemas.py."""

from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sbdn_pipeline import schemas
from tests import imagegen
from tests.beam_jobs.test_detect import run_detect

DOCS_BIGQUERY = os.path.join(os.path.dirname(__file__), "..", "docs", "bigquery")
TABLES = {"results": schemas.RESULTS_SCHEMA, "errors": schemas.ERRORS_SCHEMA}


@pytest.fixture(scope="module")
def output(tiny_models, tmp_path_factory) -> dict[str, object]:
    """A detect run on 2 sharp, 2 blurry (with masks and regions) and 1 broken image."""
    folder = tmp_path_factory.mktemp("reader-images")
    images = {"sharp_0.png": imagegen.sharp_image(96, 96, 0),
              "sharp_1.jpg": imagegen.sharp_image(96, 80, 1),
              "blurred.png": imagegen.blurred_image(96, 96, 2),
              "half_blurred.png": imagegen.half_blurred_image(96, 96, 3)}
    for name, pixels in images.items():
        image_format = "JPEG" if name.endswith(".jpg") else "PNG"
        (folder / name).write_bytes(imagegen.encode(pixels, image_format))
    (folder / "empty.jpg").write_bytes(b"")
    out = str(tmp_path_factory.mktemp("reader-out") / "out")
    summary = run_detect(str(folder), out, tiny_models)
    assert (summary.sharp, summary.blurry, summary.errors) == (2, 2, 1)
    return {"path": out, "rows": {"results": 4, "errors": 1}}


def _spark_type(arrow: pa.DataType):
    """The Spark SQL type a Parquet column of this Arrow type must read as.

    Spark reads every file column as nullable, nested fields too, so nullability is not
    compared here (the Parquet files' own modes are checked against BigQuery's below).
    """
    from pyspark.sql import types as T

    if pa.types.is_list(arrow):
        return T.ArrayType(_spark_type(arrow.value_type), True)
    if pa.types.is_struct(arrow):
        return T.StructType([T.StructField(f.name, _spark_type(f.type), True)
                             for f in arrow])
    return {pa.string(): T.StringType(), pa.int32(): T.IntegerType(), pa.int64(): T.LongType(),
            pa.float32(): T.FloatType(), pa.bool_(): T.BooleanType(),
            pa.binary(): T.BinaryType(), schemas.TIMESTAMP_TYPE: T.TimestampType()}[arrow]


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (.ci/run installs default-jre-headless)")
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("sbdn-parquet-readers")
               .config("spark.ui.enabled", "false").config("spark.driver.memory", "512m")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", "UTC").config("spark.log.level", "ERROR")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.mark.parametrize("table", TABLES)
def test_spark_reads_the_table_with_the_schema_types(spark, output, table) -> None:
    frame = spark.read.parquet(os.path.join(output["path"], table))  # run_id= folders too
    assert frame.count() == output["rows"][table]
    fields = {f.name: f for f in frame.schema.fields}
    assert list(fields) == TABLES[table].names  # run_id is in the files and the folder names
    for column in TABLES[table]:
        assert fields[column.name].dataType == _spark_type(column.type), column.name


def test_spark_sees_masks_regions_and_timestamps(spark, output) -> None:
    rows = {os.path.basename(r.image_uri): r for r in
            spark.read.parquet(os.path.join(output["path"], "results")).collect()}
    half = rows["half_blurred.png"]
    assert half.is_blurry and bytes(half.mask_png).startswith(b"\x89PNG")
    assert half.blur_region_count == len(half.blur_regions) >= 1
    assert half.blur_regions[0].x_min == 0 and half.blur_regions[0].y_max == 96
    assert rows["sharp_0.png"].blur_regions is None and rows["sharp_0.png"].mask_png is None
    assert half.processed_at.year >= 2024 and half.run_id


_DUCKDB_TYPES = {pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
                 pa.float32(): "FLOAT", pa.bool_(): "BOOLEAN", pa.binary(): "BLOB",
                 schemas.TIMESTAMP_TYPE: "TIMESTAMP WITH TIME ZONE"}


def _duckdb_type(arrow: pa.DataType) -> str:
    if pa.types.is_list(arrow):
        return _duckdb_type(arrow.value_type) + "[]"
    if pa.types.is_struct(arrow):
        return "STRUCT(" + ", ".join(f"{f.name} {_duckdb_type(f.type)}" for f in arrow) + ")"
    return _DUCKDB_TYPES[arrow]


@pytest.mark.parametrize("table", TABLES)
def test_duckdb_reads_the_table_with_the_schema_types(output, table) -> None:
    import duckdb

    source = f"read_parquet('{output['path']}/{table}/*/*.parquet')"
    described = duckdb.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
    assert [(name, kind) for name, kind, *_ in described] == [
        (column.name, _duckdb_type(column.type)) for column in TABLES[table]]
    assert duckdb.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0] == output["rows"][table]
    if table == "results":
        regions = duckdb.sql(f"SELECT len(blur_regions), octet_length(mask_png) FROM {source} "
                             "WHERE image_uri LIKE '%half_blurred.png'").fetchall()[0]
        assert regions[0] >= 1 and regions[1] > 8


@pytest.mark.parametrize("table", TABLES)
def test_committed_bigquery_schema_is_the_one_schemas_py_makes(table) -> None:
    path = os.path.join(DOCS_BIGQUERY, f"{table}.json")
    with open(path, encoding="utf-8") as handle:
        committed = handle.read()
    assert committed == schemas.bigquery_schema_json(TABLES[table]), (
        f"{path} is out of date: run python -m sbdn_pipeline.schemas docs/bigquery")


@pytest.mark.parametrize("table", TABLES)
def test_parquet_required_columns_are_the_bigquery_required_ones(output, table) -> None:
    """bq load refuses an OPTIONAL Parquet column for a REQUIRED field: the modes must agree."""
    files = [os.path.join(root, name) for root, _, names in os.walk(
        os.path.join(output["path"], table)) for name in names if name.endswith(".parquet")]
    parquet = pq.ParquetFile(files[0]).schema_arrow
    for field in schemas.bigquery_schema(TABLES[table]):
        if field["mode"] != "REPEATED":
            assert parquet.field(field["name"]).nullable == (field["mode"] == "NULLABLE")
