"""The detect job end to end, in process, with tiny real models and generated images."""

from __future__ import annotations

import glob
import os
import re

import duckdb
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import detect
from sbdn_pipeline import inference, masks, schemas
from sbdn_pipeline.options import DetectOptions

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def run_detect(input_spec: str, output: str, tiny_models: dict[str, str],
               beam_args: list[str] | None = None, **overrides) -> detect.DetectSummary:
    classifier = inference.inspect_model(tiny_models["classifier"], "classifier")
    identifier = inference.inspect_model(tiny_models["identifier"], "identifier")
    options = DetectOptions(input=input_spec, output=output, classifier_path=classifier.path,
                            identifier_path=identifier.path, batch_size=4, **overrides)
    return detect.run(options, classifier, identifier, PipelineOptions(beam_args or []))


def read_table(output: str, table: str):
    files = glob.glob(os.path.join(output, table, "run_id=*", "*.parquet"))
    assert files, f"no {table} files written"
    return pq.read_table(files, schema=getattr(schemas, f"{table.upper()}_SCHEMA"))


@pytest.fixture(scope="module")
def detect_run(mixed_folder, tiny_models, tmp_path_factory):
    folder = os.path.dirname(mixed_folder["sharp"][0])
    output = str(tmp_path_factory.mktemp("detect") / "out")
    summary = run_detect(folder, output, tiny_models)
    return {"summary": summary, "output": output, "expected": mixed_folder}


def test_every_input_is_in_exactly_one_table(detect_run) -> None:
    expected = detect_run["expected"]
    results = read_table(detect_run["output"], "results").to_pylist()
    errors = read_table(detect_run["output"], "errors").to_pylist()
    all_inputs = sorted(sum(expected.values(), []))
    written = sorted([row["image_uri"] for row in results] + [row["image_uri"] for row in errors])
    assert written == all_inputs


def test_summary_counts_add_up(detect_run) -> None:
    summary, expected = detect_run["summary"], detect_run["expected"]
    assert summary.matched == sum(len(v) for v in expected.values())
    assert (summary.sharp, summary.blurry, summary.errors) == (
        len(expected["sharp"]), len(expected["blurry"]), len(expected["error"]))
    assert summary.reconciled


def test_verdicts_follow_the_image_content(detect_run) -> None:
    rows = {row["image_uri"]: row for row in read_table(detect_run["output"], "results").to_pylist()}
    for uri in detect_run["expected"]["sharp"]:
        assert rows[uri]["is_blurry"] is False, uri
    for uri in detect_run["expected"]["blurry"]:
        assert rows[uri]["is_blurry"] is True, uri


def test_identifier_runs_only_on_the_blurry_branch(detect_run) -> None:
    summary = detect_run["summary"]
    assert summary.segmented == summary.blurry
    for row in read_table(detect_run["output"], "results").to_pylist():
        if row["is_blurry"]:
            assert row["identifier_model"].startswith("tiny_identifier.keras@sha256:")
            assert row["mask_png"] and row["blur_area_fraction"] is not None
        else:
            for column in ("identifier_model", "mask_png", "mask_width", "blur_area_fraction",
                           "blur_region_count", "blur_regions"):
                assert row[column] is None, column


