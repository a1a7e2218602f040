"""The same detect pipeline through Beam's portable runner path (job service + LOOPBACK).

This is the path Flink, Spark and other portable runners take, so passing here shows the job
does not depend on the in-process runner.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.beam_jobs.test_detect import read_table, run_detect


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def job_endpoint():
    port = _free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
         f"--port={port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            break
        except OSError:
            if service.poll() is not None:
                pytest.fail("Beam job service exited at start-up")
            time.sleep(0.3)
    else:
        service.kill()
        pytest.fail("Beam job service did not start within 60 s")
    yield f"localhost:{port}"
    service.terminate()
    service.wait(timeout=30)


def test_portable_runner_gives_identical_verdicts(job_endpoint, mixed_folder, tiny_models,
                                                  tmp_path) -> None:
    folder = os.path.dirname(mixed_folder["sharp"][0])
    in_process = run_detect(folder, str(tmp_path / "direct"), tiny_models)
    portable = run_detect(
        folder, str(tmp_path / "portable"), tiny_models,
        ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
         "--environment_type=LOOPBACK"],
    )

    def verdicts(output: str) -> dict[str, tuple[bool, float]]:
        return {row["image_uri"]: (row["is_blurry"], round(row["blur_probability"], 5))
                for row in read_table(output, "results").to_pylist()}

    def errors(output: str) -> dict[str, str]:
        return {row["image_uri"]: row["error_type"]
                for row in read_table(output, "errors").to_pylist()}

    assert verdicts(str(tmp_path / "portable")) == verdicts(str(tmp_path / "direct"))
    assert errors(str(tmp_path / "portable")) == errors(str(tmp_path / "direct"))
    assert (portable.matched, portable.sharp, portable.blurry, portable.errors) == (
        in_process.matched, in_process.sharp, in_process.blurry, in_process.errors)
