"""Tiny generated photos and data sets for the synthetic-data tests (no shared data)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from PIL import Image
from scipy import ndimage

from sbdn_pipeline import features


def textured_photo(height: int, width: int, seed: int) -> np.ndarray:
    """A uint8 RGB "photo" with fine detail everywhere: smooth colour gradients plus 2 px noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            120 + 60 * np.sin(xs / (7 + seed % 5)),
            120 + 60 * np.cos(ys / 11.0),
            120 + 40 * np.sin((xs + ys) / 17.0),
        ],
        axis=-1,
    )
    small = rng.normal(0, 45, size=(height // 2 + 1, width // 2 + 1, 3))
    detail = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:height, :width]
    return np.clip(base + detail, 0, 255).astype(np.uint8)


def laplacian_energy(image: np.ndarray) -> np.ndarray:
    """Per-pixel |Laplacian| of the grey image: high where there is fine detail."""
    grey = np.asarray(image, dtype=np.float32).mean(axis=-1)
    return np.abs(ndimage.laplace(grey))


def write_photo_folder(
    folder: str, groups: dict[str, int], size=(96, 128), corrupt: bool = True
) -> list[str]:
    """Write textured JPEG photos in sub-folders ``{group: count}`` (plus one corrupt file)."""
    paths = []
    seed = 0
    for group, count in groups.items():
        os.makedirs(os.path.join(folder, group), exist_ok=True)
        for index in range(count):
            path = os.path.join(folder, group, f"photo_{index:02d}.jpg")
            Image.fromarray(textured_photo(size[0], size[1], seed)).save(path, quality=95)
            paths.append(path)
            seed += 1
    if corrupt:
        with open(os.path.join(folder, next(iter(groups)), "broken.jpg"), "wb") as handle:
            handle.write(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return paths


def record(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    source_id: str = "0123456789abcdef",
    source_group: str = "group_a",
    split: str = "train",
    blur_kind: str = "gaussian",
    region_shape: str = "rectangle",
    strength: float = 3.0,
    variant: int = 1,
    degradations: str = "",
) -> dict:
    """A feature record (as the Beam job builds it) for an image and its binary mask."""
    label = int(np.asarray(mask).any())
    return {
        features.IMAGE: features.encode_image(image),
        features.MASK: features.encode_mask(mask),
        features.LABEL: label,
        features.BLUR_KIND: blur_kind if label else features.NO_BLUR,
        features.STRENGTH: strength if label else 0.0,
        features.REGION_SHAPE: region_shape if label else features.NO_BLUR,
        features.AREA_FRACTION: float(np.asarray(mask).astype(bool).mean()),
        features.SOURCE_ID: source_id,
        features.SOURCE_GROUP: source_group,
        features.SPLIT: split,
        features.HEIGHT: image.shape[0],
        features.WIDTH: image.shape[1],
        features.VARIANT: variant,
        features.DEGRADATIONS: degradations,
    }


def write_records(data_dir: str, split: str, records: list[dict], shards: int = 2) -> list[str]:
    """Write records round-robin into gzip shards laid out like the Beam job's output."""
    os.makedirs(os.path.join(data_dir, split), exist_ok=True)
    paths = [
        f"{features.shard_prefix(data_dir, split)}-{i:05d}-of-{shards:05d}{features.SHARD_SUFFIX}"
        for i in range(shards)
    ]
    writers = [tf.io.TFRecordWriter(p, options="GZIP") for p in paths]
    for index, rec in enumerate(records):
        writers[index % shards].write(features.make_example(rec).SerializeToString())
    for writer in writers:
        writer.close()
    return paths


def half_blurred(
    height: int, width: int, seed: int, sigma: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo whose left half is Gaussian-blurred, and that half's mask."""
    photo = textured_photo(height, width, seed)
    blurred = ndimage.gaussian_filter(photo.astype(np.float32), sigma=(sigma, sigma, 0))
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[:, : width // 2] = 1
    out = photo.copy()
    out[:, : width // 2] = np.clip(np.rint(blurred[:, : width // 2]), 0, 255).astype(np.uint8)
    return out, mask