def test_half_blurred_image_mask_covers_its_left_half(detect_run) -> None:
    rows = read_table(detect_run["output"], "results").to_pylist()
    row = next(r for r in rows if r["image_uri"].endswith("half_blurred.png"))
    mask = masks.decode_mask_png(row["mask_png"])
    assert mask.shape == (row["mask_height"], row["mask_width"])
    width = mask.shape[1]
    assert mask[:, : width // 2 - 1].mean() > 0.8
    assert mask[:, width // 2 + 1:].mean() < 0.3
    assert 0.4 < row["blur_area_fraction"] < 0.7
    largest = row["blur_regions"][0]
    # Box in original pixels (96 x 96): the left half, give or take one mask pixel (6 px).
    assert largest["x_min"] == 0 and largest["y_min"] == 0 and largest["y_max"] == 96
    assert 42 <= largest["x_max"] <= 66


def test_corrupt_images_go_to_errors_with_reasons(detect_run) -> None:
    errors = {os.path.basename(row["image_uri"]): row
              for row in read_table(detect_run["output"], "errors").to_pylist()}
    assert errors["truncated.jpg"]["error_type"] == "decode_error"
    assert errors["empty.jpg"]["error_type"] == "empty_file"
    assert errors["error_page.jpg"]["error_type"] == "not_an_image"
    assert errors["random.png"]["error_type"] == "not_an_image"
    assert errors["bomb.png"]["error_type"] == "too_many_pixels"
    assert all(row["stage"] == schemas.STAGE_DECODE and row["error_message"]
               for row in errors.values())


def test_parquet_files_have_exactly_the_schema_module_schemas(detect_run) -> None:
    for table, schema in (("results", schemas.RESULTS_SCHEMA), ("errors", schemas.ERRORS_SCHEMA)):
        for path in glob.glob(os.path.join(detect_run["output"], table, "*", "*.parquet")):
            assert pq.read_schema(path).remove_metadata().equals(schema), path


def test_readme_duckdb_query_runs_as_written(detect_run, monkeypatch) -> None:
    text = open(README, encoding="utf-8").read()
    block = re.search(r"<!-- duckdb-example -->\s*```sql\n(.*?)```", text, re.S)
    assert block, "README lacks the DuckDB example block"
    # The README's query reads 'out/...': run it from the folder that holds our 'out'.
    monkeypatch.chdir(os.path.dirname(detect_run["output"]))
    rows = duckdb.sql(block.group(1)).fetchall()
    blurry = detect_run["summary"].blurry
    assert len(rows) == min(blurry, 20) and rows


def test_second_run_into_same_output_adds_its_own_run_folder(detect_run, tiny_models) -> None:
    folder = os.path.dirname(detect_run["expected"]["sharp"][0])
    second = run_detect(os.path.join(folder, "sharp_*.png"), detect_run["output"], tiny_models,
                        run_id="second-run")
    assert second.matched == 4 and second.reconciled
    runs = sorted(os.listdir(os.path.join(detect_run["output"], "results")))
    assert "run_id=second-run" in runs and len(runs) == 2


def test_multi_processing_local_workers_give_the_same_verdicts(
        detect_run, tiny_models, tmp_path) -> None:
    folder = os.path.dirname(detect_run["expected"]["sharp"][0])
    summary = run_detect(folder, str(tmp_path / "out"), tiny_models,
                         ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert summary.reconciled and summary.blurry == detect_run["summary"].blurry
    verdicts = {r["image_uri"]: r["is_blurry"]
                for r in read_table(str(tmp_path / "out"), "results").to_pylist()}
    reference = {r["image_uri"]: r["is_blurry"]
                 for r in read_table(detect_run["output"], "results").to_pylist()
                 if r["run_id"] != "second-run"}
    assert verdicts == reference


def test_overlays_are_written_for_blurry_images_only(mixed_folder, tiny_models, tmp_path) -> None:
    import numpy as np
    from PIL import Image

    folder = os.path.dirname(mixed_folder["sharp"][0])
    overlays_dir = str(tmp_path / "overlays")
    run_detect(folder, str(tmp_path / "out"), tiny_models, overlays_dir=overlays_dir)
    rows = read_table(str(tmp_path / "out"), "results").to_pylist()
    for row in rows:
        if not row["is_blurry"]:
            assert row["overlay_uri"] is None
            continue
        assert row["overlay_uri"] == os.path.join(overlays_dir, row["image_sha256"] + ".jpg")
        assert os.path.exists(row["overlay_uri"])
    assert sorted(os.listdir(overlays_dir)) == sorted(
        {row["image_sha256"] + ".jpg" for row in rows if row["is_blurry"]})
    half = next(r for r in rows if r["image_uri"].endswith("half_blurred.png"))
    overlay = np.asarray(Image.open(half["overlay_uri"]).convert("RGB"), np.float32)
    redness = overlay[..., 0] - overlay[..., 1:].mean(axis=2)
    width = overlay.shape[1]
    # Tinted red where the mask says blurred (left half), untouched texture on the right.
    assert redness[10:-10, 5: width // 2 - 10].mean() > 60
    assert abs(redness[10:-10, width // 2 + 10: -5].mean()) < 30


def _records(folder: str, names: list[str], view) -> list:
    from sbdn_pipeline.inference import ImageSource

    records = []
    for name in names:
        path = os.path.join(folder, name)
        data = open(path, "rb").read()
        source = ImageSource(data)
        decoded = source.decode_for(view)
        records.append(detect.ImageRecord(uri=path, sha256="x", size_bytes=len(data),
                                          modified_at_us=None, format=decoded.format,
                                          width=decoded.width, height=decoded.height,
                                          source=source))
    return records


def test_classify_blur_turns_a_failing_image_into_its_own_error_row(
        mixed_folder, tiny_models) -> None:
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    classifier = inference.inspect_model(tiny_models["classifier"], "classifier")
    options = DetectOptions(input="unused", output="unused", classifier_path=classifier.path,
                            identifier_path=classifier.path, batch_size=4, classifier_tiles=4)
    folder = os.path.dirname(mixed_folder["sharp"][0])
    records = _records(folder, ["sharp_0.png", "blurred_0.png", "sharp_1.png"],
                       detect.classifier_view(classifier, options))
    records[1].source = None  # its tiles cannot be made: must fail alone, not the batch
    with TestPipeline() as pipeline:
        out = (pipeline | beam.Create(records)
               | detect.ClassifyBlur(classifier, options, "run-1"))
        assert_that(out["classified"] | "Verdicts" >> beam.Map(
            lambda r: (os.path.basename(r.uri), r.blur_probability < 0.5)),
            equal_to([("sharp_0.png", True), ("sharp_1.png", True)]), label="classified")
        assert_that(out["errors"] | "Errors" >> beam.Map(
            lambda row: (os.path.basename(row["image_uri"]), row["stage"], row["error_type"])),
            equal_to([("blurred_0.png", schemas.STAGE_CLASSIFY, "tiling_error")]),
            label="errors")


def test_segment_blur_turns_a_failing_image_into_its_own_error_row(
        mixed_folder, tiny_models) -> None:
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    classifier = inference.inspect_model(tiny_models["classifier"], "classifier")
    identifier = inference.inspect_model(tiny_models["identifier"], "identifier")
    options = DetectOptions(input="unused", output="unused", classifier_path=classifier.path,
                            identifier_path=identifier.path, batch_size=4)
    folder = os.path.dirname(mixed_folder["sharp"][0])
    records = _records(folder, ["blurred_0.png", "blurred_1.png"],
                       detect.identifier_view(identifier, options))
    for record in records:
        record.blur_probability = 0.9
    records[0].source = None
    with TestPipeline() as pipeline:
        out = (pipeline | beam.Create(records)
               | detect.SegmentBlur(identifier, options, "c", "run-1"))
        assert_that(out["rows"] | "Rows" >> beam.Map(
            lambda row: (os.path.basename(row["image_uri"]), row["blur_area_fraction"] > 0.5)),
            equal_to([("blurred_1.png", True)]), label="rows")
        assert_that(out["errors"] | "Errors" >> beam.Map(
            lambda row: (os.path.basename(row["image_uri"]), row["stage"], row["error_type"])),
            equal_to([("blurred_0.png", schemas.STAGE_SEGMENT, "tiling_error")]),
            label="errors")


def test_probability_does_not_depend_on_identifier_or_overlay_options(
        mixed_folder, tiny_models, tmp_path) -> None:
    from tests import imagegen

    # Large JPEGs: the classifier's plan is at 2x (half-size DCT decode), the identifier's
    # letterbox would take an 8x DCT decode, overlays want more pixels: P must not move.
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, pixels in (("sharp.jpg", imagegen.sharp_image(600, 800, 1)),
                         ("blurred.jpg", imagegen.blurred_image(600, 800, 2))):
        (folder / name).write_bytes(imagegen.encode(pixels, "JPEG", quality=95))
    (folder / "small.png").write_bytes(
        imagegen.encode(imagegen.blurred_image(96, 96, 3), "PNG"))
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    run_detect(str(folder), first, tiny_models, identifier_tiles=0)
    run_detect(str(folder), second, tiny_models, identifier_tiles=8,
               overlays_dir=str(tmp_path / "overlays"))
    a = {r["image_uri"]: r["blur_probability"] for r in read_table(first, "results").to_pylist()}
    b = {r["image_uri"]: r["blur_probability"] for r in read_table(second, "results").to_pylist()}
    assert a == b and len(a) == 3
    # The mask is refined back to the resolution the identifier's tiles analysed.
    from sbdn_pipeline import tiling

    analysed = tiling.plan_tiles(600, 800, imagegen.TINY_INPUT_SIZE, 8, align=4, max_scale=None)
    assert analysed.covers and analysed.scale > 2  # 8 tiles of 64 px cannot cover it at 2x
    widths = {r["image_uri"]: r["mask_width"] for r in read_table(second, "results").to_pylist()}
    assert widths[str(folder / "blurred.jpg")] == analysed.scaled_width


def test_letterbox_only_classifier_is_available_and_differs_from_tiles(
        mixed_folder, tiny_models, tmp_path) -> None:
    folder = os.path.dirname(mixed_folder["sharp"][0])
    pattern = os.path.join(folder, "*.png")
    # 4 tiles: 64 px tiles at native scale (with budget 1 a 96 px image is one tile at 1.5x,
    # which is its letterbox).
    run_detect(pattern, str(tmp_path / "tiles"), tiny_models, classifier_tiles=4)
    run_detect(pattern, str(tmp_path / "letterbox"), tiny_models, classifier_tiles=0)
    tiles = read_table(str(tmp_path / "tiles"), "results").to_pylist()
    boxed = read_table(str(tmp_path / "letterbox"), "results").to_pylist()
    assert [r["is_blurry"] for r in sorted(tiles, key=lambda r: r["image_uri"])] == [
        r["is_blurry"] for r in sorted(boxed, key=lambda r: r["image_uri"])]
    assert {r["blur_probability"] for r in tiles} != {r["blur_probability"] for r in boxed}


def _failing_model_calls(monkeypatch) -> None:
    def fail(*_args, **_kwargs):
        raise RuntimeError("model call failed")

    monkeypatch.setattr(inference, "predict_stacks", fail)


def _stage_options(model: inference.ModelInfo) -> DetectOptions:
    """Options for running one model stage on its own (no INPUT or output involved)."""
    return DetectOptions(input="unused", output="unused", classifier_path=model.path,
                         identifier_path=model.path, batch_size=4)


def test_classify_blur_turns_a_failed_model_call_into_a_row_per_image(
        mixed_folder, tiny_models, monkeypatch) -> None:
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    model = inference.inspect_model(tiny_models["classifier"], "classifier")
    _failing_model_calls(monkeypatch)
    options = _stage_options(model)
    folder = os.path.dirname(mixed_folder["sharp"][0])
    records = _records(folder, ["sharp_0.png", "blurred_0.png"],
                       detect.classifier_view(model, options))
    with TestPipeline() as pipeline:
        out = pipeline | beam.Create(records) | detect.ClassifyBlur(model, options, "run-1")
        assert_that(out["classified"], equal_to([]), label="classified")
        assert_that(out["errors"] | "Errors" >> beam.Map(
            lambda row: (os.path.basename(row["image_uri"]), row["stage"], row["error_type"])),
            equal_to([(name, schemas.STAGE_CLASSIFY, "inference_error")
                      for name in ("sharp_0.png", "blurred_0.png")]), label="errors")


def test_classify_blur_refuses_outputs_that_are_not_probabilities(
        mixed_folder, tiny_models, tmp_path) -> None:
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from tests import imagegen

    broken = inference.inspect_model(imagegen.save_constant_classifier(
        str(tmp_path / "nan.keras"), float("nan")), "classifier")
    options = _stage_options(broken)
    folder = os.path.dirname(mixed_folder["sharp"][0])
    records = _records(folder, ["sharp_0.png"], detect.classifier_view(broken, options))
    with TestPipeline() as pipeline:
        out = pipeline | beam.Create(records) | detect.ClassifyBlur(broken, options, "run-1")
        assert_that(out["classified"], equal_to([]), label="classified")
        assert_that(out["errors"] | "Errors" >> beam.Map(lambda row: row["error_type"]),
                    equal_to(["invalid_model_output"]), label="errors")


def test_segment_blur_turns_a_failed_model_call_into_a_row_per_image(
        mixed_folder, tiny_models, monkeypatch) -> None:
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    model = inference.inspect_model(tiny_models["identifier"], "identifier")
    _failing_model_calls(monkeypatch)
    options = _stage_options(model)
    folder = os.path.dirname(mixed_folder["sharp"][0])
    records = _records(folder, ["blurred_0.png"], detect.identifier_view(model, options))
    records[0].blur_probability = 0.9
    with TestPipeline() as pipeline:
        out = pipeline | beam.Create(records) | detect.SegmentBlur(model, options, "c", "r")
        assert_that(out["rows"], equal_to([]), label="rows")
        assert_that(out["errors"] | "Errors" >> beam.Map(
            lambda row: (row["stage"], row["error_type"])),
            equal_to([(schemas.STAGE_SEGMENT, "inference_error")]), label="errors")
