"""Blur point-spread functions (kernels) and the blur strength they correspond to.

Every kernel is a float32 2-D array with odd side lengths that sums to 1. Kernels are built
from a target *effective sigma* (see :func:`effective_sigma`) so that strengths are comparable
across blur kinds: a Gaussian of sigma 3, a defocus disk of radius 6 and a linear motion streak of
length ~14.7 all have an effective sigma of 3 pixels.

A :class:`KernelSpec` fixes the *shape* of a blur (kind, motion angle, aperture blades, shake
trajectory, ...) independently of its strength, so the same blur can be rendered at several
strengths (depth-varying blur blends several strengths of one kernel shape).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import signal

BLUR_KINDS = ("gaussian", "defocus", "motion", "shake", "mixture")

# Anti-aliased point splatting and disk coverage are evaluated on this many sub-samples per
# pixel side; 4 keeps thin motion streaks smooth without being slow.
_SUPERSAMPLE = 4


def normalise(kernel: np.ndarray) -> np.ndarray:
    """Scale a non-negative kernel so it sums to 1 (brightness-preserving).

    Raises:
        ValueError: if the kernel has no positive mass.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    total = kernel.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("kernel has no positive mass; cannot normalise it")
    return (kernel / total).astype(np.float32)


def effective_sigma(kernel: np.ndarray) -> float:
    """Blur strength of any kernel in pixels: sqrt(second central moment / 2).

    For a Gaussian this is its sigma; a uniform disk of radius R gives R/2; a line of length L
    gives L/sqrt(24). Second moments add under convolution, so mixtures combine as
    sqrt(s1**2 + s2**2).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    total = kernel.sum()
    ys, xs = np.indices(kernel.shape, dtype=np.float64)
    cy = (ys * kernel).sum() / total
    cx = (xs * kernel).sum() / total
    second_moment = (((ys - cy) ** 2 + (xs - cx) ** 2) * kernel).sum() / total
    return float(math.sqrt(second_moment / 2.0))


def _odd_side(radius: float) -> int:
    return 2 * int(math.ceil(radius)) + 1


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Isotropic Gaussian kernel truncated at 3.5 sigma."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = max(1, int(math.ceil(3.5 * sigma)))
    axis = np.arange(-radius, radius + 1, dtype=np.float64)
    profile = np.exp(-0.5 * (axis / sigma) ** 2)
    return normalise(np.outer(profile, profile))


def _subpixel_grid(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of _SUPERSAMPLE^2 sub-samples per pixel, shape (side, side, S*S)."""
    side = 2 * radius + 1
    offsets = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    centres = np.arange(side, dtype=np.float64) - radius
    ys = centres[:, None, None] + oy.reshape(1, 1, -1)
    xs = centres[None, :, None] + ox.reshape(1, 1, -1)
    ys = np.broadcast_to(ys, (side, side, ys.shape[-1]))
    xs = np.broadcast_to(xs, (side, side, xs.shape[-1]))
    return ys, xs


def defocus_kernel(
    radius: float,
    *,
    blades: int = 0,
    rotation: float = 0.0,
    rim: float = 0.0,
    edge_softness: float = 0.5,
) -> np.ndarray:
    """Lens-like defocus kernel: a (possibly polygonal) aperture with a soft edge.

    Args:
        radius: aperture radius in pixels (circumradius for polygonal apertures).
        blades: number of aperture blades; 0 gives a round aperture, 5-9 a polygon.
        rotation: polygon rotation in radians.
        rim: extra brightness towards the rim (0 = uniform disk; real lenses with spherical
            aberration show bright "soap-bubble" rims, around 0.3-1).
        edge_softness: width in pixels of the linear fall-off at the aperture edge, which avoids
            the ringing a hard-edged disk would add and mimics diffraction/aberration.
    """
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    half = int(math.ceil(radius + edge_softness)) + 1
    ys, xs = _subpixel_grid(half)
    r = np.hypot(xs, ys)
    if blades >= 3:
        theta = np.arctan2(ys, xs) - rotation
        sector = 2 * math.pi / blades
        local = np.mod(theta, sector) - sector / 2
        # Distance to the polygon edge along this direction (circumradius = radius).
        boundary = radius * math.cos(math.pi / blades) / np.cos(local)
    else:
        boundary = np.full_like(r, radius)
    coverage = np.clip((boundary - r) / max(edge_softness, 1e-3) + 0.5, 0.0, 1.0)
    weight = 1.0 + rim * np.clip(r / np.maximum(boundary, 1e-6), 0, 1) ** 4
    kernel = (coverage * weight).mean(axis=-1)
    return normalise(kernel)


