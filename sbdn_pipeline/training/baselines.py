"""Classic blur detectors used as baselines (numpy + scipy, no learning).

Every baseline is a named entry of :data:`BASELINES` (image-level score or blur map), so the
evaluation, the comparison tables and the model card list them from one place.

* blur effect (Crete-Roffet et al. 2007): skimage's ``measure.blur_effect``, reimplemented.
* Laplacian variance: the variance of the Laplacian of the grey image; blur lowers it. As a
  classifier, its threshold is chosen on the validation split to maximise accuracy.
* Local Laplacian energy map: the windowed mean of the squared Laplacian, on a log scale,
  normalised per image (as classic blur maps are) and flipped so 1 means blurred, so the same
  F-beta / IoU / MAE metrics apply as for the identifier networks.
* LBP sharpness (Yi & Eramian 2016, "LBP-based segmentation of defocus blur"): the local
  fraction of sharpness-relevant rotation-invariant uniform LBP codes, as a map and as an
  image-level mean.
* all blurred: a constant reference map.

All work on the image at its native size. Image-level classifiers get their threshold from
the validation split (``sbdn evaluate``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

# Grey = BT.601 luma.
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype="float32")
_EPSILON = 1e-3


def _grey(image: Any) -> np.ndarray:
    return _to_grey(image, _LUMA, "float32")


def _to_grey(image: Any, weights: np.ndarray, dtype: str) -> np.ndarray:
    """RGB (H, W, 3) -> weights-weighted grey; a grey (H, W) image is only cast."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        return image.astype(dtype) @ weights
    if image.ndim == 2:
        return image.astype(dtype)
    raise ValueError(f"expected an RGB (H, W, 3) or grey (H, W) image, got shape {image.shape}")


def laplacian(image: Any) -> np.ndarray:
    """4-neighbour Laplacian of the grey image (values in grey levels), reflected borders."""
    return ndimage.laplace(_grey(image), mode="reflect")


def laplacian_variance(image: Any) -> float:
    """Variance of the Laplacian of an RGB uint8 or grey image; lower means blurrier."""
    return float(np.var(laplacian(image)))


def laplacian_blur_score(image: Any) -> float:
    """A blur score for the Laplacian-variance classifier: -log10(variance); higher = blurrier.

    A monotone transform of the variance, so ROC AUC and accuracy are those of the variance
    itself; the log only keeps thresholds readable.
    """
    return -float(np.log10(laplacian_variance(image) + _EPSILON))


def energy_window(height: int, width: int) -> int:
    """Side of the averaging window: 1/32 of the long side (32 px at 1024 px), at least 7 px."""
    return max(7, int(round(max(height, width) / 32)))


def laplacian_energy_map(
    image: Any,
    window: int | None = None,
    low_percentile: float = 1.0,
    high_percentile: float = 99.0,
) -> np.ndarray:
    """Per-pixel P(blurred)-like map in [0, 1] from local Laplacian energy (1 = blurred).

    Args:
        image: RGB uint8 (H, W, 3) or grey (H, W).
        window: side of the averaging window; default :func:`energy_window`.
        low_percentile: log-energy percentile mapped to 1 (most blurred).
        high_percentile: log-energy percentile mapped to 0 (sharpest).

    Returns:
        float32 (H, W) map.
    """
    response = laplacian(image)
    height, width = response.shape
    window = window or energy_window(height, width)
    energy = ndimage.uniform_filter(response * response, size=window, mode="reflect")
    log_energy = np.log10(np.maximum(energy, 0.0) + _EPSILON)
    low, high = np.percentile(log_energy, [low_percentile, high_percentile])
    if high - low < 1e-6:  # a flat image: no evidence either way
        return np.full((height, width), 0.5, dtype="float32")
    sharpness = np.clip((log_energy - low) / (high - low), 0.0, 1.0)
    return (1.0 - sharpness).astype("float32")


# --- blur effect (Crete-Roffet et al. 2007) -----------------------------------------------

# skimage.color.rgb2gray weights: blur_effect is defined on this grey image.
_SKIMAGE_GREY = np.asarray([0.2125, 0.7154, 0.0721], dtype="float64")
_SOBEL_EDGE = np.asarray([1.0, 0.0, -1.0])
_SOBEL_SMOOTH = np.asarray([0.25, 0.5, 0.25])


