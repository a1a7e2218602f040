"""Broken and hostile input: each file gets exactly one row with a clear reason; the job goes on."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from sbdn_pipeline.cli import cli
from tests import imagegen
from tests.beam_jobs.test_detect import read_table, run_detect


@pytest.fixture(scope="module")
def hostile_run(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    expected = imagegen.write_hostile_files(str(folder))
    output = str(tmp_path_factory.mktemp("hostile_out") / "out")
    summary = run_detect(str(folder), output, tiny_models)
    return {"summary": summary, "output": output, "expected": expected, "folder": str(folder)}


def test_every_hostile_file_has_exactly_one_row(hostile_run) -> None:
    results = read_table(hostile_run["output"], "results").to_pylist()
    errors = read_table(hostile_run["output"], "errors").to_pylist()
    names = [os.path.basename(r["image_uri"]) for r in results + errors]
    assert sorted(names) == sorted(hostile_run["expected"])
    assert hostile_run["summary"].reconciled


def test_each_broken_file_has_the_right_reason(hostile_run) -> None:
    errors = {os.path.basename(r["image_uri"]): r
              for r in read_table(hostile_run["output"], "errors").to_pylist()}
    for name, (table, reason) in hostile_run["expected"].items():
        if table == "errors":
            assert errors[name]["error_type"] == reason, (name, errors[name]["error_message"])
            assert errors[name]["error_message"]


def test_odd_but_valid_images_are_classified(hostile_run) -> None:
    results = {os.path.basename(r["image_uri"]): r
               for r in read_table(hostile_run["output"], "results").to_pylist()}
    for name, (table, blurry) in hostile_run["expected"].items():
        if table == "results":
            assert results[name]["is_blurry"] is blurry, name
    rotated = results["exif_rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (64, 96)  # stored 96x64, EXIF says rotate


def test_unicode_and_space_uris_are_kept_verbatim(hostile_run) -> None:
    uris = [r["image_uri"] for r in read_table(hostile_run["output"], "results").to_pylist()]
    assert os.path.join(hostile_run["folder"], "spaces and ünïcödé 图片.png") in uris


def test_mostly_broken_input_fails_loudly_after_writing(tiny_models, tmp_path) -> None:
    folder = tmp_path / "wrong_bucket"
    folder.mkdir()
    for index in range(4):
        (folder / f"page_{index}.jpg").write_bytes(b"<html>AccessDenied</html>")
    (folder / "ok.png").write_bytes(imagegen.encode(imagegen.sharp_image(96, 96, 0), "PNG"))
    result = CliRunner().invoke(cli, [
        "detect", str(folder), "--output", str(tmp_path / "out"),
        "--classifier", tiny_models["classifier"], "--identifier", tiny_models["identifier"],
        "--run-id", "wrong"])
    assert result.exit_code == 3
    assert "80% of the processed images failed" in result.output
    assert len(read_table(str(tmp_path / "out"), "errors")) == 4
    assert len(read_table(str(tmp_path / "out"), "results")) == 1
