"""make-dataset's per-photo work: read a source photo, synthesize its variants, serialize them.

Plain functions, tested without Beam; the ``SynthesizeFn`` of :mod:`beam_jobs.make_dataset`
calls them once per photo.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.make_dataset_sources import MakeDatasetOptions, SourcePhoto
from sbdn_pipeline import features
from sbdn_pipeline.synth import recipes


def example_rng(seed: int, source_id: str, variant: int) -> np.random.Generator:
    """The random generator of one example, independent of processing order."""
    return np.random.default_rng([seed, int(source_id, 16), variant])


def is_positive_variant(variant: int) -> bool:
    """Odd variants are blurred positives, even ones sharp negatives (50/50 for even K)."""
    return variant % 2 == 1


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

