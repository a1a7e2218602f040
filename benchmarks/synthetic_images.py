"""Generated images whose blur is known: fine sharp texture, blurred all over, half blurred.

Used by the scale benchmark's corpus and, through ``tests/imagegen.py``, by the test suite
(the tiny models of :mod:`benchmarks.tiny_models` call the sharp ones sharp and the others
blurry).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def sharp_image(height: int, width: int, seed: int) -> np.ndarray:
    """Fine random texture (2 px blocks): plenty of high-frequency energy everywhere."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height // 2 + 1, width // 2 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:height, :width]


def blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an RGB image (per channel)."""
    blurred = ndimage.gaussian_filter(pixels.astype(np.float32), sigma=(sigma, sigma, 0))
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def blurred_image(height: int, width: int, seed: int, sigma: float = 6.0) -> np.ndarray:
    """Sharp texture blurred over the whole frame."""
    return blur(sharp_image(height, width, seed), sigma)


def half_blurred_image(height: int, width: int, seed: int, sigma: float = 6.0) -> np.ndarray:
    """Left half blurred, right half sharp."""
    pixels = sharp_image(height, width, seed)
    pixels[:, : width // 2] = blur(pixels, sigma)[:, : width // 2]
    return pixels


def encode(pixels: np.ndarray, image_format: str, **save_args: object) -> bytes:
    """Encode an array with Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **save_args)
    return buffer.getvalue()