def _grey64(image: Any) -> np.ndarray:
    return _to_grey(image, _SKIMAGE_GREY, "float64")  # skimage's weights, as blur_effect


def _sobel(grey: np.ndarray, axis: int) -> np.ndarray:
    """skimage.filters.sobel(grey, axis=axis): the 3x3 kernel in one pass (two 1-D passes
    give the same values but were 3x slower: the pass along rows strides through memory)."""
    kernel = np.outer(_SOBEL_EDGE, _SOBEL_SMOOTH) if axis == 0 else np.outer(
        _SOBEL_SMOOTH, _SOBEL_EDGE
    )
    return ndimage.convolve(grey, kernel, mode="reflect")


def blur_effect(image: Any, h_size: int = 11) -> float:
    """The no-reference blur metric of Crete-Roffet et al. (2007), as skimage computes it.

    Equals ``skimage.measure.blur_effect(grey, h_size)`` (``channel_axis=-1`` for RGB, on
    skimage's grey): per axis, how much of the Sobel gradient survives a re-blur with an
    ``h_size`` box filter; the maximum over the two axes. 0 = sharp, 1 = blurred.

    Args:
        image: RGB (H, W, 3) or grey (H, W), any scale (the metric is scale-free).
        h_size: length of the re-blurring box filter.

    Returns:
        A score in [0, 1], higher = blurrier; 1.0 for a flat image (skimage gives NaN there).
    """
    grey = _grey64(image)
    inner = tuple(slice(2, size - 1) for size in grey.shape)
    per_axis = []
    for axis in (0, 1):
        reblurred = ndimage.uniform_filter1d(grey, h_size, axis=axis)
        sharp = np.abs(_sobel(grey, axis))
        kept = np.maximum(0.0, sharp - np.abs(_sobel(reblurred, axis)))
        total = float(np.sum(sharp[inner]))
        if total == 0.0:  # no gradient at all: nothing sharp to find
            per_axis.append(1.0)
            continue
        per_axis.append(abs(total - float(np.sum(kept[inner]))) / total)
    return float(max(per_axis))


# --- LBP sharpness (Yi & Eramian 2016) ----------------------------------------------------

LBP_THRESHOLD = 0.016  # T_LBP of the paper, on grey levels scaled to [0, 1]
# The paper's windows (11, 15, 21 px) were chosen on CUHK photos of about 640 px.
LBP_WINDOWS_AT_640 = (11, 15, 21)
_DIAGONAL = np.sqrt(0.5)  # a radius-1 circle crosses the diagonals at (+-0.707, +-0.707)


