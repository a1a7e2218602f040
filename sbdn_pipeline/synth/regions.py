"""Where an image gets blurred: soft blend weights (alpha) for each region shape.

Every function returns ``alpha``, a float32 (H, W) array in [0, 1]: 1 = fully blurred pixel,
0 = untouched. Region borders are soft (feathered) so a blurred region never ends in a paste
seam; the stored label mask is ``alpha >= 0.5`` (see :func:`label_mask`).

``side`` and ``foreground_background`` also return a *depth* map in [0, 1] that grows away from
the in-focus part; it drives depth-varying blur strength (shallow depth of field blurs things
more the further they are from the focal plane).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

REGION_SHAPES = (
    "rectangle",
    "ellipse",
    "polygon",
    "blob",
    "side",
    "foreground_background",
    "whole",
)

# The stored mask marks a pixel blurred when at least half of it comes from the blurred image.
MASK_THRESHOLD = 0.5


def label_mask(alpha: np.ndarray) -> np.ndarray:
    """Binary uint8 mask (1 = blurred) from a blend weight map."""
    return (alpha >= MASK_THRESHOLD).astype(np.uint8)


def feather(hard: np.ndarray, width: float) -> np.ndarray:
    """Soften a binary region's border over about ``width`` pixels (Gaussian sigma = width/2).

    The 0.5 level of the result stays on the original border (for straight borders), so
    ``label_mask`` of the feathered region is almost exactly the hard region.
    """
    soft = hard.astype(np.float32)
    if width > 0:
        soft = ndimage.gaussian_filter(soft, sigma=width / 2.0, mode="nearest")
    return np.clip(soft, 0.0, 1.0)


def whole_alpha(height: int, width: int) -> np.ndarray:
    """The entire frame is blurred."""
    return np.ones((height, width), dtype=np.float32)


def rectangle_alpha(
    height: int,
    width: int,
    rng: np.random.Generator,
    feather_px: float,
    *,
    min_side: float = 0.2,
    max_side: float = 0.8,
) -> np.ndarray:
    """A random axis-aligned rectangle with sides between min_side and max_side of the frame."""
    rect_h = int(round(height * rng.uniform(min_side, max_side)))
    rect_w = int(round(width * rng.uniform(min_side, max_side)))
    top = int(rng.integers(0, height - rect_h + 1))
    left = int(rng.integers(0, width - rect_w + 1))
    hard = np.zeros((height, width), dtype=bool)
    hard[top : top + rect_h, left : left + rect_w] = True
    return feather(hard, feather_px)


def ellipse_alpha(
    height: int, width: int, rng: np.random.Generator, feather_px: float
) -> np.ndarray:
    """A random rotated ellipse (it may extend past the frame)."""
    long_side = max(height, width)
    cy = rng.uniform(0.15, 0.85) * height
    cx = rng.uniform(0.15, 0.85) * width
    semi_a = rng.uniform(0.12, 0.5) * long_side
    semi_b = semi_a * rng.uniform(0.35, 1.0)
    angle = rng.uniform(0, math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dy, dx = ys - cy, xs - cx
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    hard = (u / semi_a) ** 2 + (v / semi_b) ** 2 <= 1.0
    return feather(hard, feather_px)


def _random_star_polygon(
    height: int, width: int, rng: np.random.Generator, spikiness: float
) -> list[tuple[float, float]]:
    """Vertices (x, y) of a random star-shaped (never self-intersecting) polygon."""
    n_vertices = int(rng.integers(5, 13))
    cy = rng.uniform(0.2, 0.8) * height
    cx = rng.uniform(0.2, 0.8) * width
    mean_radius = rng.uniform(0.15, 0.45) * max(height, width)
    angles = np.sort(rng.uniform(0, 2 * math.pi, size=n_vertices))
    radii = mean_radius * np.clip(1 + spikiness * rng.normal(size=n_vertices), 0.3, 1.8)
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii)]


def _rasterise_polygon(height: int, width: int, vertices: list[tuple[float, float]]) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon(vertices, fill=255)
    return np.asarray(canvas) > 127


def polygon_alpha(
    height: int, width: int, rng: np.random.Generator, feather_px: float
) -> np.ndarray:
    """A random star-shaped polygon with straight edges and sharp corners."""
    vertices = _random_star_polygon(height, width, rng, spikiness=0.35)
    return feather(_rasterise_polygon(height, width, vertices), feather_px)


def blob_alpha(height: int, width: int, rng: np.random.Generator, feather_px: float) -> np.ndarray:
    """An organic blob: a random polygon whose outline is smoothed into curves."""
    vertices = _random_star_polygon(height, width, rng, spikiness=0.45)
    hard = _rasterise_polygon(height, width, vertices)
    # Rounding: blur the polygon heavily and re-threshold, so corners become curves. Done on a
    # 4x smaller copy because only the outline's shape matters here.
    small = hard[::4, ::4].astype(np.float32)
    rounding = rng.uniform(0.03, 0.08) * max(small.shape)
    rounded_small = ndimage.gaussian_filter(small, sigma=rounding) >= 0.5
    if not rounded_small.any():
        return feather(hard, feather_px)
    rounded = (
        np.asarray(
            Image.fromarray(rounded_small.astype(np.uint8) * 255).resize(
                (width, height), Image.BILINEAR
            )
        )
        >= 128
    )
    return feather(rounded, feather_px)


def side_alpha(
    height: int, width: int, rng: np.random.Generator, transition_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """One side of the frame blurred, with a graded transition (shallow depth of field).

    A random straight line splits the frame; the blur fades in linearly over
    ``transition_px`` pixels across it, and depth keeps growing towards the far edge.

    Returns:
        (alpha, depth), both float32 (H, W) in [0, 1].
    """
    # Mostly near-horizontal lines with the blur at the top (a ground plane receding into an
    # out-of-focus background), but any direction can happen.
    if rng.random() < 0.6:
        angle = -math.pi / 2 + rng.normal(scale=0.3)
    else:
        angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    coordinate = ys * math.sin(angle) + xs * math.cos(angle)
    lo, hi = float(coordinate.min()), float(coordinate.max())
    # Where the blur is half-strength: leave 20-75 % of the frame blurred.
    boundary = hi - rng.uniform(0.2, 0.75) * (hi - lo)
    distance = coordinate - boundary  # > 0 on the blurred side
    alpha = np.clip(0.5 + distance / max(transition_px, 1.0), 0.0, 1.0)
    depth = np.clip(distance / max(hi - boundary, 1.0), 0.0, 1.0)
    return alpha.astype(np.float32), depth.astype(np.float32)


def _kmeans_segments(
    image: np.ndarray, rng: np.random.Generator, n_clusters: int, iterations: int = 8
) -> np.ndarray:
    """Label map of a colour+position k-means on a small image (h, w, 3)."""
    height, width = image.shape[:2]
    colour = image.reshape(-1, 3).astype(np.float32) / 255.0
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    # Position weight makes segments compact enough to look like objects, not colour noise.
    position = np.stack([ys.ravel(), xs.ravel()], axis=1) / max(height, width)
    features = np.concatenate([colour, 1.0 * position], axis=1)
    centres = features[rng.choice(len(features), size=n_clusters, replace=False)].copy()
    labels = np.zeros(len(features), dtype=int)
    for _ in range(iterations):
        distances = ((features[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        labels = distances.argmin(1)
        for k in range(n_clusters):
            members = features[labels == k]
            if len(members):
                centres[k] = members.mean(0)
    return labels.reshape(height, width)


def _connected_segments(labels: np.ndarray) -> np.ndarray:
    """Split every cluster of a label map into its connected pieces; ids start at 1."""
    segments = np.zeros(labels.shape, dtype=np.int32)
    next_id = 0
    for cluster in np.unique(labels):
        pieces, count = ndimage.label(labels == cluster)
        segments[pieces > 0] = pieces[pieces > 0] + next_id
        next_id += count
    return segments


def add_adjacent_segments(segments: np.ndarray, region: np.ndarray, target: float,
                          rng: np.random.Generator, ring_width: int = 1) -> np.ndarray:
    """Grow ``region`` by random touching segments while its area gets closer to ``target``.

    A segment touches when it lies within ``ring_width`` pixels of the region.
    """
    while region.mean() < target:
        ring = ndimage.binary_dilation(region, iterations=ring_width) & ~region
        neighbours = np.unique(segments[ring])
        if len(neighbours) == 0:
            break
        candidate = region | (segments == rng.choice(neighbours))
        if abs(candidate.mean() - target) > abs(region.mean() - target):
            break
        region = candidate
    return region


def foreground_background_alpha(
    image: np.ndarray, rng: np.random.Generator, feather_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Blur a content-aligned, connected part of the scene (e.g. the background of a subject).

    Real depth-of-field borders follow object outlines, not geometric shapes. Without depth we
    approximate objects with a colour+position k-means segmentation of a 64 px thumbnail, split
    into connected segments, and grow one region from a random large segment through adjacent
    segments until it covers roughly 20-80 % of the frame (holes filled). That region is
    blurred; the rest stays sharp.

    Returns:
        (alpha, depth): depth grows with distance from the sharp part.
    """
    height, width = image.shape[:2]
    scale = 64.0 / max(height, width)
    thumb_size = (max(8, round(width * scale)), max(8, round(height * scale)))
    thumb = np.asarray(Image.fromarray(image).resize(thumb_size, Image.BILINEAR))
    labels = _kmeans_segments(thumb, rng, int(rng.integers(3, 7)))
    segments = _connected_segments(labels)
    ids, sizes = np.unique(segments, return_counts=True)
    target = rng.uniform(0.2, 0.8)
    # Start from a segment picked in proportion to its size: big, object-like regions.
    region = segments == rng.choice(ids, p=sizes / sizes.sum())
    region = ndimage.binary_fill_holes(add_adjacent_segments(segments, region, target, rng))
    # Remove speckles: a segment map is ragged at cluster borders.
    region = ndimage.binary_closing(ndimage.binary_opening(region), iterations=1)
    small = Image.fromarray(region.astype(np.uint8) * 255)
    hard = np.asarray(small.resize((width, height), Image.BILINEAR)) >= 128
    distance = ndimage.distance_transform_edt(hard)
    depth = np.clip(distance / max(1.0, 0.25 * max(height, width)), 0.0, 1.0)
    return feather(hard, feather_px), depth.astype(np.float32)


def linear_depth_ramp(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A depth map rising linearly across the frame in a random direction, in [0, 1]."""
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    coordinate = ys * math.sin(angle) + xs * math.cos(angle)
    lo, hi = float(coordinate.min()), float(coordinate.max())
    return ((coordinate - lo) / max(hi - lo, 1.0)).astype(np.float32)
