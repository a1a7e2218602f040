"""Beam's DaskRunner (2.77) with the translation bugs that break the detect job worked around.

Beam's ``apache_beam.runners.dask`` translates a pipeline into one dask.bag per transform. In
2.77 that translation loses or misroutes data (``tests/beam_jobs/test_dask_runner.py``
reproduces each with a tiny pipeline and no models):

1. **Tagged outputs reach every consumer.** A ParDo's bag holds its main *and* tagged outputs
   mixed, and every consumer of any of its outputs reads that one bag: ``with_outputs`` and
   ``Partition`` send every element down every branch (the detect job's ImageRecords reach
   WriteToParquet, hence ``TypeError: 'ImageRecord' object is not subscriptable``).
2. **Output from ``finish_bundle`` is dropped** (the outputs are collected before it runs):
   BatchElements' last batch, so RunInference loses images, and the file sinks' results.
3. **Only the last transform's bag is computed**: a pipeline with two sinks writes one.
4. **Side inputs are recomputed** inside the consuming task, once per use (WriteToParquet
   reads its bundles' results twice, re-running everything upstream of them).
5. **No metrics** (``metrics()`` raises), **no ``Read``** (``ReadFromParquet`` yields None) and
   a GroupByKey keeps its input's partition count: after ``Create`` of one element, all the
   work is one partition, on one worker.

``SbdnDaskRunner`` keeps Beam's runner and its Create / GroupByKey translations and replaces
only what is broken: ParDo bags carry ``(tag, value)`` pairs and each consumer picks its tag;
``finish_bundle`` output is kept; every sink is computed, in one graph (so what they share is
computed once); side inputs are graph dependencies, computed once; each bundle reports its
Beam counters, which the result sums (the detect summary needs them); bounded ``Read`` is
translated (``--skip-existing``); a GroupByKey spreads its output over at least
``--dask_npartitions`` partitions (default: twice the cluster's worker threads) and a Flatten
coalesces back to that many. A set-up DoFn serves every bundle of its ParDo in a worker thread
(Beam's runner set up and tore down per partition: models reloaded for each).
``--runner DaskRunner`` selects it (``sbdn_pipeline.options.make_runner``).

Like Beam's runner, a partition is one in-memory list on one worker: for large inputs raise
``--dask_npartitions`` so that a partition holds some hundred images.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import threading
import typing as t
import uuid

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics.execution import MetricsContainer
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import (DoFnContext, DoFnInvoker, DoFnSignature, Receiver,
                                        _OutputHandler)
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask import overrides, transform_evaluator as beam_ops
from apache_beam.runners.direct.direct_metrics import DirectMetrics
from apache_beam.runners.worker import statesampler
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.utils import counters

# Tag of the one (tag, MetricUpdates) pair each bundle appends to its ParDo's bag.
_METRICS_TAG = "__sbdn_metrics__"
# Partitions per worker thread after a GroupByKey (room to balance uneven images).
_PARTITIONS_PER_THREAD = 2
# Bundle size asked of a bounded source when splitting it into partitions.
_READ_BUNDLE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass
class _BundleSpec:
    """What a worker needs to run one ParDo over one partition (pickled into the task)."""

    key: str  # unique per ParDo and run: names its set-up DoFn in the worker's cache
    fn: beam.DoFn
    label: str
    window_fn: t.Any
    args: list[t.Any]
    kwargs: dict[str, t.Any]
    side_views: list[tuple[t.Any, t.Any, t.Any]]  # (view class, view options, window mapping)


class _TagReceiver(Receiver):
    """Collects one output tag's values as (tag, value) pairs into the bundle's list."""

    def __init__(self, tag: str | None, values: list[tuple[str | None, t.Any]]):
        super().__init__()
        self.tag = tag
        self.values = values

    def receive(self, windowed_value: t.Any) -> None:
        self.values.append((self.tag, windowed_value.value))


class _Receivers(dict):
    """tag -> receiver, made on first use (a DoFn may emit any tag it declared)."""

    def __init__(self, values: list[tuple[str | None, t.Any]]):
        super().__init__()
        self.values = values

    def __missing__(self, tag: str | None) -> _TagReceiver:
        self[tag] = _TagReceiver(tag, self.values)
        return self[tag]


# Set-up DoFns per worker thread, most recently used last: Beam lets a DoFn serve many
# bundles, and setting one up per partition would reload the models each time.
_DOFNS = threading.local()
_MAX_CACHED_DOFNS = 64


def _set_up_dofn(spec: _BundleSpec) -> tuple[beam.DoFn, DoFnSignature]:
    cache = getattr(_DOFNS, "cache", None)
    if cache is None:
        cache = _DOFNS.cache = collections.OrderedDict()
    if spec.key in cache:
        cache.move_to_end(spec.key)
        return cache[spec.key]
    signature = DoFnSignature(spec.fn)
    signature.setup_lifecycle_method.method_value()
    cache[spec.key] = spec.fn, signature
    while len(cache) > _MAX_CACHED_DOFNS:
        _, (_, old) = cache.popitem(last=False)
        old.teardown_lifecycle_method.method_value()
    return cache[spec.key]


def _run_bundle(items: t.Iterable[t.Any], spec: _BundleSpec,
                *side_values: list[t.Any]) -> list[tuple[str | None, t.Any]]:
    """Run a DoFn over one partition: its outputs (finish_bundle's too) and its metrics."""
    outputs: list[tuple[str | None, t.Any]] = []
    receivers = _Receivers(outputs)  # per bundle: Beam's are shared by every partition
    side_inputs = [
        SideInputMap(view, options, [beam_ops.get_windowed_value(v, mapping) for v in values])
        for (view, options, mapping), values in zip(spec.side_views, side_values)]
    handler = _OutputHandler(
        window_fn=spec.window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
        per_element_output_counter=None, output_batch_converter=None,
        process_yields_batches=False, process_batch_yields_elements=False)
    # Beam counters find their container through the thread's state sampler.
    container = MetricsContainer(spec.label)
    sampler = statesampler.StateSampler("", counters.CounterFactory())
    previous = statesampler.get_current_tracker()
    statesampler.set_current_tracker(sampler)
    try:
        with sampler.scoped_state(spec.label, "process", metrics_container=container):
            _invoke(spec, items, handler, side_inputs)
    finally:
        statesampler.set_current_tracker(previous)
    outputs.append((_METRICS_TAG, container.get_cumulative()))
    return outputs


def _invoke(spec: _BundleSpec, items: t.Iterable[t.Any], handler: _OutputHandler,
            side_inputs: list[SideInputMap]) -> None:
    """One bundle through the (cached, set-up) DoFn."""
    _, signature = _set_up_dofn(spec)
    invoker = DoFnInvoker.create_invoker(
        signature, handler, context=DoFnContext(spec.label, state=None),
        side_inputs=side_inputs, input_args=spec.args, input_kwargs=spec.kwargs,
        user_state_context=None, bundle_finalizer_param=beam.DoFn.BundleFinalizerParam())
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(item)
    invoker.invoke_finish_bundle()


def _concat(*partitions: list[t.Any]) -> list[t.Any]:
    return [item for partition in partitions for item in partition]


def _has_tag(tag: str | None, pair: tuple[str | None, t.Any]) -> bool:
    return pair[0] == tag


def _value(pair: tuple[str | None, t.Any]) -> t.Any:
    return pair[1]


def _nothing(_: t.Iterable[t.Any]) -> list[t.Any]:
    return []  # a sink's outputs need not travel back to the client


@dataclasses.dataclass
class _TaggedParDo(beam_ops.DaskBagOp):
    """ParDo -> a bag of (tag, value) pairs, side inputs as dependencies of every task."""

    side_bags: list[t.Any] = dataclasses.field(default_factory=list)

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        import dask

        transform = t.cast(beam.ParDo, self.transform)
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(self.applied.main_inputs.values()))
        window_fn = getattr(getattr(main_input, "windowing", None), "windowfn", None)
        views = [(type(si), si._view_options(), si._window_mapping_fn)  # noqa: SLF001
                 for si in self.applied.side_inputs]
        spec = _BundleSpec(uuid.uuid4().hex, transform.fn, transform.label, window_fn,
                           list(args), kwargs, views)
        values = [dask.delayed(_concat)(*bag.to_delayed(optimize_graph=False))
                  for bag in self.side_bags]
        return input_bag.map(beam_ops.get_windowed_value, window_fn).map_partitions(
            _run_bundle, spec, *values)


