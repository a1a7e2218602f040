"""Broken and hostile input: each file gets exactly one row with a clear reason; the job goes on."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from beam_jobs import detect
from sbdn_pipeline import inputs, schemas
from sbdn_pipeline.cli import cli
from tests import imagegen
from tests.beam_jobs.test_detect import read_table, run_detect


def _simulate_hostile_file_system(patch: pytest.MonkeyPatch, folder: str) -> None:
    """What root on ext4 cannot set up for real: a folder we may not list, files that change
    between listing and reading, and an mtime beyond year 9999 (ext4 clamps to 2446)."""
    locked = os.path.join(folder, imagegen.HOSTILE_LOCKED_FOLDER)
    far_future = os.path.join(folder, imagegen.HOSTILE_FAR_FUTURE)
    real_scandir, real_stat, real_stat_input = os.scandir, os.stat, inputs.stat_input

    def scandir(path="."):
        if isinstance(path, (str, os.PathLike)) and os.path.abspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    def stat(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) == far_future:
            return os.stat_result(tuple(result)[:10],
                                  {"st_mtime_ns": imagegen.FAR_FUTURE_MTIME_NS})
        return result

    def stat_input(uri: str) -> inputs.InputFile:
        found = real_stat_input(uri)  # listed and stat'd; then the file changes
        if os.path.basename(uri) == imagegen.HOSTILE_VANISHES:
            os.remove(uri)
        elif os.path.basename(uri) == imagegen.HOSTILE_EMPTIED:
            open(uri, "wb").close()
        return found

    patch.setattr(os, "scandir", scandir)
    patch.setattr(os, "stat", stat)
    patch.setattr(inputs, "stat_input", stat_input)


@pytest.fixture(scope="module")
def hostile_run(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    expected = imagegen.write_hostile_files(str(folder))
    # The output lies inside the input, named through a symlink (issue 16, F5).
    output = str(folder / imagegen.HOSTILE_OUTPUT)
    with pytest.MonkeyPatch.context() as patch:
        _simulate_hostile_file_system(patch, str(folder))
        summary = run_detect(str(folder), output, tiny_models)
    return {"summary": summary, "output": output, "expected": expected, "folder": str(folder)}


def _rows(hostile_run, table: str) -> dict[str, dict]:
    return {os.path.basename(r["image_uri"]): r
            for r in read_table(hostile_run["output"], table).to_pylist()}


def test_the_suite_covers_enough_kinds(hostile_run) -> None:
    with_rows = [name for name, (table, _) in hostile_run["expected"].items() if table != "none"]
    assert len(with_rows) >= 45, len(with_rows)


def test_every_hostile_file_has_exactly_one_row(hostile_run) -> None:
    results = read_table(hostile_run["output"], "results").to_pylist()
    errors = read_table(hostile_run["output"], "errors").to_pylist()
    names = [os.path.basename(r["image_uri"]) for r in results + errors]
    expected = [name for name, (table, _) in hostile_run["expected"].items() if table != "none"]
    assert sorted(names) == sorted(expected)
    summary = hostile_run["summary"]
    assert summary.reconciled and summary.matched == len(expected)


def test_nothing_below_excluded_entries_is_read(hostile_run) -> None:
    """The run's own output (reached through a symlink), symlinked folders, locked files."""
    uris = [r["image_uri"] for table in ("results", "errors")
            for r in read_table(hostile_run["output"], table).to_pylist()]
    for name, (table, why) in hostile_run["expected"].items():
        if table == "none":
            bad = [uri for uri in uris if f"{os.sep}{name}" in uri]
            assert not bad, (name, why, bad)


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


def test_unreadable_folder_is_one_list_error_named_by_its_path(hostile_run) -> None:
    row = _rows(hostile_run, "errors")[imagegen.HOSTILE_LOCKED_FOLDER]
    assert row["stage"] == schemas.STAGE_LIST
    assert row["image_uri"] == os.path.join(hostile_run["folder"],
                                            imagegen.HOSTILE_LOCKED_FOLDER)
    assert "Permission denied" in row["error_message"]


def test_unrepresentable_mtime_is_null_and_the_image_still_classified(hostile_run) -> None:
    results = _rows(hostile_run, "results")
    assert results[imagegen.HOSTILE_FAR_FUTURE]["image_modified_at"] is None
    assert results["pre_epoch_mtime.png"]["image_modified_at"].year == 1906


