"""Local default parallelism and run-id validation."""

from __future__ import annotations

import pytest

from sbdn_pipeline import options


def test_local_runs_use_a_worker_per_core_by_default(monkeypatch) -> None:
    monkeypatch.setattr(options.os, "cpu_count", lambda: 2)
    assert options.with_local_parallelism([]) == [
        "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    monkeypatch.setattr(options.os, "cpu_count", lambda: 64)
    assert "--direct_num_workers=4" in options.with_local_parallelism([])


@pytest.mark.parametrize("args", [["--runner=DataflowRunner"], ["--runner", "FlinkRunner"],
                                  ["--direct_num_workers=1"],
                                  ["--direct_running_mode=in_memory"]])
def test_user_choices_of_runner_or_parallelism_are_kept(args, monkeypatch) -> None:
    monkeypatch.setattr(options.os, "cpu_count", lambda: 8)
    assert options.with_local_parallelism(args) == args


def test_single_core_machines_stay_in_process(monkeypatch) -> None:
    monkeypatch.setattr(options.os, "cpu_count", lambda: 1)
    assert options.with_local_parallelism([]) == []


def test_small_inputs_run_in_process_and_large_or_unknown_ones_get_workers(monkeypatch) -> None:
    monkeypatch.setattr(options.os, "cpu_count", lambda: 2)
    small = options.ONE_PROCESS_MAX_IMAGES - 1
    assert options.with_local_parallelism([], input_count=small) == []
    workers = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert options.with_local_parallelism([], input_count=small + 1) == workers
    assert options.with_local_parallelism([], input_count=None) == workers  # a bucket
