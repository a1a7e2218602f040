"""Scheduled runs: --skip-existing, changed files, --retry-errors, and kill-and-rerun."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from sbdn_pipeline import schemas
from tests import imagegen
from tests.beam_jobs.test_detect import read_table, run_detect


def all_rows(output: str) -> list[tuple[str, str]]:
    """(table, uri) of every row in every published file; each file must be whole."""
    rows = []
    for table in (schemas.RESULTS_DIR, schemas.ERRORS_DIR):
        for path in glob.glob(os.path.join(output, table, "*", "*")):
            assert path.endswith(".parquet"), f"unexpected file in a table folder: {path}"
            rows += [(table, uri) for uri in pq.read_table(path).column("image_uri").to_pylist()]
    return rows


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return os.path.abspath(path)


@pytest.fixture()
def small_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    paths = {
        "sharp": _write(str(folder / "a_sharp.png"), imagegen.encode(imagegen.sharp_image(96, 96, 1), "PNG")),
        "blurred": _write(str(folder / "b_blurred.png"), imagegen.encode(imagegen.blurred_image(96, 96, 2), "PNG")),
        "broken": _write(str(folder / "c_broken.jpg"), b"<html>not found</html>"),
    }
    return str(folder), paths


def test_skip_existing_processes_only_new_and_changed_files(small_folder, tiny_models,
                                                            tmp_path) -> None:
    folder, paths = small_folder
    output = str(tmp_path / "out")
    first = run_detect(folder, output, tiny_models, run_id="day1")
    assert (first.matched, first.sharp, first.blurry, first.errors) == (3, 1, 1, 1)

    new = _write(os.path.join(folder, "d_new.png"),
                 imagegen.encode(imagegen.blurred_image(96, 96, 3), "PNG"))
    # Same URI, new content: the sharp image is replaced by a blurred one.
    _write(paths["sharp"], imagegen.encode(imagegen.blurred_image(96, 96, 4), "PNG"))
    os.utime(paths["sharp"], (time.time() + 5, time.time() + 5))

    second = run_detect(folder, output, tiny_models, run_id="day2", skip_existing=True)
    assert second.matched == 4 and second.skipped == 2 and second.reconciled
    day2 = {row["image_uri"]: row for row in read_table(output, "results").to_pylist()
            if row["run_id"] == "day2"}
    assert set(day2) == {new, paths["sharp"]}
    assert day2[paths["sharp"]]["is_blurry"] is True

    third = run_detect(folder, output, tiny_models, run_id="day3", skip_existing=True)
    assert third.matched == 4 and third.skipped == 4
    assert (third.sharp, third.blurry, third.errors) == (0, 0, 0)


def test_retry_errors_reprocesses_only_failed_images(small_folder, tiny_models, tmp_path) -> None:
    folder, paths = small_folder
    output = str(tmp_path / "out")
    run_detect(folder, output, tiny_models, run_id="first")
    retry = run_detect(folder, output, tiny_models, run_id="retry", skip_existing=True,
                       retry_errors=True)
    assert retry.skipped == 2 and retry.errors == 1
    errors = [row for row in read_table(output, "errors").to_pylist() if row["run_id"] == "retry"]
    assert [row["image_uri"] for row in errors] == [paths["broken"]]


def test_run_id_that_could_escape_the_output_is_refused(tiny_models, tmp_path) -> None:
    for bad in ("../escape", "/abs", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="run id"):
            run_detect(str(tmp_path), str(tmp_path / "out"), tiny_models, run_id=bad)


def test_killed_run_leaves_no_partial_file_and_rerun_completes_exactly_once(
        tiny_models, tmp_path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    inputs = []
    for index in range(300):
        make = imagegen.sharp_image if index % 2 else imagegen.blurred_image
        inputs.append(_write(str(folder / f"img_{index:03d}.png"),
                             imagegen.encode(make(96, 96, index), "PNG")))
    inputs.append(_write(str(folder / "zz_corrupt.jpg"), b"\xff\xd8\xff garbage"))
    output = tmp_path / "out"
    command = [sys.executable, "-m", "sbdn_pipeline.cli", "detect", str(folder),
               "--output", str(output), "--classifier", tiny_models["classifier"],
               "--identifier", tiny_models["identifier"], "--batch-size", "2"]
    victim = subprocess.Popen(command + ["--run-id", "killed"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill once Beam has started writing output files (mid-run), or after 60 s at the latest.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and victim.poll() is None:
        if glob.glob(str(output / schemas.STAGING_DIR / "killed" / "*" / "beam-temp-*" / "*")):
            break
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()

    rows_after_kill = all_rows(str(output))  # every file readers can see is a whole file
    assert len(rows_after_kill) == len(set(rows_after_kill))

    rerun = subprocess.run(command + ["--run-id", "rerun", "--skip-existing"],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    uris = [uri for _, uri in all_rows(str(output))]
    assert sorted(uris) == sorted(inputs)  # each input exactly once across both runs
    assert not glob.glob(str(output / "results" / "**" / "*.partial"), recursive=True)
    shutil.rmtree(output / schemas.STAGING_DIR, ignore_errors=True)
