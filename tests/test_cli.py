"""The `sbdn` command line: help, argument validation, and a full run."""

from __future__ import annotations

import os

from click.testing import CliRunner

from sbdn_pipeline.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_help_explains_every_detect_option_with_an_example() -> None:
    result = invoke("detect", "--help")
    assert result.exit_code == 0
    for option in ("--output", "--classifier", "--identifier", "--blur-threshold",
                   "--mask-threshold", "--batch-size", "--max-pixels", "--run-id"):
        assert option in result.output
    assert "Examples:" in result.output and "--runner" in result.output
    top = invoke("--help")
    assert top.exit_code == 0 and "detect" in top.output and "Example" in top.output


def _assert_one_line_failure(result, fragment: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and fragment in lines[0], lines[0]


def test_input_that_matches_nothing_fails_before_work(tmp_path, tiny_models) -> None:
    result = invoke("detect", str(tmp_path / "*.jpg"), "--output", str(tmp_path / "out"),
                    "--classifier", tiny_models["classifier"],
                    "--identifier", tiny_models["identifier"])
    _assert_one_line_failure(result, "matched no files")
    assert not (tmp_path / "out").exists()


def test_unreadable_model_fails_before_work(tmp_path, mixed_folder, tiny_models) -> None:
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"garbage")
    result = invoke("detect", mixed_folder["sharp"][0], "--output", str(tmp_path / "out"),
                    "--classifier", str(bad), "--identifier", tiny_models["identifier"])
    _assert_one_line_failure(result, "cannot load Keras model")
    result = invoke("detect", mixed_folder["sharp"][0], "--output", str(tmp_path / "out"),
                    "--classifier", tiny_models["classifier"],
                    "--identifier", str(tmp_path / "missing.keras"))
    _assert_one_line_failure(result, "not found")
    assert not (tmp_path / "out").exists()


def test_output_that_is_not_an_sbdn_folder_is_refused(tmp_path, mixed_folder, tiny_models) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.docx").write_bytes(b"x")
    result = invoke("detect", mixed_folder["sharp"][0], "--output", str(tmp_path / "precious"),
                    "--classifier", tiny_models["classifier"],
                    "--identifier", tiny_models["identifier"])
    _assert_one_line_failure(result, "is not an sbdn output folder")
    assert os.listdir(tmp_path / "precious") == ["thesis.docx"]


def test_bad_option_value_is_rejected(tmp_path, mixed_folder) -> None:
    result = invoke("detect", mixed_folder["sharp"][0], "--output", str(tmp_path / "out"),
                    "--blur-threshold", "1.5")
    assert result.exit_code == 2 and "blur-threshold" in result.output


def test_detect_prints_counts_that_add_up_and_passes_beam_flags(
        tmp_path, mixed_folder, tiny_models) -> None:
    folder = os.path.dirname(mixed_folder["sharp"][0])
    result = invoke("detect", folder, "--output", str(tmp_path / "out"),
                    "--classifier", tiny_models["classifier"],
                    "--identifier", tiny_models["identifier"], "--run-id", "cli-run",
                    "--direct_num_workers=1")
    assert result.exit_code == 0, result.output
    total = sum(len(v) for v in mixed_folder.values())
    assert (f"matched {total} = sharp {len(mixed_folder['sharp'])} + "
            f"blurry {len(mixed_folder['blurry'])} + errors {len(mixed_folder['error'])}"
            in result.output)
    assert (tmp_path / "out" / "results" / "run_id=cli-run").is_dir()


def test_summary_json_has_the_counts_and_timings(tmp_path, mixed_folder, tiny_models) -> None:
    import json

    folder = os.path.dirname(mixed_folder["sharp"][0])
    summary_path = tmp_path / "summary.json"
    result = invoke("detect", folder, "--output", str(tmp_path / "out"), "-q",
                    "--classifier", tiny_models["classifier"],
                    "--identifier", tiny_models["identifier"], "--direct_num_workers=1",
                    "--summary-json", str(summary_path))
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_path.read_text())
    total = sum(len(v) for v in mixed_folder.values())
    assert summary["matched"] == total and summary["reconciled"] is True
    assert 0 < summary["first_result_seconds"] <= summary["wall_seconds"]
