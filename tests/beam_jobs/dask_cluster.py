"""A dask.distributed cluster of two worker processes on localhost, for the Dask tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """Scheduler address of a LocalCluster: 2 worker processes, 1 thread each, no dashboard."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