def test_files_changed_after_listing_keep_their_listed_metadata(hostile_run) -> None:
    errors = _rows(hostile_run, "errors")
    assert "does not exist" in errors[imagegen.HOSTILE_VANISHES]["error_message"]
    assert errors[imagegen.HOSTILE_VANISHES]["image_size_bytes"] > 0  # from the listing
    assert errors[imagegen.HOSTILE_EMPTIED]["image_modified_at"] is not None


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


def _match(input_spec: str, files: list[str], errors: list[tuple[str, str, str, str]],
           exclude: str | None = None) -> int:
    """Run MatchInputs alone, in process; check its InputFiles' names and its errors rows
    (name, stage, error_type, a word of the message); return the matched count."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    def describe(row: dict) -> tuple[str, str, str, str]:
        word = next((w for _, _, _, w in errors if w in row["error_message"]), "")
        return os.path.basename(row["image_uri"]), row["stage"], row["error_type"], word

    pipeline = TestPipeline(runner=FnApiRunner())
    matched = pipeline | detect.MatchInputs(input_spec, exclude, "run-1")
    assert_that(matched["files"] | "Names" >> beam.Map(lambda f: os.path.basename(f.uri)),
                equal_to(files), label="files")
    assert_that(matched["errors"] | "Describe" >> beam.Map(describe), equal_to(errors),
                label="errors")
    result = pipeline.run()
    result.wait_until_finish()
    return detect._counter_value(result, detect.COUNTER_MATCHED)


def test_match_inputs_turns_a_failing_listing_into_an_error_row(tmp_path) -> None:
    manifest = tmp_path / "list.txt"
    manifest.write_bytes(b"a.jpg\n\xff\xfe not utf-8\n")  # cannot be decoded at all
    matched = _match(str(manifest), [], [
        ("list.txt", schemas.STAGE_LIST, "list_error", "UnicodeDecodeError")])
    assert matched == 1  # the row stands for the manifest's unknown lines


def test_match_inputs_turns_a_failing_stat_into_an_error_row(tmp_path, monkeypatch) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")
    real_stat_input = inputs.stat_input

    def stat_input(uri: str) -> inputs.InputFile:
        if uri.endswith("b.jpg"):
            raise OSError("metadata service down")
        return real_stat_input(uri)

    monkeypatch.setattr(inputs, "stat_input", stat_input)
    matched = _match(str(tmp_path), ["a.jpg"], [
        ("b.jpg", schemas.STAGE_LIST, "stat_error", "metadata service down")])
    assert matched == 2


def test_match_inputs_reports_unreadable_folders_and_skips_the_output(tmp_path,
                                                                     monkeypatch) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "locked").mkdir()
    (tmp_path / "real_out").mkdir()
    (tmp_path / "real_out" / "_sbdn_output.json").write_bytes(b"{}")
    os.symlink(tmp_path / "real_out", tmp_path / "link_to_out")
    patch_scandir = os.scandir

    def scandir(path="."):
        if isinstance(path, (str, os.PathLike)) and os.path.abspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return patch_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    matched = _match(str(tmp_path), ["a.jpg"], [
        ("locked", schemas.STAGE_LIST, "unreadable_folder", "Permission denied")],
        exclude=str(tmp_path / "link_to_out"))
    assert matched == 2


def test_rows_of_an_unrepresentable_mtime_are_written_and_skip_existing_matches_them(
        tmp_path, monkeypatch) -> None:
    path = tmp_path / "future.png"
    path.write_bytes(b"x" * 10)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: os.stat_result(
        tuple(real_stat(p, *a, **k))[:10], {"st_mtime_ns": imagegen.FAR_FUTURE_MTIME_NS}))
    listed = inputs.stat_input(str(path))
    options = detect.DetectOptions(input="in", output="out", classifier_path="c",
                                   identifier_path="i")
    record = detect.ImageRecord(uri=str(path), sha256="0" * 64, size_bytes=10,
                                modified_at_us=imagegen.FAR_FUTURE_MTIME_NS // 1000,
                                format="PNG", width=96, height=96, source=None,
                                blur_probability=0.1)
    row = detect.sharp_result_row(record, options, "c", "run-1")  # raised OverflowError
    error = detect.error_row(str(path), "read", "x", "y", "run-1",
                             modified_at_us=record.modified_at_us)
    assert row["image_modified_at"] is None and error["image_modified_at"] is None
    # --skip-existing compares (uri, (size, mtime)): NULL on both sides still matches.
    assert detect.previous_row_key(row) == (listed.uri, listed.version_key)
