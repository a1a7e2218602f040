"""Regions that follow real object boundaries: segment maps, region growing, edge snapping.

Real blur borders (depth of field, a blurred occluder) follow the outlines of objects, so the
photographic preset blurs unions of *segments* rather than geometric shapes that cut through
texture. Segments come from human annotations where a photo has them (BSDS500 label maps, one
per annotator) and otherwise from a colour + position k-means of a thumbnail, whose blocky
borders are snapped to the image's own edges with a guided filter.

Everything is deterministic given the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from sbdn_pipeline.masks import grey, guided_filter
from sbdn_pipeline.synth.regions import (_connected_segments, _kmeans_segments,
                                         add_adjacent_segments)


def read_label_map(data: bytes) -> np.ndarray:
    """Decode a label-map PNG (8- or 16-bit, one integer per segment) to int32 (H, W)."""
    import io

    with Image.open(io.BytesIO(data)) as image:
        labels = np.asarray(image)
    if labels.ndim == 3:  # an RGB-coded label map: one id per colour
        labels = labels[..., 0].astype(np.int64) * 65536 + labels[..., 1] * 256 + labels[..., 2]
    return labels.astype(np.int32)


def _boundary_contrast(labels: np.ndarray, image: np.ndarray) -> float:
    """How much stronger the image's gradient is on the label map's borders than on average."""
    luma = grey(image)
    gradient = np.hypot(ndimage.sobel(luma, 0), ndimage.sobel(luma, 1))
    border = np.zeros(labels.shape, bool)
    border[:-1] |= labels[:-1] != labels[1:]
    border[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    if not border.any():
        return 0.0
    return float(gradient[border].mean() / (gradient.mean() + 1e-6))


def orient_labels(labels: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A label map turned to the photo's orientation.

    Photos stored turned by a quarter (portrait BSDS500 photos saved as landscape) keep their
    segmentation upright: of the two quarter turns, the one whose segment borders lie on the
    photo's edges is taken. Maps of the photo's own aspect are returned as they are.
    """
    height, width = image.shape[:2]
    if labels.shape == (height, width) or labels.shape != (width, height) or height == width:
        return labels
    turns = [np.rot90(labels, k) for k in (1, 3)]
    return max(turns, key=lambda turned: _boundary_contrast(turned, image))


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map (labels must never be interpolated)."""
    if labels.shape == (height, width):
        return labels
    image = Image.fromarray(labels.astype(np.int32), mode="I")
    return np.asarray(image.resize((width, height), Image.NEAREST), dtype=np.int32)


def snap_to_edges(image: np.ndarray, region: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Move the border of a coarse binary region onto the image's edges (boolean result)."""
    height, width = region.shape
    # Colour segments come from a 96 px thumbnail: their borders are up to about half a
    # thumbnail pixel off, so the window spans a few thumbnail pixels.
    radius = radius or max(3, round(2 * max(height, width) / 96))
    refined = guided_filter(grey(image), region.astype(np.float32), radius, eps=1e-3)
    return refined >= 0.5


def colour_segments(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Connected colour + position k-means segments of a 96 px thumbnail, at full size."""
    height, width = image.shape[:2]
    scale = 96.0 / max(height, width)
    thumb_size = (max(8, round(width * scale)), max(8, round(height * scale)))
    thumb = np.asarray(Image.fromarray(image).resize(thumb_size, Image.BILINEAR))
    labels = _kmeans_segments(thumb, rng, int(rng.integers(4, 9)))
    return resize_labels(_connected_segments(labels), height, width)


def grow_region(
    segments: np.ndarray, rng: np.random.Generator, target: float, *, seed_central: bool
) -> np.ndarray:
    """A connected union of adjacent segments covering about ``target`` of the frame.

    Starts from a large segment (near the centre if ``seed_central``: subjects usually are)
    and adds neighbouring segments while that brings the area closer to the target.
    """
    ids, sizes = np.unique(segments, return_counts=True)
    weights = sizes.astype(np.float64)
    if seed_central:
        ys, xs = np.indices(segments.shape)
        centre_distance = np.hypot(ys / segments.shape[0] - 0.5, xs / segments.shape[1] - 0.5)
        mean_distance = ndimage.mean(centre_distance, labels=segments, index=ids)
        weights = weights * np.exp(-4.0 * np.asarray(mean_distance))
    region = segments == rng.choice(ids, p=weights / weights.sum())
    return ndimage.binary_fill_holes(
        add_adjacent_segments(segments, region, target, rng, ring_width=2))


def segment_sharpness(image: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(segment ids, 90th percentile of |Laplacian| per segment) on the grey image, 0-255 scale.

    Out-of-focus parts of a photo lack high frequencies: their strongest local detail is weak.
    """
    luma = grey(image) * 255.0
    detail = np.abs(ndimage.laplace(ndimage.gaussian_filter(luma, 0.7)))
    ids = np.unique(segments)
    scores = np.array([np.percentile(detail[segments == i], 90) for i in ids], np.float32)
    return ids, scores


def natural_blur_mask(
    image: np.ndarray, segments: np.ndarray, *, relative_threshold: float = 0.3
) -> np.ndarray:
    """Estimate the out-of-focus part of a photo that has natural depth of field (bool mask).

    A segment is called soft when its detail score is below ``relative_threshold`` of the
    sharpest large segment's. A heuristic label (no ground truth exists for these photos),
    used only for photos listed as having natural depth of field; tiny segments are ignored.
    """
    ids, scores = segment_sharpness(image, segments)
    sizes = ndimage.sum(np.ones_like(segments), labels=segments, index=ids)
    large = sizes >= 0.02 * segments.size
    if not large.any():
        return np.zeros(segments.shape, bool)
    reference = float(scores[large].max())
    soft_ids = ids[large & (scores < relative_threshold * reference)]
    mask = np.isin(segments, soft_ids)
    return ndimage.binary_opening(mask, iterations=2)