def _neighbours(grey: np.ndarray) -> Iterator[np.ndarray]:
    """The 8 neighbours at radius 1, anticlockwise from the right; diagonals bilinear."""
    height, width = grey.shape
    padded = np.pad(grey, 1, mode="edge")

    def at(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    a = _DIAGONAL
    axial = ((0, 1), (-1, 0), (0, -1), (1, 0))  # right, up, left, down
    for index, (dy, dx) in enumerate(axial):
        yield at(dy, dx)
        ny, nx = axial[(index + 1) % 4]
        # Diagonal between this axial neighbour and the next one.
        cy, cx = dy + ny, dx + nx
        yield (
            (1 - a) * (1 - a) * grey
            + a * (1 - a) * (at(dy, dx) + at(ny, nx))
            + a * a * at(cy, cx)
        )


def lbp_sharp_pixels(image: Any, threshold: float = LBP_THRESHOLD) -> np.ndarray:
    """Pixels whose LBP(8, 1) riu2 code is one of the sharpness-relevant codes 6-9.

    A neighbour's bit is set when it is brighter than the centre by more than ``threshold``
    (grey levels in [0, 1]), as in the authors' released code; riu2 maps a pattern with at
    most two 0/1 transitions around the circle to its number of set bits (0-8), any other
    pattern to 9. Flat and smoothly varying (blurred) areas give low codes; texture and
    sharp detail give 6-9.

    Returns:
        bool (H, W).
    """
    grey = _grey(image)
    limit = threshold * 255.0
    count = np.zeros(grey.shape, dtype="uint8")
    transitions = np.zeros(grey.shape, dtype="uint8")
    first = previous = None
    for neighbour in _neighbours(grey):
        bit = (neighbour - grey) > limit
        count += bit
        if previous is None:
            first = bit
        else:
            transitions += bit != previous
        previous = bit
    transitions += previous != first
    return (transitions > 2) | (count >= 6)


def lbp_windows(height: int, width: int) -> tuple[int, ...]:
    """Odd window sides of the paper's three scales, scaled to the long side (at least 5)."""
    long_side = max(height, width)
    sides = []
    for side in LBP_WINDOWS_AT_640:
        scaled = max(5, int(round(side * long_side / 640)))
        sides.append(scaled + 1 - scaled % 2)
    return tuple(sorted(set(sides)))


def lbp_blur_map(image: Any, threshold: float = LBP_THRESHOLD) -> np.ndarray:
    """Per-pixel P(blurred)-like map in [0, 1] from local LBP sharpness (1 = blurred).

    The sharpness of a pixel is the fraction of sharpness-relevant codes in a window around
    it (a box filter: O(1) per pixel whatever the window), averaged over the three scales of
    :func:`lbp_windows`, min-max normalised per image as the authors do, and flipped. The
    paper's matting and multi-scale inference steps are left out (they cost seconds).

    Returns:
        float32 (H, W) map; 0.5 everywhere when the sharpness does not vary.
    """
    sharp = lbp_sharp_pixels(image, threshold).astype("float32")
    sharpness = np.mean(
        [
            ndimage.uniform_filter(sharp, size=side, mode="nearest")
            for side in lbp_windows(*sharp.shape)
        ],
        axis=0,
    )
    low, high = float(sharpness.min()), float(sharpness.max())
    if high - low < 1e-6:
        return np.full(sharp.shape, 0.5, dtype="float32")
    return (1.0 - (sharpness - low) / (high - low)).astype("float32")


def lbp_blur_score(image: Any, threshold: float = LBP_THRESHOLD) -> float:
    """Image-level score: 1 - the fraction of sharpness-relevant LBP codes; higher = blurrier."""
    return 1.0 - float(np.mean(lbp_sharp_pixels(image, threshold)))


def all_blurred_map(image: Any) -> np.ndarray:
    """Reference map that calls every pixel blurred (what a mask must beat on mostly-blurred
    photos)."""
    shape = np.asarray(image).shape[:2]
    return np.ones(shape, dtype="float32")


# --- registry -----------------------------------------------------------------------------

IMAGE_LEVEL = "image"
MAP = "map"


@dataclass(frozen=True)
class Baseline:
    """A classic detector: ``compute(image)`` gives a blur score (image level, higher =
    blurrier) or a float32 (H, W) blur map in [0, 1] (1 = blurred), at native resolution."""

    name: str
    kind: str
    compute: Callable[[Any], Any]
    description: str


BASELINES: dict[str, Baseline] = {
    baseline.name: baseline
    for baseline in (
        Baseline(
            "blur-effect",
            IMAGE_LEVEL,
            blur_effect,
            "skimage blur_effect (Crete-Roffet et al. 2007), h_size 11, on the grey image",
        ),
        Baseline(
            "laplacian-variance",
            IMAGE_LEVEL,
            laplacian_blur_score,
            "variance of the Laplacian of the grey image (score -log10 variance)",
        ),
        Baseline(
            "lbp-mean",
            IMAGE_LEVEL,
            lbp_blur_score,
            "1 - fraction of sharpness-relevant LBP codes (Yi & Eramian 2016) in the image",
        ),
        Baseline(
            "laplacian-energy",
            MAP,
            laplacian_energy_map,
            "local Laplacian energy, log scale, normalised per image",
        ),
        Baseline(
            "lbp-map",
            MAP,
            lbp_blur_map,
            "local fraction of sharpness-relevant LBP codes at three scales (Yi & Eramian "
            "2016, without matting), normalised per image",
        ),
        Baseline("all-blurred", MAP, all_blurred_map, "reference: every pixel blurred"),
    )
}


def image_level_baselines() -> list[Baseline]:
    """The image-level (classifier) baselines, in registry order."""
    return [baseline for baseline in BASELINES.values() if baseline.kind == IMAGE_LEVEL]


def map_baselines() -> list[Baseline]:
    """The blur-map (identifier) baselines, in registry order."""
    return [baseline for baseline in BASELINES.values() if baseline.kind == MAP]
