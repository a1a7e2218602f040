"""The synthetic-data job: sharp photos -> blurred/sharp examples -> gzip TFRecord shards.

Graph::

    ListSourcePhotos ─ SynthesizeExamples ─┬─ examples ── WriteTFRecordShards  (OUT/<split>/part-*)
                                           ├─ summaries ─ WriteManifest        (OUT/manifest.*)
                                           └─ rejected ───┘

Determinism: the split of a photo is a hash of (seed, source id) and every example's random
generator is seeded with (seed, source id, variant index), so the same inputs and seed give the
same examples whatever the runner, bundling or worker count (the order of examples inside the
shards may differ between runs; the set of examples does not).

Split assignment is by source photo, never by example: all variants of one photo land in the
same split, so validation and test never contain a crop of a training photo.

Modules: :mod:`beam_jobs.make_dataset_sources` (options, source photos and their splits),
:mod:`beam_jobs.make_dataset_examples` (per-photo synthesis) and
:mod:`beam_jobs.make_dataset_manifest` (shard counts, manifest, output folder) hold the plain
functions; this module wires them into the Beam job and re-exports what callers use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.make_dataset_examples import (
    example_rng,
    read_segmentations,
    read_source_pixels,
    synthesize_photo_examples,
)
from beam_jobs.make_dataset_manifest import (
    build_manifest,
    count_table,
    prepare_output,
    shard_counts,
)
from beam_jobs.make_dataset_sources import (
    MakeDatasetOptions,
    SourcePhoto,
    assign_split,
    capture_keys,
    list_source_photos,
    make_source_id,
    read_exclude_list,
    source_root,
)
from sbdn_pipeline import atomic, features

LOGGER = logging.getLogger(__name__)

# Output tags of SynthesizeExamples.
EXAMPLES = "examples"
SUMMARIES = "summaries"
REJECTED = "rejected"


class SynthesizeFn(beam.DoFn):
    """Source photo -> serialized examples (main output), summaries and rejected photos."""

    def __init__(self, options: MakeDatasetOptions):
        self._options = options
        # Visible in the Dataflow/Flink UIs while the job runs.
        self._photos = beam.metrics.Metrics.counter("make_dataset", "photos_synthesized")
        self._examples = beam.metrics.Metrics.counter("make_dataset", "examples_synthesized")
        self._rejected = beam.metrics.Metrics.counter("make_dataset", "photos_rejected")

    def process(self, photo: SourcePhoto) -> Iterator:
        try:
            pixels = read_source_pixels(photo.path)
            label_maps = read_segmentations(photo, self._options.segments_dir)
            produced = list(
                synthesize_photo_examples(photo, pixels, self._options, label_maps)
            )
        except Exception as exc:  # noqa: BLE001 - one bad photo must never stop the job
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            LOGGER.warning("rejected source photo %s: %s", photo.path, reason)
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(REJECTED, {"path": photo.path, "error": reason})
            return
        LOGGER.info(
            "synthesized %d examples from %s (%s)", len(produced), photo.relative_path, photo.split
        )
        self._photos.inc()
        self._examples.inc(len(produced))
        for serialized, summary in produced:
            yield beam.pvalue.TaggedOutput(EXAMPLES, (photo.split, serialized))
            yield beam.pvalue.TaggedOutput(SUMMARIES, summary)


class ListSourcePhotos(beam.PTransform):
    """Create the source photos and spread them over workers."""

    def __init__(self, photos: list[SourcePhoto]):
        super().__init__()
        self._photos = photos

    def expand(self, pbegin):
        return (
            pbegin
            | "CreatePhotos" >> beam.Create(self._photos)
            # Reshuffle: Create yields one bundle; this lets runners spread the CPU-heavy
            # synthesis over all workers.
            | "SpreadPhotos" >> beam.Reshuffle()
        )


class SynthesizeExamples(beam.PTransform):
    """Photos -> tagged outputs ``examples`` ((split, bytes)), ``summaries``, ``rejected``."""

    def __init__(self, options: MakeDatasetOptions):
        super().__init__()
        self._options = options

    def expand(self, photos):
        return photos | "Synthesize" >> beam.ParDo(SynthesizeFn(self._options)).with_outputs(
            EXAMPLES, SUMMARIES, REJECTED
        )


class WriteTFRecordShards(beam.PTransform):
    """(split, serialized example) -> OUT/<split>/part-SSSSS-of-NNNNN.tfrecord.gz."""

    def __init__(self, output: str, shards: dict[str, int]):
        super().__init__()
        self._output = output
        self._shards = shards

    def expand(self, examples):
        results = {}
        for split in features.SPLITS:
            results[split] = (
                examples
                | f"Select{split.title()}" >> beam.Filter(lambda item, s=split: item[0] == s)
                | f"Drop{split.title()}Key" >> beam.Map(lambda item: item[1])
                | f"Write{split.title()}"
                >> beam.io.WriteToTFRecord(
                    features.shard_prefix(self._output, split),
                    file_name_suffix=features.SHARD_SUFFIX,
                    num_shards=self._shards[split],
                    compression_type=CompressionTypes.GZIP,
                )
            )
        return results


class WriteManifest(beam.PTransform):
    """Summaries + rejected photos -> OUT/manifest.json and OUT/manifest.parquet.

    The JSON is written last, after the shards (it waits on ``written``), so a manifest means
    a complete data set.
    """

    def __init__(self, options: MakeDatasetOptions, shards: dict[str, int]):
        super().__init__()
        self._options = options
        self._shards = shards

    def expand(self, inputs_):
        summaries, rejected, written = inputs_
        summaries | "WriteManifestTable" >> beam.io.WriteToParquet(
            FileSystems.join(self._options.output, features.MANIFEST_PARQUET),
            schema=features.MANIFEST_SCHEMA,
            num_shards=1,
            shard_name_template="",
        )
        all_rows = summaries | "CollectSummaries" >> beam.combiners.ToList()
        all_rejected = rejected | "CollectRejected" >> beam.combiners.ToList()
        done = written | "WaitForShards" >> beam.combiners.Count.Globally()
        return all_rows | "WriteManifestJson" >> beam.Map(
            self._write,
            rejected=beam.pvalue.AsSingleton(all_rejected),
            _done=beam.pvalue.AsSingleton(done),
        )

    def _write(self, rows: list[dict], rejected: list[dict], _done: int) -> dict:
        manifest = build_manifest(self._options, count_table(rows), rejected, self._shards)
        atomic.write_json(FileSystems.join(self._options.output, features.MANIFEST_JSON), manifest)
        return manifest


def build_pipeline(
    p: beam.Pipeline, options: MakeDatasetOptions, photos: list[SourcePhoto] | None = None
):
    """Add the make-dataset graph to ``p``.

    Args:
        p: the pipeline.
        options: generation parameters.
        photos: the source photos; listed from ``options.sharp_images`` when None.

    Returns:
        PCollection with the single manifest dict (written to OUT/manifest.json).
    """
    if photos is None:
        photos = list_source_photos(options)
    shards = shard_counts(photos, options)
    listed = p | "ListSourcePhotos" >> ListSourcePhotos(photos)
    outputs = listed | "SynthesizeExamples" >> SynthesizeExamples(options)
    written = outputs[EXAMPLES] | "WriteTFRecordShards" >> WriteTFRecordShards(
        options.output, shards
    )
    written_files = tuple(written.values()) | "MergeWrittenFiles" >> beam.Flatten()
    return (
        outputs[SUMMARIES],
        outputs[REJECTED],
        written_files,
    ) | "WriteManifest" >> WriteManifest(options, shards)


def run(
    options: MakeDatasetOptions,
    beam_args: list[str] | None = None,
    photos: list[SourcePhoto] | None = None,
) -> dict:
    """Generate a data set and return its manifest (also written to OUT/manifest.json).

    Args:
        options: generation parameters.
        beam_args: pass-through Beam flags (``--runner``, ``--direct_num_workers``, ...).
        photos: the source photos, when already listed; else listed from the options.
    """
    from sbdn_pipeline.options import make_pipeline_options, make_runner

    if photos is None:
        photos = list_source_photos(options)
    prepare_output(options.output, options.overwrite)
    LOGGER.info(
        "make-dataset: %d source photos, %d variants each", len(photos), options.variants_per_image
    )
    pipeline_options = make_pipeline_options(list(beam_args or []))
    with beam.Pipeline(runner=make_runner(pipeline_options), options=pipeline_options) as p:
        build_pipeline(p, options, photos)
    with FileSystems.open(
        FileSystems.join(options.output, features.MANIFEST_JSON),
        compression_type=CompressionTypes.UNCOMPRESSED,
    ) as handle:
        return json.loads(handle.read().decode("utf-8"))


# The job's own names and those of its modules that callers (CLI, tests, benchmarks) import
# from here.
__all__ = [
    "EXAMPLES",
    "REJECTED",
    "SUMMARIES",
    "ListSourcePhotos",
    "MakeDatasetOptions",
    "SourcePhoto",
    "SynthesizeExamples",
    "SynthesizeFn",
    "WriteManifest",
    "WriteTFRecordShards",
    "assign_split",
    "build_pipeline",
    "capture_keys",
    "example_rng",
    "list_source_photos",
    "make_source_id",
    "prepare_output",
    "read_exclude_list",
    "read_segmentations",
    "read_source_pixels",
    "run",
    "source_root",
    "synthesize_photo_examples",
]