def _splat_points(points: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Bilinearly splat (N, 2) points given as (y, x) around the origin into a kernel."""
    if weights is None:
        weights = np.ones(len(points))
    points = points - (points * weights[:, None]).sum(0) / weights.sum()
    half = int(math.ceil(np.abs(points).max())) + 2
    side = 2 * half + 1
    kernel = np.zeros((side, side), dtype=np.float64)
    ys = points[:, 0] + half
    xs = points[:, 1] + half
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = ys - y0
    fx = xs - x0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(kernel, (y0 + dy, x0 + dx), weights * wy * wx)
    return normalise(kernel)


def linear_motion_kernel(length: float, angle: float) -> np.ndarray:
    """Uniform straight motion streak of ``length`` pixels at ``angle`` radians."""
    if length <= 0:
        raise ValueError(f"length must be > 0, got {length}")
    n = max(2, int(math.ceil(length * _SUPERSAMPLE)) + 1)
    t = np.linspace(-length / 2, length / 2, n)
    points = np.stack([t * math.sin(angle), t * math.cos(angle)], axis=1)
    return _splat_points(points)


def random_shake_trajectory(rng: np.random.Generator, n_steps: int = 96) -> np.ndarray:
    """A camera-shake path with unit RMS radius, shape (n_steps, 2) as (y, x).

    A random walk with inertia and a weak pull back to the start (hand tremor), in the spirit
    of Boracchi & Foi (2012): small jitter, occasional abrupt jerks, mostly smooth curves.
    """
    position = np.zeros(2)
    velocity = rng.normal(size=2)
    velocity /= np.linalg.norm(velocity) + 1e-9
    path = []
    jerk_probability = rng.uniform(0.0, 0.05)
    inertia = rng.uniform(0.6, 0.95)
    for _ in range(n_steps):
        path.append(position.copy())
        kick = rng.normal(scale=0.35, size=2)
        if rng.random() < jerk_probability:
            kick += rng.normal(scale=2.0, size=2)
        velocity = inertia * velocity + kick - 0.02 * position
        position = position + velocity
    trajectory = np.asarray(path)
    trajectory -= trajectory.mean(axis=0)
    rms = math.sqrt((trajectory**2).sum(axis=1).mean())
    return trajectory / max(rms, 1e-9)


def shake_kernel(trajectory: np.ndarray, rms_radius: float) -> np.ndarray:
    """Camera-shake kernel: a unit-RMS trajectory scaled to ``rms_radius`` pixels.

    Points are resampled densely along the path so fast segments leave thin, faint traces and
    slow segments bright ones, as an exposure integrating over time does.
    """
    points = np.asarray(trajectory, dtype=np.float64) * rms_radius
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    per_segment = np.maximum(1, np.ceil(steps * _SUPERSAMPLE)).astype(int)
    dense = [
        points[i] + (points[i + 1] - points[i]) * (np.arange(k)[:, None] / k)
        for i, k in enumerate(per_segment)
    ]
    dense.append(points[-1:])
    # Each original step lasts the same time: weight sub-points by 1/k so time, not path
    # length, sets the brightness.
    weights = np.concatenate([np.full(k, 1.0 / k) for k in per_segment] + [np.ones(1)])
    return _splat_points(np.concatenate(dense), weights)


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """The shape of one blur, renderable at any strength.

    Attributes:
        kind: one of :data:`BLUR_KINDS`.
        angle: motion direction (radians) for "motion".
        blades: aperture blades for "defocus" (0 = round).
        rotation: aperture rotation (radians) for "defocus".
        rim: rim brightness for "defocus".
        trajectory: unit-RMS path for "shake", shape (n, 2).
        parts: the two component specs of a "mixture" (convolved together).
        first_share: share of the squared strength given to ``parts[0]`` in a mixture.
    """

    kind: str
    angle: float = 0.0
    blades: int = 0
    rotation: float = 0.0
    rim: float = 0.0
    trajectory: np.ndarray | None = dataclasses.field(default=None, compare=False)
    parts: tuple[KernelSpec, ...] = ()
    first_share: float = 0.5

    def kernel(self, sigma: float) -> np.ndarray:
        """Render this blur with effective sigma ``sigma`` (pixels); sums to 1."""
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if self.kind == "gaussian":
            return gaussian_kernel(sigma)
        if self.kind == "defocus":
            # Uniform disk: effective sigma = R / 2. The rim and soft edge shift it a little;
            # effective_sigma() of the rendered kernel is what gets recorded.
            return defocus_kernel(
                2.0 * sigma, blades=self.blades, rotation=self.rotation, rim=self.rim
            )
        if self.kind == "motion":
            return linear_motion_kernel(sigma * math.sqrt(24.0), self.angle)
        if self.kind == "shake":
            if self.trajectory is None:
                raise ValueError("a shake KernelSpec needs a trajectory")
            # A unit-RMS path scaled by r has effective sigma r / sqrt(2).
            return shake_kernel(self.trajectory, sigma * math.sqrt(2.0))
        if self.kind == "mixture":
            if len(self.parts) != 2:
                raise ValueError("a mixture KernelSpec needs exactly two parts")
            first = self.parts[0].kernel(sigma * math.sqrt(self.first_share))
            second = self.parts[1].kernel(sigma * math.sqrt(1.0 - self.first_share))
            return normalise(signal.fftconvolve(first, second, mode="full").clip(min=0))
        raise ValueError(f"unknown blur kind {self.kind!r}; expected one of {BLUR_KINDS}")

    @property
    def description(self) -> str:
        """Kind name as stored in the data set (mixtures list their parts)."""
        if self.kind == "mixture":
            return "mixture:" + "+".join(part.kind for part in self.parts)
        return self.kind


def random_kernel_spec(kind: str, rng: np.random.Generator) -> KernelSpec:
    """A random blur shape of the given kind (strength is chosen separately)."""
    if kind == "gaussian":
        return KernelSpec("gaussian")
    if kind == "defocus":
        blades = int(rng.choice([0, 0, 5, 6, 7, 8, 9]))
        return KernelSpec(
            "defocus",
            blades=blades,
            rotation=float(rng.uniform(0, 2 * math.pi)),
            rim=float(rng.choice([0.0, rng.uniform(0.2, 1.0)])),
        )
    if kind == "motion":
        return KernelSpec("motion", angle=float(rng.uniform(0, math.pi)))
    if kind == "shake":
        return KernelSpec("shake", trajectory=random_shake_trajectory(rng))
    if kind == "mixture":
        # Real photos often combine defocus with some shake or motion.
        first = random_kernel_spec("defocus", rng)
        second = random_kernel_spec(str(rng.choice(["motion", "shake", "gaussian"])), rng)
        return KernelSpec(
            "mixture", parts=(first, second), first_share=float(rng.uniform(0.3, 0.8))
        )
    raise ValueError(f"unknown blur kind {kind!r}; expected one of {BLUR_KINDS}")