@dataclasses.dataclass
class _SpreadGroupByKey(beam_ops.GroupByKey):
    """Beam's GroupByKey, then spread over at least ``partitions`` partitions."""

    partitions: int = 1

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        grouped = super().apply(input_bag, side_inputs)
        if grouped.npartitions < self.partitions:
            grouped = grouped.repartition(npartitions=self.partitions)
        return grouped


@dataclasses.dataclass
class _CoalescingFlatten(beam_ops.Flatten):
    """Beam's Flatten, coalesced back to the widest input or ``partitions``, whichever is more.

    db.concat adds the inputs' partitions up, and the detect job flattens at every stage
    (errors of three stages, results of two branches): without this, sinks see thousands of
    mostly empty partitions, one task (and one Parquet file) each.
    """

    partitions: int = 1

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        flat = super().apply(input_bag, side_inputs)
        widest = max([bag.npartitions for bag in input_bag] + [self.partitions])
        return flat.repartition(npartitions=widest) if flat.npartitions > widest else flat


def _read_bundles(bundles: t.Iterable[t.Any]) -> list[t.Any]:
    return [item for bundle in bundles for item in bundle.source.read(
        bundle.source.get_range_tracker(bundle.start_position, bundle.stop_position))]


@dataclasses.dataclass
class _ReadBounded(beam_ops.DaskBagOp):
    """A bounded source, split on the client, each split read in its own partition."""

    partitions: int = 1

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        import dask.bag as db

        bundles = list(self.transform.source.split(_READ_BUNDLE_BYTES))
        partitions = max(1, min(len(bundles), self.partitions))
        return db.from_sequence(bundles, npartitions=partitions).map_partitions(_read_bundles)


