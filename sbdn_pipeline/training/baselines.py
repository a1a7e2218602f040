"""Classic blur detectors used as baselines (numpy + scipy, no learning).

* Laplacian variance: the variance of the Laplacian of the grey image; blur lowers it. As a
  classifier, its threshold is chosen on the validation split to maximise accuracy.
* Local Laplacian energy map: the windowed mean of the squared Laplacian, on a log scale,
  normalised per image (as classic blur maps are) and flipped so 1 means blurred, so the same
  F-beta / IoU / MAE metrics apply as for the identifier networks.

Both work on the image at its native size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

# Grey = BT.601 luma.
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype="float32")
_EPSILON = 1e-3


def _grey(image: Any) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        return image.astype("float32") @ _LUMA
    if image.ndim == 2:
        return image.astype("float32")
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
