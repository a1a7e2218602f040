"""Blur-mask post-processing: edge-aware refinement, area, connected regions in original
pixels, PNG encoding."""

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


def box_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over (2 radius + 1)^2 windows, edges reflected; O(pixels) whatever the radius."""
    return ndimage.uniform_filter(values, size=2 * radius + 1, mode="reflect")


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int,
                  eps: float) -> np.ndarray:
    """Guided filter (He, Sun and Tang 2010/2013) of ``source`` by a grey ``guide``.

    The output is locally an affine function of the guide, a * guide + b, fitted to the
    source in each window: where the guide has an edge the output gets it, where the guide is
    flat (variance << eps) the output is the smoothed source. Box filters only: O(pixels).

    Args:
        guide: (h, w) float grey image in [0, 1].
        source: (h, w) float image to filter (here an upsampled blur mask).
        radius: window radius in pixels.
        eps: regularisation; edges with a local variance well above eps are followed.
    """
    guide = np.asarray(guide, np.float32)
    mean_a, mean_b = _guided_coefficients(guide, np.asarray(source, np.float32), radius, eps)
    return mean_a * guide + mean_b


def _guided_coefficients(guide: np.ndarray, source: np.ndarray, radius: int,
                         eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's window-averaged affine coefficients (a, b): output = a guide + b."""
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(source, radius)
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius), box_mean(b, radius)


def grey(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 (h, w, 3) -> float32 luma in [0, 1] (Rec. 601 weights)."""
    rgb = np.asarray(pixels, np.float32)
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114) / 255.0


# Guided refinement: window radius in coarse-mask pixels and the regularisation (on a grey
# image in [0, 1]; 1e-2 follows edges of about 10% contrast and more, not fine texture).
REFINE_RADIUS_MASK_PIXELS = 2.0
REFINE_EPS = 1e-2


def refine_mask(coarse: np.ndarray, guide_pixels: np.ndarray,
                eps: float = REFINE_EPS) -> np.ndarray:
    """Upsample a coarse mask to the guide's resolution so its borders follow image edges.

    The coarse mask (blocks of several pixels, from the identifier's 1/4-resolution output)
    becomes a local affine function of the guide's grey levels (guided filter), so its
    transitions move onto the object edges nearby instead of staying blocky. As in the fast
    guided filter (He and Sun 2015), the affine coefficients are fitted at a resolution of
    half a mask block, then upsampled and applied at full resolution: the cost is a few
    passes over the full-resolution pixels.

    Args:
        coarse: (h, w) confidences in [0, 1] covering the whole image.
        guide_pixels: (H, W, 3) uint8 image covering the same frame, H >= h, W >= w.
        eps: guided filter regularisation.

    Returns:
        (H, W) float32 confidences in [0, 1].
    """
    from sbdn_pipeline.geometry import resize_mask

    height, width = guide_pixels.shape[:2]
    guide = grey(guide_pixels)
    block = max(height / coarse.shape[0], width / coarse.shape[1])
    step = max(1, int(round(block / 2)))
    low_size = (max(1, round(height / step)), max(1, round(width / step)))
    guide_low = _resize_area_float(guide, *low_size)
    source_low = resize_mask(coarse, *low_size)
    radius = max(1, int(round(REFINE_RADIUS_MASK_PIXELS * block / step)))
    mean_a, mean_b = _guided_coefficients(guide_low, source_low, radius, eps)
    a_full = resize_mask(mean_a, height, width)
    b_full = resize_mask(mean_b, height, width)
    return np.clip(a_full * guide + b_full, 0.0, 1.0)


def _resize_area_float(values: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    if values.shape == (height, width):
        return values
    image = Image.fromarray(np.asarray(values, np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.BOX), np.float32)


def reduce_for_storage(mask: np.ndarray, long_side: int = defaults.MASK_PNG_LONG_SIDE
                       ) -> np.ndarray:
    """Area-average a mask down to at most ``long_side`` (what mask_png stores)."""
    mask = np.asarray(mask, np.float32)
    height, width = mask.shape
    if max(height, width) <= long_side:
        return mask
    scale = long_side / max(height, width)
    return _resize_area_float(mask, max(1, round(height * scale)), max(1, round(width * scale)))


def encode_mask_png(mask: np.ndarray) -> bytes:
    """8-bit grayscale PNG of a confidence mask (0 = sharp, 255 = certainly blurred)."""
    from PIL import Image

    grey = np.clip(np.rint(np.asarray(mask, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    # Level 1: masks are smooth and compress well anyway; level 6 took longer than the
    # identifier's post-processing once masks were refined to hundreds of pixels.
    Image.fromarray(grey, mode="L").save(buffer, format="PNG", optimize=False, compress_level=1)
    return buffer.getvalue()


def decode_mask_png(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_mask_png`: float32 confidences in [0, 1]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
