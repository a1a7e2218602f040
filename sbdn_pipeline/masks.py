"""Blur-mask post-processing: area, connected regions in original pixels, PNG encoding."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from scipy import ndimage

from sbdn_pipeline import options as defaults

# 8-connectivity: diagonal neighbours belong to the same region.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclasses.dataclass(frozen=True)
class BlurRegion:
    """One connected blurred region; box in original pixels (max bounds exclusive)."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int
    area_fraction: float
    mean_confidence: float


@dataclasses.dataclass(frozen=True)
class MaskStatistics:
    """What the results table reports about one blur mask."""

    blur_area_fraction: float
    regions: list[BlurRegion]


def mask_statistics(
    mask: np.ndarray,
    *,
    threshold: float,
    image_width: int,
    image_height: int,
    min_region_fraction: float = defaults.DEFAULT_MIN_REGION_FRACTION,
) -> MaskStatistics:
    """Area fraction and connected regions of a confidence mask covering the whole image.

    Args:
        mask: (h, w) confidences in [0, 1]; it covers the original image exactly, at a lower
            resolution (each mask pixel stands for image_width / w by image_height / h pixels).
        threshold: a pixel is blurred when its confidence >= threshold.
        image_width: width of the original image in pixels.
        image_height: height of the original image in pixels.
        min_region_fraction: regions smaller than this fraction of the image are not listed
            (they still count towards the area fraction).

    Returns:
        Area fraction and regions, largest region first.
    """
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"expected a non-empty 2-D mask, got shape {mask.shape}")
    blurred = mask >= threshold
    total = float(mask.size)
    labels, count = ndimage.label(blurred, structure=_EIGHT_CONNECTED)
    regions: list[BlurRegion] = []
    if count:
        mask_height, mask_width = mask.shape
        scale_x = image_width / mask_width
        scale_y = image_height / mask_height
        index = np.arange(1, count + 1)
        sizes = ndimage.sum_labels(np.ones_like(mask), labels, index)
        means = ndimage.mean(mask, labels, index)
        for label_id, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
            fraction = float(sizes[label_id - 1]) / total
            if fraction < min_region_fraction:
                continue
            regions.append(
                BlurRegion(
                    x_min=int(np.floor(cols.start * scale_x)),
                    y_min=int(np.floor(rows.start * scale_y)),
                    x_max=min(image_width, int(np.ceil(cols.stop * scale_x))),
                    y_max=min(image_height, int(np.ceil(rows.stop * scale_y))),
                    area_fraction=fraction,
                    mean_confidence=float(means[label_id - 1]),
                )
            )
        regions.sort(key=lambda region: region.area_fraction, reverse=True)
    return MaskStatistics(blur_area_fraction=float(blurred.sum()) / total, regions=regions)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """8-bit grayscale PNG of a confidence mask (0 = sharp, 255 = certainly blurred)."""
    from PIL import Image

    grey = np.clip(np.rint(np.asarray(mask, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def decode_mask_png(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_mask_png`: float32 confidences in [0, 1]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
