"""The ONE definition of the synthetic data set's TFRecord features and folder layout.

Used by the Beam writer (``beam_jobs/make_dataset.py``), the tf.data reader
(``sbdn_pipeline/training/reader.py``), ``sbdn show-dataset`` and the tests.

Layout of a data set folder ``OUT``::

    OUT/train/part-00000-of-00004.tfrecord.gz   gzip TFRecord shards of tf.train.Example
    OUT/val/part-*.tfrecord.gz
    OUT/test/part-*.tfrecord.gz
    OUT/manifest.json       counts per split / label / kind / shape / group, generation
                            parameters, seed, rejected source photos
    OUT/manifest.parquet    one row per example (metadata only, no pixels)

Images are stored as JPEG quality 95 without chroma subsampling: at 1024 px a PNG is 4-6x
larger (a 3,500-example set would take ~6 GB instead of ~1.3 GB) and JPEG decodes faster in
tf.data. Every example, sharp or blurred, goes through this same final encoding, so it cannot
tell the classes apart; blur-like JPEG damage at much lower qualities is part of the recipe
itself. Masks are lossless PNG (0 = sharp, 255 = blurred), the same size as the image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import tensorflow as tf
from PIL import Image

# --- Feature names --------------------------------------------------------------------------
IMAGE = "image"  # bytes: JPEG q95, RGB
MASK = "mask"  # bytes: 8-bit PNG, 255 = blurred, same size as the image
LABEL = "label"  # int64: 1 = blurry (some pixel blurred), 0 = sharp
BLUR_KIND = "blur_kind"  # bytes: gaussian | defocus | motion | shake | mixture | none
STRENGTH = "strength"  # float: mean effective blur sigma in the mask, pixels at stored size
REGION_SHAPE = "region_shape"  # bytes: rectangle | ellipse | ... | whole | none
AREA_FRACTION = "area_fraction"  # float: blurred fraction of the mask
SOURCE_ID = "source_id"  # bytes: stable id of the source photo (hash of its relative path)
SOURCE_GROUP = "source_group"  # bytes: first sub-folder of the source path, e.g. "urban100"
SPLIT = "split"  # bytes: train | val | test
HEIGHT = "height"  # int64: stored image height
WIDTH = "width"  # int64: stored image width
VARIANT = "variant"  # int64: index of this example among the variants of its source photo
DEGRADATIONS = "degradations"  # bytes: comma-separated non-blur changes, e.g. "noise,jpeg"

STRING_FEATURES = (
    IMAGE,
    MASK,
    BLUR_KIND,
    REGION_SHAPE,
    SOURCE_ID,
    SOURCE_GROUP,
    SPLIT,
    DEGRADATIONS,
)
INT_FEATURES = (LABEL, HEIGHT, WIDTH, VARIANT)
FLOAT_FEATURES = (STRENGTH, AREA_FRACTION)
ALL_FEATURES = STRING_FEATURES + INT_FEATURES + FLOAT_FEATURES

NO_BLUR = "none"  # blur_kind and region_shape of sharp examples

# --- Layout -------------------------------------------------------------------------------
SPLITS = ("train", "val", "test")
SHARD_PREFIX = "part"
SHARD_SUFFIX = ".tfrecord.gz"
SHARD_GLOB = f"{SHARD_PREFIX}-*{SHARD_SUFFIX}"
MANIFEST_JSON = "manifest.json"
MANIFEST_PARQUET = "manifest.parquet"
IMAGE_JPEG_QUALITY = 95


def shard_prefix(data_dir: str, split: str) -> str:
    """Path prefix given to the TFRecord writer for one split (``OUT/split/part``)."""
    return os.path.join(data_dir, split, SHARD_PREFIX)


def shard_pattern(data_dir: str, split: str) -> str:
    """Glob matching every shard of one split."""
    return os.path.join(data_dir, split, SHARD_GLOB)


# The spec for tf.io.parse_single_example / tf.io.parse_example.
FEATURE_SPEC: dict[str, tf.io.FixedLenFeature] = {
    **{name: tf.io.FixedLenFeature([], tf.string) for name in STRING_FEATURES},
    **{name: tf.io.FixedLenFeature([], tf.int64) for name in INT_FEATURES},
    **{name: tf.io.FixedLenFeature([], tf.float32) for name in FLOAT_FEATURES},
}


# --- Encoding -----------------------------------------------------------------------------


def encode_image(image: np.ndarray) -> bytes:
    """uint8 RGB (H, W, 3) -> JPEG bytes (quality 95, no chroma subsampling)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(
        buffer, format="JPEG", quality=IMAGE_JPEG_QUALITY, subsampling=0
    )
    return buffer.getvalue()


