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
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import posixpath
import re
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from sbdn_pipeline import atomic, features, inputs
from sbdn_pipeline.synth import presets, recipes

LOGGER = logging.getLogger(__name__)

# Output tags of SynthesizeExamples.
EXAMPLES = "examples"
SUMMARIES = "summaries"
REJECTED = "rejected"

# Folders of ../shared/data/sharp made of consecutive street-level shots (see its README).
DEFAULT_SEQUENCE_GROUPS = ("labelmefacade", "spb_facades")
# Shots whose numbers differ by at most this much belong to one capture group.
SEQUENCE_GAP = 5

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class MakeDatasetOptions:
    """Parameters of one data set generation (all recorded in the manifest).

    Attributes:
        sharp_images: folder, glob, manifest (.txt) or cloud path of sharp source photos.
        output: data set folder (local or cloud).
        variants_per_image: examples per source photo; even variant indices are sharp
            negatives, odd ones blurred positives (so K=8 gives 4 + 4).
        seed: seed of the split assignment and of every example's randomness.
        val_fraction: fraction of source photos in the validation split.
        test_fraction: fraction of source photos in the test split.
        preset: "realistic" or "original".
        max_long_side: stored images are capped to this long side; 0 = the preset's own cap
            (photographic 1600, realistic 1024; the original preset stores 224 x 224).
        examples_per_shard: target number of examples per TFRecord shard.
        overwrite: replace an existing data set in ``output``.
        exclude_sources: relative paths (below the source root, as in the manifest's
            ``source_path``) of photos to leave out, e.g. photos whose "sharp" label would be
            wrong because they already contain out-of-focus regions. Leaving a photo out does
            not move any other photo between splits (splits hash each photo on its own).
        segments_dir: folder of human segmentations laid out like the source root
            (``<group>/<stem>_<annotator>.png`` label maps); photos with one get regions that
            follow its segments (photographic presets). Empty: colour segments only.
        natural_dof_sources: relative paths of photos that already have natural depth of
            field: never sharp negatives, their soft parts labelled blurred (photographic).
        sequence_groups: source groups of consecutive shots (file names ending in a shot
            number): a run of shot numbers no more than ``SEQUENCE_GAP`` apart is one capture
            group and goes to one split, so near-duplicates never cross splits.
        test_only_groups: source groups kept out of training and validation altogether
            (all their photos go to the test split: unseen source folders).
        splits: the splits to write (e.g. only val and test for an evaluation-only set).
    """

    sharp_images: str
    output: str
    variants_per_image: int = presets.DEFAULT_VARIANTS_PER_IMAGE
    seed: int = 0
    val_fraction: float = presets.DEFAULT_VAL_FRACTION
    test_fraction: float = presets.DEFAULT_TEST_FRACTION
    preset: str = recipes.DEFAULT_PRESET
    max_long_side: int = 0
    examples_per_shard: int = presets.DEFAULT_EXAMPLES_PER_SHARD
    overwrite: bool = False
    exclude_sources: tuple[str, ...] = ()
    segments_dir: str = ""
    natural_dof_sources: tuple[str, ...] = ()
    sequence_groups: tuple[str, ...] = DEFAULT_SEQUENCE_GROUPS
    test_only_groups: tuple[str, ...] = ()
    splits: tuple[str, ...] = features.SPLITS

    def __post_init__(self) -> None:
        if self.variants_per_image < 1:
            raise ValueError(f"variants_per_image must be >= 1, got {self.variants_per_image}")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must leave photos for training, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.preset not in recipes.PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; expected one of {recipes.PRESETS}")
        unknown = sorted(set(self.splits) - set(features.SPLITS))
        if unknown or not self.splits:
            raise ValueError(f"splits must be some of {features.SPLITS}, got {self.splits}")
        if self.max_long_side and self.max_long_side < 64:
            raise ValueError(f"max_long_side must be 0 or >= 64, got {self.max_long_side}")

    def recipe(self) -> recipes.Recipe:
        """The synthesis recipe these options select."""
        return recipes.recipe_for_preset(self.preset, max_long_side=self.max_long_side)


