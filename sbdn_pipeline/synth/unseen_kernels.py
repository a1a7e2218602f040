"""Blur kernels that no training preset uses: the cross-recipe split's kernels.

A model that has learned *blur* rather than our generator's particular kernels should find
these too. Each spec renders a normalised kernel at a target effective sigma, like
:class:`sbdn_pipeline.synth.kernels.KernelSpec` (the same ``kernel(sigma)`` /
``description`` interface, so the same blur and compositing code applies).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sbdn_pipeline.synth.kernels import _splat_points, effective_sigma, normalise

UNSEEN_KINDS = ("box", "anisotropic_gaussian", "ring", "arc_motion")


def box_kernel(sigma: float) -> np.ndarray:
    """A uniform square (cheap lenses' and box filters' blur); side sqrt(12) * sigma."""
    side = max(1, int(round(math.sqrt(12.0) * sigma)))
    side += 1 - side % 2  # odd
    return normalise(np.ones((side, side), np.float32))


def anisotropic_gaussian_kernel(sigma: float, ratio: float, angle: float) -> np.ndarray:
    """An elliptical Gaussian with axis ratio ``ratio`` (<= 1), effective sigma ``sigma``."""
    # Effective sigma**2 = (s_major**2 + s_minor**2) / 2.
    major = sigma * math.sqrt(2.0 / (1.0 + ratio**2))
    minor = major * ratio
    radius = int(math.ceil(3.5 * major))
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    u = xs * math.cos(angle) + ys * math.sin(angle)
    v = -xs * math.sin(angle) + ys * math.cos(angle)
    return normalise(np.exp(-0.5 * ((u / major) ** 2 + (v / max(minor, 0.3)) ** 2)))


def ring_kernel(sigma: float, inner: float) -> np.ndarray:
    """An annulus (mirror lenses, strongly over-corrected bokeh): inner radius ``inner`` x R.

    Effective sigma of a uniform annulus of radii (r, R): sqrt((R**2 + r**2) / 4).
    """
    outer = 2.0 * sigma / math.sqrt(1.0 + inner**2)
    radius = int(math.ceil(outer)) + 1
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    distance = np.hypot(ys, xs)
    # One-pixel soft edges on both rims: no aliasing.
    inside = np.clip(outer + 0.5 - distance, 0, 1) * np.clip(distance - inner * outer + 0.5, 0, 1)
    if inside.sum() <= 0:
        inside[radius, radius] = 1.0
    return normalise(inside)


def arc_motion_kernel(sigma: float, curvature: float, angle: float) -> np.ndarray:
    """Motion along a circular arc (a turning camera), scaled to effective sigma ``sigma``."""
    t = np.linspace(-0.5, 0.5, 200)
    bend = curvature * math.pi
    if abs(bend) < 1e-3:
        points = np.stack([np.zeros_like(t), t], axis=1)
    else:
        points = np.stack([(1 - np.cos(bend * t)) / bend, np.sin(bend * t) / bend], axis=1)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    unit = points @ rotation.T
    unit -= unit.mean(axis=0)
    scale = sigma / max(effective_sigma(_splat_points(unit * 20.0)) / 20.0, 1e-6)
    return _splat_points(unit * scale)


@dataclasses.dataclass(frozen=True)
class UnseenKernelSpec:
    """One unseen blur shape, renderable at any strength (see the module docstring)."""

    kind: str
    ratio: float = 1.0
    angle: float = 0.0
    inner: float = 0.5
    curvature: float = 0.0

    def kernel(self, sigma: float) -> np.ndarray:
        """This blur at effective sigma ``sigma`` (pixels); sums to 1."""
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if self.kind == "box":
            return box_kernel(sigma)
        if self.kind == "anisotropic_gaussian":
            return anisotropic_gaussian_kernel(sigma, self.ratio, self.angle)
        if self.kind == "ring":
            return ring_kernel(sigma, self.inner)
        if self.kind == "arc_motion":
            return arc_motion_kernel(sigma, self.curvature, self.angle)
        raise ValueError(f"unknown unseen blur kind {self.kind!r}; expected one of {UNSEEN_KINDS}")

    @property
    def description(self) -> str:
        """Kind name as stored in the data set."""
        return self.kind


def random_unseen_spec(kind: str, rng: np.random.Generator) -> UnseenKernelSpec:
    """A random unseen blur shape of the given kind."""
    if kind not in UNSEEN_KINDS:
        raise ValueError(f"unknown unseen blur kind {kind!r}; expected one of {UNSEEN_KINDS}")
    return UnseenKernelSpec(
        kind,
        ratio=float(rng.uniform(0.2, 0.6)),
        angle=float(rng.uniform(0, math.pi)),
        inner=float(rng.uniform(0.4, 0.8)),
        curvature=float(rng.uniform(0.3, 1.2) * rng.choice([-1, 1])),
    )
