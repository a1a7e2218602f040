"""Tiny generated blur examples for the training and evaluation tests (never ../shared)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A sharp random texture: pixel noise over a smooth colour gradient, uint8 (H, W, 3)."""
    base = rng.uniform(40, 200, size=3)
    gradient = np.linspace(-30, 30, width)[np.newaxis, :, np.newaxis]
    noise = rng.normal(0, 45, size=(height, width, 3))
    return np.clip(base + gradient + noise, 0, 255).astype("uint8")


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an RGB uint8 image."""
    return np.clip(ndimage.gaussian_filter(image.astype("float32"), (sigma, sigma, 0)), 0, 255).astype("uint8")


def example(
    rng: np.random.Generator, height: int, width: int, blurred: bool, sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (H, W, 3), mask float32 (H, W, 1)): sharp, or blurred on its right part."""
    image = texture(rng, height, width)
    mask = np.zeros((height, width, 1), dtype="float32")
    if blurred:
        start = int(rng.integers(0, width // 2))
        image[:, start:] = blur(image, sigma)[:, start:]
        mask[:, start:] = 1.0
    return image, mask


def classifier_arrays(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 (N, S, S, 3) in [0, 255] and labels float32 (N, 1), half blurred."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(count):
        blurred = index % 2 == 1
        image, _ = example(rng, size, size, blurred)
        images.append(image)
        labels.append([float(blurred)])
    return np.asarray(images, "float32"), np.asarray(labels, "float32")


def identifier_arrays(
    count: int, size: int, mask_stride: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Blurred images float32 (N, S, S, 3) and masks float32 (N, S/k, S/k, 1) (area-averaged)."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(count):
        image, mask = example(rng, size, size, True)
        side = size // mask_stride
        pooled = mask[..., 0].reshape(side, mask_stride, side, mask_stride).mean(axis=(1, 3))
        images.append(image)
        masks.append(pooled[..., np.newaxis])
    return np.asarray(images, "float32"), np.asarray(masks, "float32")