@dataclasses.dataclass(frozen=True)
class SourcePhoto:
    """One sharp source photo and where its examples go.

    Attributes:
        path: readable path or URI.
        relative_path: path below the source root (posix separators); hashed into source_id.
        source_id: stable id, the first 16 hex digits of sha1(relative_path).
        source_group: first folder of relative_path (e.g. "urban100"), or the root's name.
        split: "train", "val" or "test".
    """

    path: str
    relative_path: str
    source_id: str
    source_group: str
    split: str


# --------------------------------------------------------------------------------------------
# Per-item logic (plain functions, tested without Beam)


def source_root(input_spec: str) -> str:
    """The folder that relative paths (and hence source ids and groups) are taken from.

    A folder is its own root (``gs://bucket/photos/`` too); a glob's root is the folder before
    its first wildcard (``photos/2026-*/*.jpg`` -> ``photos``); a single file's is its folder.
    """
    remote = inputs.is_remote(input_spec)
    if (remote and input_spec.endswith("/")) or (not remote and os.path.isdir(input_spec)):
        root = input_spec.rstrip("/")
    else:
        wildcards = [i for i in (input_spec.find(c) for c in "*?[") if i >= 0]
        static = input_spec[: min(wildcards, default=len(input_spec))]
        root = posixpath.dirname(static) if remote else os.path.dirname(static)
    return root if remote else os.path.abspath(root or ".")


def relative_to_root(path: str, root: str) -> str:
    """``path`` below ``root`` with posix separators (the basename if it is not below it)."""
    if inputs.is_remote(path):
        prefix = root.rstrip("/") + "/"
        return path[len(prefix) :] if path.startswith(prefix) else posixpath.basename(path)
    relative = os.path.relpath(os.path.abspath(path), root)
    if relative.startswith(".."):
        return os.path.basename(path)
    return relative.replace(os.sep, "/")


def make_source_id(relative_path: str) -> str:
    """Stable id of a source photo: 16 hex digits of sha1 of its relative path."""
    return hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:16]


def source_group_of(relative_path: str, root: str) -> str:
    """The top folder of a relative path, or the root folder's name for files directly in it."""
    parts = relative_path.split("/")
    if len(parts) > 1:
        return parts[0]
    return posixpath.basename(root.replace(os.sep, "/").rstrip("/")) or "root"


