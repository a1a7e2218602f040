"""The ``photographic`` preset: synthetic blur made the way a camera makes it.

Order of operations, as in a camera:

1. framing (cap, downscale, flat crops) - the same for both classes;
2. blur in **linear light**: undo the sRGB curve, let near-clipped highlights exceed 1 (a
   bright point in a real scene is far brighter than white) so they bloom into bokeh discs,
   blur, composite, clip, re-apply the curve;
3. regions that follow object boundaries (human segmentations where a photo has them,
   otherwise colour segments snapped to the image's edges); shallow depth of field composited
   in layers, so a sharp subject does not bleed into its blurred background and a blurred
   occluder spreads over a sharp scene;
4. sensor noise (Poisson-Gaussian, in linear light, the same over the whole frame), then a
   final resize and JPEG at a random quality: noise and compression never tell the label.

The ``cross-recipe`` preset runs the same pipeline with kernels, region shapes, strengths
and degradations that ``photographic`` never draws (:mod:`sbdn_pipeline.synth.unseen_kernels`):
an evaluation split that cannot be learned by heart.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from sbdn_pipeline.synth import degradations, regions, segments
from sbdn_pipeline.synth.blur import blur_depth_varying, convolve
from sbdn_pipeline.synth.kernels import (
    KernelSpec,
    effective_sigma,
    gaussian_kernel,
    random_kernel_spec,
    random_shake_trajectory,
)
from sbdn_pipeline.synth.unseen_kernels import random_unseen_spec

Weights = tuple[tuple[str, float], ...]


@dataclasses.dataclass(frozen=True)
class PhotographicRecipe:
    """Every knob of the photographic (and cross-recipe) preset; stored in the manifest."""

    name: str = "photographic"
    max_long_side: int = 1600
    min_short_side: int = 224
    downscale_probability: float = 0.15
    downscale_range: tuple[float, float] = (0.4, 0.85)
    low_texture_crop_probability: float = 0.1
    low_texture_side_range: tuple[float, float] = (0.35, 0.7)
    scenario_weights: Weights = (
        ("dof_background", 0.24),
        ("dof_foreground", 0.08),
        ("segment", 0.14),
        ("side", 0.1),
        ("whole", 0.14),
        ("shake", 0.16),
        ("video_motion", 0.14),
    )
    # Kernels of the region scenarios ("whole", "segment", "side"); depth of field is defocus.
    kernel_weights: Weights = (
        ("gaussian", 0.2), ("defocus", 0.35), ("motion", 0.15), ("shake", 0.1), ("mixture", 0.2)
    )
    unseen_kernels: bool = False
    min_relative_sigma: float = 0.0012
    max_relative_sigma: float = 0.03
    log_uniform_strength: bool = True
    min_sigma_px: float = 0.8
    # Whole-frame motion of video strength: 5-20 px streaks at a 1280 px long side.
    video_motion_px_at_1280: tuple[float, float] = (5.0, 20.0)
    shake_steps_range: tuple[int, int] = (12, 200)  # exposure length of the shake path
    target_area_range: tuple[float, float] = (0.06, 0.7)
    min_area_fraction: float = 0.04
    highlight_gain_range: tuple[float, float] = (1.5, 12.0)
    # Noise in linear light: variance = shot * signal + read**2 (signal in [0, 1]).
    shot_noise_range: tuple[float, float] = (1e-5, 4e-3)
    read_noise_range: tuple[float, float] = (2e-4, 8e-3)
    night_probability: float = 0.1
    night_gain_range: tuple[float, float] = (0.06, 0.35)
    final_resize_probability: float = 0.2
    final_resize_range: tuple[float, float] = (0.5, 0.9)
    jpeg_probability: float = 0.85
    jpeg_quality_range: tuple[int, int] = (50, 95)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable parameters."""
        return {"preset": self.name, **dataclasses.asdict(self)}


CROSS_RECIPE = PhotographicRecipe(
    name="cross-recipe",
    scenario_weights=(
        ("tilt_shift", 0.25), ("corners", 0.15), ("multi_ellipse", 0.2), ("whole", 0.2),
        ("segment", 0.2),
    ),
    kernel_weights=(
        ("box", 0.25), ("anisotropic_gaussian", 0.25), ("ring", 0.25), ("arc_motion", 0.25)
    ),
    unseen_kernels=True,
    min_relative_sigma=0.001,
    max_relative_sigma=0.02,
    log_uniform_strength=False,
    shot_noise_range=(1e-6, 1e-3),
    read_noise_range=(1e-4, 1.5e-2),
    night_probability=0.0,
    final_resize_probability=0.35,
    final_resize_range=(0.6, 0.95),
    jpeg_probability=0.9,
    jpeg_quality_range=(30, 98),
)


