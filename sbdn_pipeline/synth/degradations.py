"""Photometric and framing changes that are NOT blur.

They are applied to sharp negatives and, with the same probabilities, *after* blurring to
positives, so noise, darkness, JPEG artefacts, flat content or scale never tell the networks
whether an image was blurred.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and clip a float image to uint8."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a uint8 RGB image with an anti-aliasing filter (Lanczos)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))


def cap_long_side(image: np.ndarray, max_long_side: int) -> np.ndarray:
    """Downscale (never upscale) so the long side is at most ``max_long_side``."""
    height, width = image.shape[:2]
    long_side = max(height, width)
    if long_side <= max_long_side:
        return image
    scale = max_long_side / long_side
    return resize_to(image, max(1, round(width * scale)), max(1, round(height * scale)))


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Shrink by ``factor`` (< 1) with anti-aliasing: a smaller, still sharp image."""
    height, width = image.shape[:2]
    return resize_to(image, max(1, round(width * factor)), max(1, round(height * factor)))


def smallest_scale(image: np.ndarray, min_short_side: int) -> float:
    """The least factor an image may be shrunk by: a training crop must not need upscaling."""
    return min(1.0, min_short_side / min(image.shape[:2]))


def uniform_at_least(rng: np.random.Generator, bounds: tuple[float, float],
                     floor: float) -> float:
    """A uniform draw from ``bounds``, both ends raised to at least ``floor``."""
    low, high = bounds
    return rng.uniform(max(low, floor), max(high, floor))


def random_downscale(image: np.ndarray, rng: np.random.Generator,
                     factor_range: tuple[float, float], floor: float) -> tuple[np.ndarray, bool]:
    """(image shrunk by a random factor from ``factor_range`` (>= ``floor``), shrunk at all).

    Factors within 2% of 1 leave the image as it is: resampling would only soften it.
    """
    factor = uniform_at_least(rng, factor_range, floor)
    if factor < 0.98:
        return downscale(image, factor), True
    return image, False


def random_crop(
    image: np.ndarray, rng: np.random.Generator, min_fraction: float = 0.4
) -> np.ndarray:
    """A random crop keeping between ``min_fraction`` and all of each side."""
    height, width = image.shape[:2]
    crop_h = int(round(height * rng.uniform(min_fraction, 1.0)))
    crop_w = int(round(width * rng.uniform(min_fraction, 1.0)))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return image[top : top + crop_h, left : left + crop_w]


def texture_energy(image: np.ndarray) -> np.ndarray:
    """Per-pixel gradient magnitude of the luminance (high = textured)."""
    grey = image.astype(np.float32).mean(axis=-1)
    return np.hypot(ndimage.sobel(grey, axis=0), ndimage.sobel(grey, axis=1))


def low_texture_crop(
    image: np.ndarray, rng: np.random.Generator, side_fraction: float, candidates: int = 24
) -> np.ndarray:
    """The flattest of several random square crops (sky, walls, road): a hard sharp case.

    Args:
        side_fraction: crop side as a fraction of the image's short side.
        candidates: how many random windows to compare.
    """
    top, left, side = low_texture_box(image, rng, side_fraction, candidates)
    return image[top : top + side, left : left + side]


def low_texture_box(
    image: np.ndarray, rng: np.random.Generator, side_fraction: float, candidates: int = 24
) -> tuple[int, int, int]:
    """(top, left, side) of the flattest of several random square windows of the image."""
    height, width = image.shape[:2]
    side = max(16, int(round(min(height, width) * side_fraction)))
    side = min(side, height, width)
    energy = texture_energy(image[::4, ::4])
    # Box sums over the downsampled energy map via an integral image: O(1) per candidate.
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    best, best_score = (0, 0), np.inf
    for _ in range(candidates):
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        y0, x0, small_side = top // 4, left // 4, max(1, side // 4)
        y1, x1 = min(y0 + small_side, energy.shape[0]), min(x0 + small_side, energy.shape[1])
        score = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        score /= max(1, (y1 - y0) * (x1 - x0))
        if score < best_score:
            best, best_score = (top, left), score
    return best[0], best[1], side


def darken_night(image: np.ndarray, gamma: float, gain: float) -> np.ndarray:
    """Simulate a dim/night exposure: a gamma curve pushing mid-tones down, then a gain < 1."""
    normalised = np.clip(image.astype(np.float32) / 255.0, 0, 1)
    return (normalised**gamma) * gain * 255.0


def add_sensor_noise(
    image: np.ndarray, rng: np.random.Generator, read_sigma: float, shot_scale: float
) -> np.ndarray:
    """Signal-dependent sensor noise: Gaussian read noise plus shot noise ~ sqrt(intensity).

    Args:
        read_sigma: standard deviation of the signal-independent part, in 0-255 units.
        shot_scale: the shot-noise variance is ``shot_scale * intensity``.
    """
    image = image.astype(np.float32)
    variance = read_sigma**2 + shot_scale * np.clip(image, 0, 255)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.sqrt(variance)
    # Real sensor noise is partly shared between channels (demosaicing, luminance noise).
    shared = rng.standard_normal(image.shape[:2] + (1,), dtype=np.float32) * np.sqrt(variance)
    return image + 0.6 * noise + 0.6 * shared


def jpeg_recompress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode to JPEG at ``quality`` and decode again (block artefacts, lost detail)."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
