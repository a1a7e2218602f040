"""make-dataset's output folder: shard counts, the manifest document, and the folder's checks.

Plain functions, tested without Beam; the ``WriteManifest`` transform of
:mod:`beam_jobs.make_dataset` writes what :func:`build_manifest` returns.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable

from apache_beam.io.filesystems import FileSystems

from beam_jobs.make_dataset_sources import MakeDatasetOptions, SourcePhoto
from sbdn_pipeline import features


def shards_for(n_examples: int, examples_per_shard: int) -> int:
    """Number of shards for a split (at least 1, so every split folder exists)."""
    return max(1, math.ceil(n_examples / max(1, examples_per_shard)))


def shard_counts(photos: list[SourcePhoto], options: MakeDatasetOptions) -> dict[str, int]:
    """Shards per split, known before the job runs (every photo gives its full variant count)."""
    per_split = {split: sum(1 for ph in photos if ph.split == split) for split in features.SPLITS}
    return {
        split: shards_for(n * options.variants_per_image, options.examples_per_shard)
        for split, n in per_split.items()
    }


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
