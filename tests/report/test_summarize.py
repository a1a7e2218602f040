"""`sbdn summarize`: counts, blur rate, area quantiles and error reasons, as text and JSON."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
from click.testing import CliRunner

from sbdn_pipeline.report import summary, tables
from sbdn_pipeline.cli.report import summarize
from tests.report.conftest import RUN_A, RUN_B


def invoke(*args: str):
    return CliRunner().invoke(summarize, list(args))


def test_json_counts_every_image_of_every_run_once(report_output) -> None:
    result = invoke(report_output["output"], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # Run A: 3 sharp + 3 blurry (2 blurred, 1 half) + 2 errors; run B: 1 + 2 + 1.
    assert (data["images"], data["sharp"], data["blurry"], data["errors"]) == (12, 4, 5, 3)
    assert data["blur_rate"] == 5 / 9
    assert [run["run_id"] for run in data["runs"]] == [RUN_A, RUN_B]
    assert [run["images"] for run in data["runs"]] == [8, 4]
    assert data["superseded_rows"] == 0


def test_area_quantiles_are_ordered_and_within_the_blurry_areas(report_output) -> None:
    data = json.loads(invoke(report_output["output"], "--json").output)
    quantiles = data["blur_area_fraction"]
    assert 0.0 <= quantiles["p10"] <= quantiles["p50"] <= quantiles["p90"] <= 1.0
    # The half-blurred image is the least blurred one: p10 sits near its share of ~50%.
    assert quantiles["p10"] < 0.9 and quantiles["p90"] > 0.9


def test_top_error_reasons_are_counted_with_examples(report_output) -> None:
    data = json.loads(invoke(report_output["output"], "--json").output)
    reasons = {reason["error_type"]: reason for reason in data["top_error_reasons"]}
    assert reasons["empty_file"]["count"] == 2
    assert reasons["not_an_image"]["count"] == 1
    assert data["top_error_reasons"][0]["error_type"] == "empty_file"
    assert reasons["empty_file"]["example_uris"][0].endswith(".jpg")
    assert reasons["empty_file"]["stages"] == ["decode"]


def test_text_output_names_counts_rate_quantiles_and_reasons(report_output) -> None:
    result = invoke(report_output["output"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "images   12" in text and "blurry   5 (41.7%)" in text
    assert "blur rate 55.6% of classified images" in text
    assert "p10" in text and "p50" in text and "p90" in text
    assert "empty_file" in text and RUN_A in text and RUN_B in text


def test_run_id_restricts_the_summary_to_one_run(report_output) -> None:
    data = json.loads(invoke(report_output["output"], "--json", "--run-id", RUN_B).output)
    assert (data["images"], data["sharp"], data["blurry"], data["errors"]) == (4, 1, 2, 1)
    assert data["run_id"] == RUN_B and [run["run_id"] for run in data["runs"]] == [RUN_B]


def test_unknown_run_and_missing_output_fail_with_one_line(report_output, tmp_path) -> None:
    result = invoke(report_output["output"], "--run-id", "nope")
    assert result.exit_code != 0
    assert "run 'nope' is not in" in result.output and RUN_A in result.output
    result = invoke(str(tmp_path / "missing"))
    assert result.exit_code != 0 and "does not exist" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke(str(tmp_path / "empty"))
    assert result.exit_code != 0 and "holds no sbdn output" in result.output


def test_an_image_processed_twice_counts_once_with_its_latest_result(report_output,
                                                                      tmp_path) -> None:
    output = tmp_path / "out"
    shutil.copytree(report_output["output"], output)
    # A re-run of run B: the same rows under a later run id and later timestamps.
    for table in ("results", "errors"):
        source = next((output / table / f"run_id={RUN_B}").glob("*.parquet"))
        rows = pq.read_table(source)
        later = rows.set_column(rows.schema.get_field_index("run_id"), "run_id",
                                [["rerun"] * rows.num_rows])
        stamps = later.column("processed_at").to_pylist()
        later = later.set_column(later.schema.get_field_index("processed_at"), "processed_at",
                                 [[s.replace(year=s.year + 1) for s in stamps]])
        (output / table / "run_id=rerun").mkdir()
        pq.write_table(later.cast(rows.schema), output / table / "run_id=rerun" / "part-0.parquet")
    result = summary.summarize(tables.read_output(str(output)))
    assert result.counts == summary.Counts(images=12, sharp=4, blurry=5, errors=3)
    assert result.superseded_rows == 4
    assert [run.run_id for run in result.runs][-1] == "rerun"
