"""Apply blur kernels to images: uniform, depth-varying, and blended into a sharp image."""

from __future__ import annotations

import numpy as np
from scipy import signal

from sbdn_pipeline.synth.kernels import KernelSpec


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur an (H, W, C) float image with a 2-D kernel by FFT convolution.

    The image is reflect-padded by the kernel radius first, so borders are not darkened by
    zeros. FFT cost does not grow with kernel size, which matters for strong blur (kernels of
    100+ pixels).
    """
    image = np.asarray(image, dtype=np.float32)
    pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    mode = "reflect" if min(image.shape[:2]) > max(pad_y, pad_x) else "symmetric"
    padded = np.pad(image, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode=mode)
    blurred = signal.fftconvolve(
        padded, kernel[:, :, None].astype(np.float32), mode="valid", axes=(0, 1)
    )
    return blurred.astype(np.float32)


def blur_depth_varying(
    image: np.ndarray,
    spec: KernelSpec,
    strength_map: np.ndarray,
    *,
    levels: int = 4,
) -> np.ndarray:
    """Blur whose strength (effective sigma, pixels) varies per pixel.

    Renders ``levels`` strengths of the same kernel shape spaced geometrically between the
    map's minimum and maximum and interpolates per pixel between the two nearest ones.
    A real defocus would need a different kernel per pixel; this blend is visually close and
    costs only ``levels`` FFT convolutions.
    """
    s_min = float(strength_map.min())
    s_max = float(strength_map.max())
    if s_max <= 0:
        raise ValueError("strength_map must have a positive maximum")
    s_min = max(s_min, 1e-3)
    if s_max / s_min < 1.05 or levels < 2:
        return convolve(image, spec.kernel(s_max))
    sigmas = np.geomspace(s_min, s_max, levels)
    stack = [convolve(image, spec.kernel(float(s))) for s in sigmas]
    # Fractional level index of every pixel in log-strength space.
    position = np.interp(
        np.log(np.clip(strength_map, s_min, s_max)), np.log(sigmas), np.arange(levels)
    )
    lower = np.floor(position).astype(int).clip(0, levels - 2)
    weight = (position - lower)[..., None].astype(np.float32)
    result = np.zeros_like(stack[0])
    for level in range(levels - 1):
        here = (lower == level)[..., None]
        blended = stack[level] * (1 - weight) + stack[level + 1] * weight
        result = np.where(here, blended, result)
    return result


def composite(sharp: np.ndarray, blurred: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend ``blurred`` over ``sharp`` with per-pixel weight ``alpha`` (H, W) in [0, 1]."""
    weight = np.asarray(alpha, dtype=np.float32)[..., None]
    return sharp.astype(np.float32) * (1.0 - weight) + blurred.astype(np.float32) * weight