def encode_mask(mask: np.ndarray) -> bytes:
    """Binary mask (H, W), nonzero = blurred -> 8-bit PNG bytes with 0/255."""
    pixels = (np.asarray(mask) > 0).astype(np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def decode_example_mask(data: bytes) -> np.ndarray:
    """A TFRecord example's ``mask`` feature (PNG bytes, see :func:`encode_mask`) -> uint8
    (H, W) in {0, 1}. Not the detect job's mask_png: that is ``masks.decode_mask_png``."""
    return (np.asarray(Image.open(io.BytesIO(data)).convert("L")) >= 128).astype(np.uint8)


def decode_example_image(data: bytes) -> np.ndarray:
    """A TFRecord example's ``image`` feature (JPEG/PNG bytes, see :func:`encode_image`) ->
    uint8 RGB (H, W, 3), unchecked. The detect job's checked decoder is ``images.decode_image``."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def make_example(record: Mapping[str, Any]) -> tf.train.Example:
    """Build a ``tf.train.Example`` from a record with every name in :data:`ALL_FEATURES`.

    ``image`` and ``mask`` must already be encoded bytes (see :func:`encode_image` and
    :func:`encode_mask`); strings may be ``str`` or ``bytes``.

    Raises:
        KeyError: naming any missing feature.
    """
    missing = [name for name in ALL_FEATURES if name not in record]
    if missing:
        raise KeyError(f"record is missing features {missing}")
    feature = {}
    for name in STRING_FEATURES:
        value = record[name]
        value = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    for name in INT_FEATURES:
        feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(record[name])]))
    for name in FLOAT_FEATURES:
        feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(record[name])]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_example_bytes(serialized: bytes) -> dict[str, Any]:
    """Serialized tf.train.Example -> plain dict (bytes for strings); for tests and tools."""
    example = tf.train.Example.FromString(serialized)
    values = example.features.feature
    out: dict[str, Any] = {}
    for name in STRING_FEATURES:
        out[name] = values[name].bytes_list.value[0]
    for name in INT_FEATURES:
        out[name] = int(values[name].int64_list.value[0])
    for name in FLOAT_FEATURES:
        out[name] = float(values[name].float_list.value[0])
    return out


# --- Manifest table -----------------------------------------------------------------------

# One row per example in OUT/manifest.parquet: every feature except the pixels, plus where the
# source photo came from.
MANIFEST_SCHEMA = pa.schema(
    [
        pa.field(SOURCE_ID, pa.string()),
        pa.field("source_path", pa.string()),
        pa.field(SOURCE_GROUP, pa.string()),
        pa.field(SPLIT, pa.string()),
        pa.field(VARIANT, pa.int64()),
        pa.field(LABEL, pa.int64()),
        pa.field(BLUR_KIND, pa.string()),
        pa.field(REGION_SHAPE, pa.string()),
        pa.field(STRENGTH, pa.float64()),
        pa.field(AREA_FRACTION, pa.float64()),
        pa.field(DEGRADATIONS, pa.string()),
        pa.field(HEIGHT, pa.int64()),
        pa.field(WIDTH, pa.int64()),
    ]
)