class _BagVisitor(PipelineVisitor):
    """Builds the bags: Beam's translations, ours where Beam's are broken."""

    def __init__(self, bag_kwargs: dict[str, t.Any], group_partitions: int):
        self.bag_kwargs = bag_kwargs
        self.group_partitions = group_partitions
        self.bags: dict[AppliedPTransform, t.Any] = {}
        self.tagged: set[AppliedPTransform] = set()  # producers whose bags hold (tag, value)
        self.consumed: set[AppliedPTransform] = set()

    def bag_of(self, value: t.Any) -> t.Any:
        """The bag of one PCollection: its producer's, reduced to its tag when tagged."""
        if isinstance(value, pvalue.PBegin):
            return None
        producer = value.producer
        self.consumed.add(producer)
        bag = self.bags[producer]
        if producer in self.tagged:
            bag = bag.filter(functools.partial(_has_tag, value.tag)).map(_value)
        return bag

    def visit_transform(self, node: AppliedPTransform) -> None:
        transform = node.transform
        kind = type(transform)
        inputs = [self.bag_of(value) for value in node.inputs]
        side_bags = [self.bag_of(si.pvalue) for si in node.side_inputs]
        if kind is beam.ParDo:
            op = _TaggedParDo(node, bag_kwargs=self.bag_kwargs, side_bags=side_bags)
            self.tagged.add(node)
        elif kind is overrides._GroupByKeyOnly:  # noqa: SLF001
            op = _SpreadGroupByKey(node, bag_kwargs=self.bag_kwargs,
                                   partitions=self.group_partitions)
        elif kind is overrides._Read:  # noqa: SLF001
            op = _ReadBounded(node, bag_kwargs=self.bag_kwargs, partitions=self.group_partitions)
        elif kind is overrides._Flatten:  # noqa: SLF001
            op = _CoalescingFlatten(node, bag_kwargs=self.bag_kwargs,
                                    partitions=self.group_partitions)
        else:
            op = beam_ops.TRANSLATIONS.get(kind, beam_ops.NoOp)(node, bag_kwargs=self.bag_kwargs)
        single = len(inputs) == 1 and not isinstance(op, beam_ops.Flatten)
        self.bags[node] = op.apply(inputs[0] if single else (inputs or None))

    def sinks(self) -> list[t.Any]:
        """Bags nothing reads: computing them all computes the whole pipeline."""
        return [bag.map_partitions(_nothing) for node, bag in self.bags.items()
                if node not in self.consumed and bag is not None]

    def metric_updates(self) -> t.Any:
        """One bag of every bundle's MetricUpdates."""
        import dask.bag as db

        parts = [self.bags[node].filter(functools.partial(_has_tag, _METRICS_TAG)).map(_value)
                 for node in self.bags if node in self.tagged]
        return db.concat(parts) if parts else db.from_sequence([])


@dataclasses.dataclass
class SbdnDaskResult(beam_dask.DaskRunnerResult):
    """Waits for every sink and the metrics; ``metrics()`` sums the bundles' counters."""

    metrics_future: t.Any = None
    _metrics: DirectMetrics = dataclasses.field(default_factory=DirectMetrics)

    def wait_until_finish(self, duration: float | None = None) -> str:
        try:
            state = super().wait_until_finish(duration)
            # Each bundle's counters come with its outputs, once per finished task: committed.
            for updates in self.metrics_future.result():
                self._metrics.commit_physical(None, updates)
                self._metrics.commit_logical(None, updates)
        finally:
            self.client.close()  # also stops the LocalCluster it started, if any
        return state

    def metrics(self) -> DirectMetrics:
        return self._metrics


class SbdnDaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner with the fixes above; same options (``--dask_client_address``, ...)."""

    def run_pipeline(self, pipeline: beam.Pipeline, options: t.Any) -> SbdnDaskResult:
        import dask.distributed as ddist

        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(
            drop_default=True, current_only=True)
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)  # noqa: SLF001
        client = ddist.Client(**dask_options)
        threads = sum(client.nthreads().values()) or 1
        pipeline.replace_all(overrides.dask_overrides())
        visitor = _BagVisitor(bag_kwargs,
                              bag_kwargs.get("npartitions") or threads * _PARTITIONS_PER_THREAD)
        pipeline.visit(visitor)
        # One graph: what the sinks and the metrics share is computed once.
        futures = client.compute([*visitor.sinks(), visitor.metric_updates()])
        return SbdnDaskResult(client, futures[:-1], metrics_future=futures[-1])