# --- linear light -----------------------------------------------------------------------------


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """sRGB uint8 (or 0-255 float) -> linear light float32 in [0, 1]."""
    x = np.clip(np.asarray(image, np.float32) / 255.0, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light (clipped to [0, 1]) -> sRGB float32 in [0, 255]."""
    x = np.clip(np.asarray(linear, np.float32), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
    return (srgb * 255.0).astype(np.float32)


def boost_highlights(image: np.ndarray, linear: np.ndarray, gain: float) -> np.ndarray:
    """Scene radiance: near-white pixels (clipped in the photo) made up to ``gain`` x brighter."""
    brightest = np.asarray(image, np.float32).max(axis=-1) / 255.0
    weight = np.clip((brightest - 0.92) / 0.08, 0.0, 1.0)[..., None]
    return linear * (1.0 + (gain - 1.0) * weight)


def add_poisson_gaussian_noise(
    linear: np.ndarray, rng: np.random.Generator, shot: float, read: float
) -> np.ndarray:
    """Sensor noise in linear light, with the same parameters at every pixel."""
    variance = shot * np.clip(linear, 0.0, None) + read**2
    noise = rng.standard_normal(linear.shape, dtype=np.float32)
    shared = rng.standard_normal(linear.shape[:2] + (1,), dtype=np.float32)
    # Part of real noise is shared across channels (demosaicing, luminance noise).
    return linear + np.sqrt(variance) * (0.7 * noise + 0.7 * shared)


# --- layered compositing ----------------------------------------------------------------------


def fill_behind(linear: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """The background continued under a subject (normalised convolution), for layered blur.

    Blurring the whole photo would smear the sharp subject's colours into the background
    around it; a real lens never sees the subject in the background layer.
    """
    if not subject.any():
        return linear
    reach = float(ndimage.distance_transform_edt(subject).max())
    kernel = gaussian_kernel(max(2.0, reach))
    weight = (~subject).astype(np.float32)[..., None]
    numerator = convolve(linear * weight, kernel)
    denominator = convolve(weight, kernel)
    filled = numerator / np.maximum(denominator, 1e-6)
    return np.where(subject[..., None], filled, linear).astype(np.float32)


def blur_behind_subject(
    linear: np.ndarray, radiance: np.ndarray, subject: np.ndarray, spec, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sharp subject over a defocused background whose blur grows with distance from it.

    Returns:
        (linear result, blurred-area boolean mask).
    """
    background = fill_behind(radiance, subject)
    distance = ndimage.distance_transform_edt(~subject)
    depth = np.clip(distance / max(1.0, 0.3 * max(subject.shape)), 0.0, 1.0)
    strength = np.maximum(sigma * (0.45 + 0.55 * depth), 0.5)
    blurred = blur_depth_varying(background, spec, strength)
    alpha = regions.feather(subject, 1.0)[..., None]
    return alpha * linear + (1.0 - alpha) * blurred, ~subject


def blur_occluder(
    radiance: np.ndarray, linear: np.ndarray, occluder: np.ndarray, kernel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """An out-of-focus object in front of a sharp scene: its colours and its edge spread.

    Premultiplied blur of the occluder layer over the untouched scene (``linear``).
    """
    alpha = occluder.astype(np.float32)[..., None]
    spread = np.clip(convolve(alpha, kernel), 0.0, 1.0)
    layer = convolve(radiance * alpha, kernel)
    return layer + (1.0 - spread) * linear, spread[..., 0] >= 0.5


# --- drawing one example ----------------------------------------------------------------------


def _choose(rng: np.random.Generator, weights: Weights) -> str:
    names = [name for name, _ in weights]
    probabilities = np.array([weight for _, weight in weights], dtype=np.float64)
    return str(rng.choice(names, p=probabilities / probabilities.sum()))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def sample_sigma(recipe: PhotographicRecipe, rng: np.random.Generator, long_side: int) -> float:
    """Effective blur sigma (pixels at the stored size), relative to the long side."""
    bounds = (recipe.min_relative_sigma, recipe.max_relative_sigma)
    relative = _log_uniform(rng, bounds) if recipe.log_uniform_strength else rng.uniform(*bounds)
    return max(recipe.min_sigma_px, float(relative) * long_side)


def _kernel_spec(recipe: PhotographicRecipe, rng: np.random.Generator, kind: str | None = None):
    kind = kind or _choose(rng, recipe.kernel_weights)
    return random_unseen_spec(kind, rng) if recipe.unseen_kernels else random_kernel_spec(kind, rng)


def frame(
    image: np.ndarray, labels: np.ndarray | None, recipe: PhotographicRecipe,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Cap the size, then maybe downscale or take a flat crop; label maps follow the pixels."""
    applied: list[str] = []
    if labels is not None:
        labels = segments.orient_labels(labels, image)
    image = degradations.cap_long_side(image, recipe.max_long_side)
    floor = degradations.smallest_scale(image, recipe.min_short_side)
    draw = rng.random()
    if draw < recipe.downscale_probability:
        image, shrunk = degradations.random_downscale(image, rng, recipe.downscale_range, floor)
        if shrunk:
            applied.append("downscale")
    elif draw < recipe.downscale_probability + recipe.low_texture_crop_probability:
        side = degradations.uniform_at_least(rng, recipe.low_texture_side_range, floor)
        top, left, side_px = degradations.low_texture_box(image, rng, side)
        if labels is not None:
            labels = segments.resize_labels(labels, *image.shape[:2])
            labels = labels[top : top + side_px, left : left + side_px]
        image = image[top : top + side_px, left : left + side_px]
        applied.append("low_texture_crop")
    if labels is not None:
        labels = segments.resize_labels(labels, *image.shape[:2])
    return np.ascontiguousarray(image), labels, applied


@dataclasses.dataclass
class _Scene:
    """One framed photo in the forms the scenarios need."""

    image: np.ndarray  # uint8 sRGB
    linear: np.ndarray  # linear light, as photographed
    radiance: np.ndarray  # linear light with highlights restored above 1
    labels: np.ndarray | None  # human segmentation at this size, if any
    rng: np.random.Generator
    _segments: np.ndarray | None = None

    @property
    def segments(self) -> np.ndarray:
        if self._segments is None:
            self._segments = (
                self.labels if self.labels is not None
                else segments.colour_segments(self.image, self.rng)
            )
        return self._segments

    def region(self, target: float, *, central: bool) -> np.ndarray:
        """A union of segments; colour segments' borders are snapped to the image's edges."""
        grown = segments.grow_region(self.segments, self.rng, target, seed_central=central)
        if self.labels is None:
            grown = segments.snap_to_edges(self.image, grown)
        return grown


@dataclasses.dataclass
class _Blur:
    """What one scenario did: the blurred linear image, its mask and a description."""

    linear: np.ndarray
    mask: np.ndarray
    kind: str
    strength: float


def _alpha_blur(scene: _Scene, alpha: np.ndarray, spec, sigma: float,
                depth: np.ndarray | None = None) -> _Blur:
    if depth is not None:
        strength = np.maximum(sigma * (0.4 + 0.6 * depth), 0.5)
        blurred = blur_depth_varying(scene.radiance, spec, strength)
        mask = regions.label_mask(alpha).astype(bool)
        nominal = float(strength[mask].mean()) if mask.any() else sigma
    else:
        blurred = convolve(scene.radiance, spec.kernel(sigma))
        nominal = sigma
    weight = alpha[..., None]
    mixed = weight * blurred + (1.0 - weight) * scene.linear
    ratio = effective_sigma(spec.kernel(sigma)) / sigma
    return _Blur(mixed, regions.label_mask(alpha).astype(bool), spec.description, nominal * ratio)


def _dof_background(scene: _Scene, recipe: PhotographicRecipe, sigma: float) -> _Blur:
    subject = scene.region(scene.rng.uniform(0.12, 0.55), central=True)
    kind = None if recipe.unseen_kernels else "defocus"
    spec = _kernel_spec(recipe, scene.rng, kind)
    mixed, mask = blur_behind_subject(scene.linear, scene.radiance, subject, spec, sigma)
    return _Blur(mixed, mask, spec.description, sigma * 0.8)


def _dof_foreground(scene: _Scene, recipe: PhotographicRecipe, sigma: float) -> _Blur:
    occluder = scene.region(scene.rng.uniform(0.1, 0.4), central=False)
    kind = None if recipe.unseen_kernels else "defocus"
    spec = _kernel_spec(recipe, scene.rng, kind)
    mixed, mask = blur_occluder(scene.radiance, scene.linear, occluder, spec.kernel(sigma))
    return _Blur(mixed, mask, spec.description, sigma)


def _whole_frame(scene: _Scene, spec, sigma: float) -> _Blur:
    height, width = scene.image.shape[:2]
    return _alpha_blur(scene, regions.whole_alpha(height, width), spec, sigma)


def _tilt_shift(scene: _Scene, recipe: PhotographicRecipe, sigma: float) -> _Blur:
    """A sharp horizontal band, blurred above and below (the miniature look)."""
    height, width = scene.image.shape[:2]
    centre = scene.rng.uniform(0.35, 0.65) * height
    half = scene.rng.uniform(0.08, 0.2) * height
    distance = np.abs(np.arange(height, dtype=np.float32) - centre) - half
    alpha = np.clip(0.5 + distance / (0.05 * height), 0, 1)[:, None].repeat(width, 1)
    depth = np.clip(distance / max(1.0, height / 2 - half), 0, 1)[:, None].repeat(width, 1)
    return _alpha_blur(scene, alpha.astype(np.float32), _kernel_spec(recipe, scene.rng), sigma,
                       depth.astype(np.float32))


def _corners(scene: _Scene, recipe: PhotographicRecipe, sigma: float) -> _Blur:
    """Soft corners and edges of a cheap lens: blur grows with the distance from the centre."""
    height, width = scene.image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot((ys - height / 2) / (height / 2), (xs - width / 2) / (width / 2))
    start = scene.rng.uniform(0.75, 1.05)
    alpha = np.clip(0.5 + (radius - start) / 0.1, 0, 1).astype(np.float32)
    depth = np.clip((radius - start) / max(1e-3, 1.42 - start), 0, 1).astype(np.float32)
    return _alpha_blur(scene, alpha, _kernel_spec(recipe, scene.rng), sigma, depth)


def _multi_ellipse(scene: _Scene, recipe: PhotographicRecipe, sigma: float) -> _Blur:
    height, width = scene.image.shape[:2]
    count = int(scene.rng.integers(2, 5))
    alpha = np.zeros((height, width), np.float32)
    for _ in range(count):
        alpha = np.maximum(alpha, regions.ellipse_alpha(height, width, scene.rng, sigma + 1.0))
    return _alpha_blur(scene, alpha, _kernel_spec(recipe, scene.rng), sigma)


def _scenario(name: str, scene: _Scene, recipe: PhotographicRecipe, sigma: float) -> _Blur:
    """Render one positive scenario (see :class:`PhotographicRecipe` for the weights)."""
    rng = scene.rng
    height, width = scene.image.shape[:2]
    if name == "dof_background":
        return _dof_background(scene, recipe, sigma)
    if name == "dof_foreground":
        return _dof_foreground(scene, recipe, sigma)
    if name == "segment":
        region = scene.region(rng.uniform(*recipe.target_area_range), central=False)
        alpha = regions.feather(region, 0.5 * sigma + 1.0)
        return _alpha_blur(scene, alpha, _kernel_spec(recipe, rng), sigma)
    if name == "side":
        alpha, depth = regions.side_alpha(height, width, rng, rng.uniform(0.03, 0.15) * max(height, width))
        return _alpha_blur(scene, alpha, _kernel_spec(recipe, rng), sigma, depth)
    if name == "whole":
        return _whole_frame(scene, _kernel_spec(recipe, rng), sigma)
    if name == "shake":
        steps = int(rng.integers(*recipe.shake_steps_range))
        spec = KernelSpec("shake", trajectory=random_shake_trajectory(rng, n_steps=steps))
        return _whole_frame(scene, spec, sigma)
    if name == "video_motion":
        length = rng.uniform(*recipe.video_motion_px_at_1280) * max(height, width) / 1280.0
        # Mostly a panning camera: near-horizontal streaks.
        angle = rng.normal(0.0, 0.35) if rng.random() < 0.7 else rng.uniform(0, math.pi)
        spec = KernelSpec("motion", angle=float(angle))
        return _whole_frame(scene, spec, max(0.5, length / math.sqrt(24.0)))
    if name == "tilt_shift":
        return _tilt_shift(scene, recipe, sigma)
    if name == "corners":
        return _corners(scene, recipe, sigma)
    if name == "multi_ellipse":
        return _multi_ellipse(scene, recipe, sigma)
    raise ValueError(f"unknown scenario {name!r}")


def degrade(
    linear: np.ndarray, mask: np.ndarray, recipe: PhotographicRecipe, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """Night exposure, sensor noise, back to sRGB, final resize, JPEG: for both classes alike.

    Returns:
        (uint8 image, uint8 mask at the final size, applied steps, resize factor).
    """
    applied: list[str] = []
    linear = np.clip(linear, 0.0, 1.0)
    if rng.random() < recipe.night_probability:
        linear = linear * rng.uniform(*recipe.night_gain_range)
        applied.append("night")
    shot = _log_uniform(rng, recipe.shot_noise_range)
    read = _log_uniform(rng, recipe.read_noise_range)
    linear = add_poisson_gaussian_noise(linear, rng, shot, read)
    applied.append("noise")
    image = degradations.to_uint8(linear_to_srgb(linear))
    factor = 1.0
    floor = min(1.0, recipe.min_short_side / min(image.shape[:2]))
    if rng.random() < recipe.final_resize_probability and floor < recipe.final_resize_range[1]:
        factor = float(rng.uniform(max(floor, recipe.final_resize_range[0]), recipe.final_resize_range[1]))
        image = degradations.downscale(image, factor)
        mask = _resize_mask(mask, *image.shape[:2])
        applied.append("resize")
    if rng.random() < recipe.jpeg_probability:
        low, high = recipe.jpeg_quality_range
        image = degradations.jpeg_recompress(image, int(rng.integers(low, high + 1)))
        applied.append("jpeg")
    return image, mask.astype(np.uint8), applied, factor


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    scaled = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.BILINEAR)
    return (np.asarray(scaled) >= 128).astype(np.uint8)


def _positive_blur(scene: _Scene, recipe: PhotographicRecipe) -> tuple[str, _Blur]:
    """Draw scenarios until one blurs enough of the frame (whole-frame blur as the fallback)."""
    height, width = scene.image.shape[:2]
    for _ in range(3):
        name = _choose(scene.rng, recipe.scenario_weights)
        sigma = sample_sigma(recipe, scene.rng, max(height, width))
        blur = _scenario(name, scene, recipe, sigma)
        if blur.mask.mean() >= recipe.min_area_fraction:
            return name, blur
    return "whole", _whole_frame(scene, _kernel_spec(recipe, scene.rng), sigma)


def synthesize_photographic(
    image: np.ndarray,
    recipe: PhotographicRecipe,
    rng: np.random.Generator,
    *,
    positive: bool,
    labels: np.ndarray | None = None,
    natural_depth_of_field: bool = False,
):
    """One example of the photographic (or cross-recipe) preset; see the module docstring.

    Args:
        image: sharp uint8 RGB source photo.
        labels: a human segmentation of the photo (any size; resized with it), or None.
        natural_depth_of_field: the photo already has out-of-focus parts. Its soft segments
            are labelled blurred (:func:`sbdn_pipeline.synth.segments.natural_blur_mask`) and
            it is never a sharp negative: a negative variant becomes a positive with only its
            natural blur, a positive one adds synthetic blur on top (masks united).

    Returns:
        A :class:`sbdn_pipeline.synth.recipes.SyntheticExample`.
    """
    from sbdn_pipeline.synth.recipes import NO_BLUR, SyntheticExample

    framed, labels, applied = frame(image, labels, recipe, rng)
    linear = srgb_to_linear(framed)
    radiance = boost_highlights(framed, linear, rng.uniform(*recipe.highlight_gain_range))
    scene = _Scene(framed, linear, radiance, labels, rng)
    natural = np.zeros(framed.shape[:2], bool)
    if natural_depth_of_field:
        natural = segments.natural_blur_mask(framed, scene.segments)
        positive = positive or natural.mean() < recipe.min_area_fraction
    name, kind, strength = NO_BLUR, NO_BLUR, 0.0
    result, mask = linear, natural
    if positive:
        name, blur = _positive_blur(scene, recipe)
        result, mask, kind, strength = blur.linear, blur.mask | natural, blur.kind, blur.strength
    elif natural.any():
        name, kind = "natural", "natural"
    pixels, stored_mask, more, factor = degrade(result, mask, recipe, rng)
    return SyntheticExample(
        image=pixels,
        mask=stored_mask,
        label=int(stored_mask.any()),
        blur_kind=kind,
        strength=float(strength * factor),
        region_shape=name,
        area_fraction=float(stored_mask.mean()),
        degradations=tuple(applied + more),
    )
