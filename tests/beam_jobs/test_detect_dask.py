"""The detect job on a real distributed engine: Beam's DaskRunner (our fixed subclass) on a
dask.distributed cluster of two worker processes on localhost."""

from __future__ import annotations

import os

import pytest

from tests.beam_jobs.dask_cluster import dask_address  # noqa: F401 - a fixture
from tests.beam_jobs.test_detect import read_table, run_detect

distributed = pytest.importorskip("distributed")


def _verdicts(output: str) -> dict[str, tuple[bool, float]]:
    return {row["image_uri"]: (row["is_blurry"], round(row["blur_probability"], 5))
            for row in read_table(output, "results").to_pylist()}


def _errors(output: str) -> dict[str, str]:
    return {row["image_uri"]: row["error_type"]
            for row in read_table(output, "errors").to_pylist()}


def test_dask_runner_gives_the_fnapi_runners_verdicts(dask_address, mixed_folder, tiny_models,
                                                      tmp_path) -> None:
    folder = os.path.dirname(mixed_folder["sharp"][0])
    reference = run_detect(folder, str(tmp_path / "fnapi"), tiny_models)
    dask_args = ["--runner=DaskRunner", f"--dask_client_address={dask_address}"]
    output = str(tmp_path / "dask")
    with distributed.Client(dask_address) as client, distributed.get_task_stream(client) as tasks:
        summary = run_detect(folder, output, tiny_models, dask_args)

    all_inputs = sorted(sum(mixed_folder.values(), []))
    written = sorted([*_verdicts(output), *_errors(output)])
    assert written == all_inputs  # every input in exactly one table, once
    assert _verdicts(output) == _verdicts(str(tmp_path / "fnapi"))
    assert _errors(output) == _errors(str(tmp_path / "fnapi"))
    # The summary's counts are Beam counters, which the runner collects from the workers.
    assert (summary.matched, summary.sharp, summary.blurry, summary.errors, summary.segmented) == (
        reference.matched, reference.sharp, reference.blurry, reference.errors,
        reference.segmented)
    assert summary.reconciled and summary.matched == len(all_inputs)
    bundle_workers = {task["worker"] for task in tasks.data if "_run_bundle" in str(task["key"])}
    assert len(bundle_workers) == 2, "the work did not spread over both workers"

    # An incremental run reads the earlier output back (a Beam Read) and skips everything.
    again = run_detect(folder, output, tiny_models, dask_args, skip_existing=True)
    assert (again.matched, again.skipped, again.sharp + again.blurry + again.errors) == (
        len(all_inputs), len(all_inputs), 0)
