"""Minimal reproductions of Beam 2.77's DaskRunner bugs, and the same pipelines on ours.

Each pipeline is tiny and uses no models. On Beam's runner the assertions document what it
gets wrong (they fail once Beam fixes it: then ``SbdnDaskRunner`` can go); on
``sbdn_pipeline.dask_runner.SbdnDaskRunner`` they show the right answer. See the module
docstring of ``sbdn_pipeline/dask_runner.py``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from tests.beam_jobs.dask_cluster import dask_address  # noqa: F401 - a fixture

pytest.importorskip("distributed")
from apache_beam.runners.dask.dask_runner import DaskRunner  # noqa: E402

from sbdn_pipeline.dask_runner import SbdnDaskRunner  # noqa: E402
from sbdn_pipeline.options import make_runner  # noqa: E402


class _Record(beam.DoFn):
    """Sink: one file per element, so the test sees what reached this branch."""

    def __init__(self, folder: str, name: str):
        self._folder, self._name = folder, name

    def process(self, element):
        path = os.path.join(self._folder, f"{self._name}-{uuid.uuid4().hex}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(element, handle)
        yield element


def _seen(folder: str, name: str) -> list:
    return sorted(json.load(open(os.path.join(folder, f), encoding="utf-8"))
                  for f in os.listdir(folder) if f.startswith(f"{name}-"))


class _EvenOdd(beam.DoFn):
    def process(self, number: int):
        yield beam.pvalue.TaggedOutput("odd", number) if number % 2 else number


class _CountAtEnd(beam.DoFn):
    """Emits only in finish_bundle, like BatchElements' last batch and the file sinks."""

    def start_bundle(self) -> None:
        self._count = 0

    def process(self, _):
        self._count += 1

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        yield WindowedValue(self._count, 0, (GlobalWindow(),))


def _run(runner: beam.runners.PipelineRunner, address: str, build: Callable) -> Any:
    pipeline = beam.Pipeline(runner=runner,
                             options=PipelineOptions([f"--dask_client_address={address}"]))
    build(pipeline | beam.Create(list(range(6))))
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        result.client.close()  # Beam's result leaves its client connected
    return result


def test_tagged_outputs_reach_only_their_consumers(dask_address, tmp_path) -> None:
    def build(numbers):
        split = numbers | beam.ParDo(_EvenOdd()).with_outputs("odd", main="even")
        split.odd | beam.ParDo(_Record(str(tmp_path / "beam"), "odd"))

    os.makedirs(tmp_path / "beam")
    _run(DaskRunner(), dask_address, build)
    # Beam: the "odd" branch reads the ParDo's whole bag, main output included.
    assert _seen(str(tmp_path / "beam"), "odd") == [0, 1, 2, 3, 4, 5]

    def build_ours(numbers):
        split = numbers | beam.ParDo(_EvenOdd()).with_outputs("odd", main="even")
        split.odd | "Odd" >> beam.ParDo(_Record(str(tmp_path), "odd"))
        split.even | "Even" >> beam.ParDo(_Record(str(tmp_path), "even"))
        low, high = numbers | beam.Partition(lambda n, _: int(n >= 3), 2)
        low | "Low" >> beam.ParDo(_Record(str(tmp_path), "low"))
        high | "High" >> beam.ParDo(_Record(str(tmp_path), "high"))

    _run(SbdnDaskRunner(), dask_address, build_ours)
    assert _seen(str(tmp_path), "odd") == [1, 3, 5]
    assert _seen(str(tmp_path), "even") == [0, 2, 4]
    assert _seen(str(tmp_path), "low") == [0, 1, 2]
    assert _seen(str(tmp_path), "high") == [3, 4, 5]


def test_finish_bundle_output_is_kept(dask_address, tmp_path) -> None:
    def build(numbers):
        numbers | beam.ParDo(_CountAtEnd()) | beam.ParDo(_Record(str(tmp_path), "count"))

    _run(DaskRunner(), dask_address, build)
    assert _seen(str(tmp_path), "count") == []  # Beam: finish_bundle's output is dropped
    _run(SbdnDaskRunner(), dask_address, build)
    assert _seen(str(tmp_path), "count") == [6]


def test_every_sink_is_computed(dask_address, tmp_path) -> None:
    def build(numbers):
        numbers | "A" >> beam.ParDo(_Record(str(tmp_path), "a"))
        numbers | "B" >> beam.ParDo(_Record(str(tmp_path), "b"))

    _run(DaskRunner(), dask_address, build)
    # Beam: only the last transform's bag is computed.
    assert (_seen(str(tmp_path), "a"), _seen(str(tmp_path), "b")) == ([], list(range(6)))
    for name in os.listdir(tmp_path):
        os.remove(tmp_path / name)
    _run(SbdnDaskRunner(), dask_address, build)
    assert _seen(str(tmp_path), "a") == _seen(str(tmp_path), "b") == list(range(6))


def test_counters_are_reported(dask_address) -> None:
    def build(numbers):
        counter = Metrics.counter("test", "numbers")

        def count(number: int) -> int:
            counter.inc()
            return number

        numbers | beam.Map(count)

    with pytest.raises(NotImplementedError):  # Beam: no metrics at all
        _run(DaskRunner(), dask_address, build).metrics()
    result = _run(SbdnDaskRunner(), dask_address, build)
    counters = result.metrics().query(MetricsFilter().with_name("numbers"))["counters"]
    assert sum(c.committed for c in counters) == 6


def test_runner_flag_selects_the_fixed_runner() -> None:
    for name in ("DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"):
        assert isinstance(make_runner(PipelineOptions([f"--runner={name}"])), SbdnDaskRunner)