def assign_split(source_id: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a source photo from a hash of (seed, source id)."""
    digest = hashlib.sha256(f"{seed}:{source_id}".encode()).digest()
    uniform = int.from_bytes(digest[:8], "big") / 2.0**64
    if uniform < test_fraction:
        return "test"
    if uniform < test_fraction + val_fraction:
        return "val"
    return "train"


def capture_keys(relative_paths: list[str], sequence_groups: tuple[str, ...]) -> dict[str, str]:
    """The capture group of every photo: itself, or its run of consecutive shots.

    In ``sequence_groups`` a file name is a prefix and a shot number
    (``..._boston__p1010736.jpg``); shots of one prefix whose numbers are at most
    :data:`SEQUENCE_GAP` apart form one run (one street walked along). Elsewhere every photo
    is its own group, so the splits of data sets without such folders do not change.
    """
    keys = {path: path for path in relative_paths}
    runs: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for path in relative_paths:
        group, _, name = path.rpartition("/")
        match = re.fullmatch(r"(.*?)(\d+)", posixpath.splitext(name)[0])
        if group.split("/")[0] in sequence_groups and match:
            runs.setdefault((group, match.group(1)), []).append((int(match.group(2)), path))
    for (group, prefix), shots in runs.items():
        shots.sort()
        start, previous = shots[0][0], shots[0][0]
        for number, path in shots:
            if number - previous > SEQUENCE_GAP:
                start = number
            keys[path] = f"{group}/{prefix}#{start}"
            previous = number
    return keys


def example_rng(seed: int, source_id: str, variant: int) -> np.random.Generator:
    """The random generator of one example, independent of processing order."""
    return np.random.default_rng([seed, int(source_id, 16), variant])


def is_positive_variant(variant: int) -> bool:
    """Odd variants are blurred positives, even ones sharp negatives (50/50 for even K)."""
    return variant % 2 == 1


def read_exclude_list(path: str) -> tuple[str, ...]:
    """Relative photo paths listed in an exclude file, one per line.

    Everything after a ``#`` is a comment (the reason a photo is left out); blank lines are
    skipped; backslashes become ``/`` so a list written on Windows still matches.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if a path is listed twice.
    """
    # utf-8-sig, as source manifests are read: a BOM from a Windows editor is not a path.
    with open(path, encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    listed: dict[str, None] = {}  # ordered, with O(1) duplicate checks for long lists
    for number, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip().replace("\\", "/")
        if not entry:
            continue
        if entry in listed:
            raise ValueError(f"{path}:{number}: '{entry}' is listed twice")
        listed[entry] = None
    return tuple(listed)


def list_source_photos(options: MakeDatasetOptions) -> list[SourcePhoto]:
    """Every image file the source spec stands for, with ids, groups and splits.

    Files are kept when their name has an image suffix (for folders and globs); manifests are
    taken as they are. Photos in ``options.exclude_sources`` are left out. Raises early,
    before any pipeline is built, when nothing matches.

    Raises:
        FileNotFoundError: if the spec matches no image files.
        ValueError: if an excluded path matches no source photo (most likely a typo, or a
            list made for another source root).
    """
    spec = options.sharp_images
    try:
        inputs.check_input(spec)
    except inputs.InputError as exc:
        raise FileNotFoundError(str(exc)) from exc
    paths = list(
        inputs.expand_input(
            spec, exclude=None if inputs.is_remote(options.output) else options.output
        )
    )
    if not inputs.is_manifest(spec):
        paths = [p for p in paths if p.lower().endswith(IMAGE_SUFFIXES)]
    if not paths:
        raise FileNotFoundError(
            f"'{spec}' matched no image files (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    root = source_root(spec)
    if inputs.is_manifest(spec) and not any(inputs.is_remote(p) for p in paths):
        root = os.path.commonpath([os.path.dirname(p) for p in paths])
    excluded = set(options.exclude_sources)
    photos = []
    matched: set[str] = set()
    relatives = {path: relative_to_root(path, root) for path in paths}
    keys = capture_keys(list(relatives.values()), options.sequence_groups)
    for path, relative in relatives.items():
        if relative in excluded:
            matched.add(relative)
            continue
        photo = _source_photo(path, relative, root, keys[relative], options)
        if photo.split in options.splits:
            photos.append(photo)
    unmatched = sorted(excluded - matched)
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} excluded source path(s) match no photo below '{root}': "
            + ", ".join(unmatched[:5])
            + (" ..." if len(unmatched) > 5 else "")
        )
    if not photos:
        raise FileNotFoundError(f"every photo matched by '{spec}' is excluded")
    return photos


def _source_photo(
    path: str, relative: str, root: str, capture_key: str, options: MakeDatasetOptions
) -> SourcePhoto:
    source_id = make_source_id(relative)
    group = source_group_of(relative, root)
    # A photo that is its own capture group hashes as before (its id), so older data sets
    # keep their splits.
    key_id = source_id if capture_key == relative else make_source_id(capture_key)
    split = assign_split(key_id, options.seed, options.val_fraction, options.test_fraction)
    if group in options.test_only_groups:
        split = "test"
    return SourcePhoto(path, relative, source_id, group, split)


def read_source_pixels(path: str) -> np.ndarray:
    """Read and decode a source photo to uint8 RGB (EXIF orientation applied).

    Raises:
        sbdn_pipeline.images.ImageError: for unreadable or invalid images.
    """
    from sbdn_pipeline import images

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        data = handle.read()
    return np.ascontiguousarray(images.decode_image(data).pixels)


def segmentation_paths(photo: SourcePhoto, segments_dir: str) -> list[str]:
    """The human segmentations of a photo: ``segments_dir/<relative stem>_<annotator>.png``."""
    if not segments_dir:
        return []
    stem = posixpath.splitext(photo.relative_path)[0]
    pattern = f"{segments_dir.rstrip('/')}/{stem}_*.png"
    return sorted(
        m.path for result in FileSystems.match([pattern]) for m in result.metadata_list
    )


def read_segmentations(photo: SourcePhoto, segments_dir: str) -> list[np.ndarray]:
    """Every annotator's label map of a photo (none when it has no segmentation)."""
    from sbdn_pipeline.synth.segments import read_label_map

    maps = []
    for path in segmentation_paths(photo, segments_dir):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            maps.append(read_label_map(handle.read()))
    return maps


def synthesize_photo_examples(
    photo: SourcePhoto,
    pixels: np.ndarray,
    options: MakeDatasetOptions,
    label_maps: list[np.ndarray] | None = None,
) -> Iterator[tuple[bytes, dict]]:
    """All variants of one photo as (serialized tf.train.Example, summary row).

    Variants take the annotators' label maps in turn (photographic presets).
    """
    recipe = options.recipe()
    natural = photo.relative_path in set(options.natural_dof_sources)
    for variant in range(options.variants_per_image):
        example = recipes.synthesize(
            pixels,
            recipe,
            example_rng(options.seed, photo.source_id, variant),
            positive=is_positive_variant(variant),
            labels=label_maps[variant % len(label_maps)] if label_maps else None,
            natural_depth_of_field=natural,
        )
        height, width = example.image.shape[:2]
        summary = {
            features.SOURCE_ID: photo.source_id,
            "source_path": photo.relative_path,
            features.SOURCE_GROUP: photo.source_group,
            features.SPLIT: photo.split,
            features.VARIANT: variant,
            features.LABEL: int(example.label),
            features.BLUR_KIND: example.blur_kind,
            features.REGION_SHAPE: example.region_shape,
            features.STRENGTH: float(example.strength),
            features.AREA_FRACTION: float(example.area_fraction),
            features.DEGRADATIONS: ",".join(example.degradations),
            features.HEIGHT: int(height),
            features.WIDTH: int(width),
        }
        record = {
            **{k: v for k, v in summary.items() if k in features.ALL_FEATURES},
            features.IMAGE: features.encode_image(example.image),
            features.MASK: features.encode_mask(example.mask),
        }
        yield features.make_example(record).SerializeToString(), summary


def shards_for(n_examples: int, examples_per_shard: int) -> int:
    """Number of shards for a split (at least 1, so every split folder exists)."""
    return max(1, math.ceil(n_examples / max(1, examples_per_shard)))


def count_table(summaries: Iterable[dict]) -> dict:
    """Counts per split of examples, labels, kinds, shapes, groups and source photos."""
    table: dict = {}
    sources: dict[str, set] = {}
    for row in summaries:
        split = table.setdefault(
            row[features.SPLIT],
            {
                "examples": 0,
                "source_photos": 0,
                "label": {},
                "blur_kind": {},
                "region_shape": {},
                "source_group": {},
            },
        )
        split["examples"] += 1
        for key, name in (
            ("label", str(row[features.LABEL])),
            ("blur_kind", row[features.BLUR_KIND]),
            ("region_shape", row[features.REGION_SHAPE]),
            ("source_group", row[features.SOURCE_GROUP]),
        ):
            split[key][name] = split[key].get(name, 0) + 1
        sources.setdefault(row[features.SPLIT], set()).add(row[features.SOURCE_ID])
    for split, ids in sources.items():
        table[split]["source_photos"] = len(ids)
    for split in table.values():
        for key in ("label", "blur_kind", "region_shape", "source_group"):
            split[key] = dict(sorted(split[key].items()))
    return dict(sorted(table.items()))


def build_manifest(
    options: MakeDatasetOptions,
    counts: dict,
    rejected: list[dict],
    shards: dict[str, int],
) -> dict:
    """The manifest.json document."""
    totals = {"examples": sum(s["examples"] for s in counts.values())}
    totals["positives"] = sum(s["label"].get("1", 0) for s in counts.values())
    totals["negatives"] = sum(s["label"].get("0", 0) for s in counts.values())
    totals["source_photos"] = sum(s["source_photos"] for s in counts.values())
    return {
        "format_version": 1,
        "created_by": "sbdn make-dataset",
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "parameters": {
            "sharp_images": options.sharp_images,
            "variants_per_image": options.variants_per_image,
            "seed": options.seed,
            "val_fraction": options.val_fraction,
            "test_fraction": options.test_fraction,
            "preset": options.preset,
            "segments_dir": options.segments_dir,
            "natural_dof_sources": list(options.natural_dof_sources),
            "sequence_groups": list(options.sequence_groups),
            "test_only_groups": list(options.test_only_groups),
            "splits": list(options.splits),
            "max_long_side": options.max_long_side,
            "positive_variants": "odd variant indices",
            "excluded_sources": list(options.exclude_sources),
            "recipe": options.recipe().to_dict(),
        },
        "encoding": {
            "image": f"JPEG quality {features.IMAGE_JPEG_QUALITY}, 4:4:4",
            "mask": "PNG 8-bit, 0 = sharp, 255 = blurred",
            "shards": f"{features.SHARD_GLOB} per split folder, gzip TFRecord of tf.train.Example",
            "features": list(features.ALL_FEATURES),
        },
        "shards": shards,
        "totals": totals,
        "splits": counts,
        "rejected": sorted(rejected, key=lambda r: r["path"]),
    }


def prepare_output(output: str, overwrite: bool) -> None:
    """Refuse to mix two data sets in one folder; with ``overwrite`` remove the old one.

    Raises:
        FileExistsError: if ``output`` already holds a data set and ``overwrite`` is False.
    """
    existing = [
        FileSystems.join(output, features.MANIFEST_JSON),
        FileSystems.join(output, features.MANIFEST_PARQUET),
    ]
    for split in features.SPLITS:
        existing += [
            m.path
            for m in FileSystems.match([features.shard_pattern(output, split)])[0].metadata_list
        ]
    existing = [path for path in existing if FileSystems.exists(path)]
    if existing and not overwrite:
        raise FileExistsError(
            f"'{output}' already holds a data set ({len(existing)} files, e.g. {existing[0]}); "
            "choose another --output or pass --overwrite"
        )
    if existing:
        FileSystems.delete(existing)
    for split in features.SPLITS:
        folder = FileSystems.join(output, split)
        if not FileSystems.exists(folder):
            try:
                FileSystems.mkdirs(folder)
            except Exception:  # noqa: BLE001 - object stores have no folders to create
                pass


# --------------------------------------------------------------------------------------------
# Beam wiring


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
    per_split = {split: sum(1 for ph in photos if ph.split == split) for split in features.SPLITS}
    shards = {
        split: shards_for(n * options.variants_per_image, options.examples_per_shard)
        for split, n in per_split.items()
    }
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


__all__ = [
    "MakeDatasetOptions",
    "SourcePhoto",
    "ListSourcePhotos",
    "SynthesizeExamples",
    "WriteTFRecordShards",
    "WriteManifest",
    "build_pipeline",
    "run",
]
