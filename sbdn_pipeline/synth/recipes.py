"""Recipes that turn one sharp photo into one training example (image + blur mask + labels).

Four presets:

* ``photographic`` (default): blur in linear light with blooming highlights, regions that
  follow object boundaries, layered depth of field, camera shake and video motion, then
  sensor noise and JPEG for both classes alike (:mod:`sbdn_pipeline.synth.photographic`).
* ``cross-recipe``: the same pipeline with kernels, shapes, strengths and degradations that
  no training preset draws: an evaluation split that cannot be learned by heart.
* ``realistic`` (the default until 2026-12): varied kernels (Gaussian, lens-like defocus, linear motion, camera
  shake, mixtures), strengths relative to image size with optional depth-varying strength,
  varied soft-edged regions, hard sharp negatives, and the same non-blur degradations on both
  classes. See :class:`RealisticRecipe` for every probability and range.
* ``original``: the original research recipe, reproduced exactly (see
  :func:`synthesize_original`).

Everything here is deterministic given the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
from PIL import Image, ImageFilter

from sbdn_pipeline.synth import degradations, regions
from sbdn_pipeline.synth.blur import blur_depth_varying, composite, convolve
from sbdn_pipeline.synth.kernels import KernelSpec, effective_sigma, random_kernel_spec
from sbdn_pipeline.synth.photographic import (
    CROSS_RECIPE,
    PhotographicRecipe,
    synthesize_photographic,
)

from sbdn_pipeline.synth.presets import DEFAULT_PRESET, PRESETS  # noqa: E402,F401
NO_BLUR = "none"


@dataclasses.dataclass
class SyntheticExample:
    """One generated example at its stored resolution.

    Attributes:
        image: uint8 RGB (H, W, 3).
        mask: uint8 (H, W), 1 = blurred (blend weight >= 0.5), 0 = sharp.
        label: 1 if any pixel was blurred, else 0.
        blur_kind: "gaussian", "defocus", "motion", "shake", "mixture", or "none".
        strength: mean effective blur sigma inside the mask, in pixels at the stored
            resolution (see :func:`sbdn_pipeline.synth.kernels.effective_sigma`); 0 for sharp.
        region_shape: one of :data:`sbdn_pipeline.synth.regions.REGION_SHAPES` or "none".
        area_fraction: fraction of mask pixels that are blurred.
        degradations: non-blur changes applied, in order (e.g. ("downscale", "jpeg")).
        blur_change: float32 (H, W), how many grey levels the blur changed each pixel (mean
            absolute change over the channels, before the degradations); only when asked for
            (``keep_blur_change=True``). Zero where the blurred region is flat: there the blur
            is invisible to any detector (see benchmarks/blur_visibility.py).
    """

    image: np.ndarray
    mask: np.ndarray
    label: int
    blur_kind: str
    strength: float
    region_shape: str
    area_fraction: float
    degradations: tuple[str, ...] = ()
    blur_change: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class RealisticRecipe:
    """Every knob of the realistic preset; stored verbatim in the data set manifest.

    Strengths are effective blur sigmas (pixels) drawn log-uniformly between
    ``min_relative_sigma`` and ``max_relative_sigma`` times the image's long side, never below
    ``min_sigma_px``: at 1024 px that is 1.5 px (subtle) to 30 px (very strong), median 6.7 px.
    """

    max_long_side: int = 1024
    # Framing (applied to both classes): keeps scale and content from giving the label away.
    min_short_side: int = 224
    downscale_probability: float = 0.15
    downscale_range: tuple[float, float] = (0.3, 0.8)
    crop_probability: float = 0.1
    low_texture_crop_probability: float = 0.12
    low_texture_side_range: tuple[float, float] = (0.35, 0.7)
    # Blur.
    blur_kind_weights: tuple[tuple[str, float], ...] = (
        ("gaussian", 0.15),
        ("defocus", 0.3),
        ("motion", 0.15),
        ("shake", 0.2),
        ("mixture", 0.2),
    )
    region_shape_weights: tuple[tuple[str, float], ...] = (
        ("rectangle", 0.1),
        ("ellipse", 0.12),
        ("polygon", 0.1),
        ("blob", 0.13),
        ("side", 0.2),
        ("foreground_background", 0.15),
        ("whole", 0.2),
    )
    min_relative_sigma: float = 0.0015
    max_relative_sigma: float = 0.03
    min_sigma_px: float = 1.0
    # Extra chance of depth-varying strength for shapes other than side/foreground_background
    # (which always vary with depth, as shallow depth of field does).
    depth_varying_probability: float = 0.25
    min_depth_strength: float = 0.4
    feather_range: tuple[float, float] = (0.5, 2.0)  # times the blur sigma, plus 1 px
    side_transition_range: tuple[float, float] = (0.03, 0.15)  # times the long side
    min_area_fraction: float = 0.05
    # Non-blur degradations, applied after blurring, equally to both classes.
    night_probability: float = 0.1
    night_gamma_range: tuple[float, float] = (1.5, 2.8)
    night_gain_range: tuple[float, float] = (0.25, 0.7)
    noise_probability: float = 0.35
    read_noise_range: tuple[float, float] = (0.5, 6.0)
    shot_noise_range: tuple[float, float] = (0.0, 0.6)
    jpeg_probability: float = 0.4
    jpeg_quality_range: tuple[int, int] = (35, 92)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable parameters."""
        return {"preset": "realistic", **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class OriginalRecipe:
    """The original research recipe (fixed; only documented here)."""

    output_size: int = 224
    box_left: int = 10
    box_right: int = 400
    gaussian_radius: float = 10.0
    source_jpeg_quality: int = 90

    def to_dict(self) -> dict:
        """Plain JSON-serialisable parameters."""
        return {"preset": "original", **dataclasses.asdict(self)}


Recipe = RealisticRecipe | OriginalRecipe | PhotographicRecipe


def recipe_for_preset(preset: str, *, max_long_side: int = 0) -> Recipe:
    """The recipe object of a preset name; ``max_long_side`` 0 keeps the preset's own cap."""
    if preset in ("photographic", "cross-recipe"):
        recipe = PhotographicRecipe() if preset == "photographic" else CROSS_RECIPE
        if max_long_side:
            recipe = dataclasses.replace(recipe, max_long_side=max_long_side)
        return recipe
    if preset == "realistic":
        return RealisticRecipe(max_long_side=max_long_side or RealisticRecipe.max_long_side)
    if preset == "original":
        return OriginalRecipe()
    raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")


def synthesize(
    image: np.ndarray,
    recipe: Recipe,
    rng: np.random.Generator,
    *,
    positive: bool,
    labels: np.ndarray | None = None,
    natural_depth_of_field: bool = False,
) -> SyntheticExample:
    """Make one example from a sharp uint8 RGB photo with the given recipe.

    ``labels`` (a human segmentation) and ``natural_depth_of_field`` are used by the
    photographic presets only (:func:`sbdn_pipeline.synth.photographic.synthesize_photographic`).
    """
    if isinstance(recipe, PhotographicRecipe):
        return synthesize_photographic(
            image, recipe, rng, positive=positive, labels=labels,
            natural_depth_of_field=natural_depth_of_field,
        )
    if isinstance(recipe, OriginalRecipe):
        return synthesize_original(image, positive=positive, recipe=recipe)
    return synthesize_realistic(image, recipe, rng, positive=positive)


# --------------------------------------------------------------------------------------------
# Original recipe


def synthesize_original(
    image: np.ndarray, *, positive: bool, recipe: OriginalRecipe | None = None
) -> SyntheticExample:
    """The original research recipe, step for step.

    1. The photo is saved as JPEG quality 90 and read back.
    2. Sharp example: the photo resized (bicubic, aspect ratio NOT kept) to 224x224.
    3. Blurred example: at the source resolution, the box from x=10 to x=400 and from
       y=h/4 to y=3h/4 is cut out, blurred on its own with Pillow's GaussianBlur(radius=10)
       (Pillow's radius is the Gaussian's standard deviation), pasted back with a hard edge,
       and the whole photo resized to 224x224. The label is that box drawn white on black and
       resized the same way (thresholded at 50 %).

    The only deviation: the original used x=400 even for photos narrower than 400 px (Pillow
    then pads the crop with black); we clip the box to the photo.
    """
    recipe = recipe or OriginalRecipe()
    size = (recipe.output_size, recipe.output_size)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=recipe.source_jpeg_quality)
    photo = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    width, height = photo.size
    if not positive:
        resized = np.asarray(photo.resize(size, Image.BICUBIC))
        return SyntheticExample(
            image=resized,
            mask=np.zeros(size[::-1], dtype=np.uint8),
            label=0,
            blur_kind=NO_BLUR,
            strength=0.0,
            region_shape=NO_BLUR,
            area_fraction=0.0,
        )
    box = (
        min(recipe.box_left, width - 1),
        int(height / 4),
        min(recipe.box_right, width),
        int(3 * height / 4),
    )
    blurred_box = photo.crop(box).filter(ImageFilter.GaussianBlur(recipe.gaussian_radius))
    photo.paste(blurred_box, box[:2])
    label_image = Image.new("L", (width, height), 0)
    label_image.paste(255, box)
    resized = np.asarray(photo.resize(size, Image.BICUBIC))
    mask = (np.asarray(label_image.resize(size, Image.BICUBIC)) >= 128).astype(np.uint8)
    # Anisotropic resize: report the mean of the sigmas along x and y (root mean square).
    sigma_x = recipe.gaussian_radius * size[0] / width
    sigma_y = recipe.gaussian_radius * size[1] / height
    return SyntheticExample(
        image=resized,
        mask=mask,
        label=1,
        blur_kind="gaussian",
        strength=float(math.sqrt((sigma_x**2 + sigma_y**2) / 2)),
        region_shape="rectangle",
        area_fraction=float(mask.mean()),
    )


# --------------------------------------------------------------------------------------------
# Realistic recipe


def _choose(rng: np.random.Generator, weights: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in weights]
    probabilities = np.array([weight for _, weight in weights], dtype=np.float64)
    return str(rng.choice(names, p=probabilities / probabilities.sum()))


def _frame(
    image: np.ndarray, recipe: RealisticRecipe, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """Cap the size, then maybe downscale / crop / pick a flat crop. Same for both classes."""
    applied: list[str] = []
    image = degradations.cap_long_side(image, recipe.max_long_side)
    floor = degradations.smallest_scale(image, recipe.min_short_side)
    draw = rng.random()
    if draw < recipe.downscale_probability:
        image, shrunk = degradations.random_downscale(image, rng, recipe.downscale_range, floor)
        if shrunk:
            applied.append("downscale")
    elif draw < recipe.downscale_probability + recipe.crop_probability:
        image = degradations.random_crop(image, rng, min_fraction=max(0.4, floor))
        applied.append("crop")
    elif draw < (
        recipe.downscale_probability + recipe.crop_probability + recipe.low_texture_crop_probability
    ):
        side = degradations.uniform_at_least(rng, recipe.low_texture_side_range, floor)
        image = degradations.low_texture_crop(image, rng, side)
        applied.append("low_texture_crop")
    return np.ascontiguousarray(image), applied


def _sample_sigma(recipe: RealisticRecipe, rng: np.random.Generator, long_side: int) -> float:
    relative = math.exp(
        rng.uniform(math.log(recipe.min_relative_sigma), math.log(recipe.max_relative_sigma))
    )
    return max(recipe.min_sigma_px, relative * long_side)


def _region(
    shape: str, image: np.ndarray, recipe: RealisticRecipe, rng: np.random.Generator, sigma: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """(alpha, depth or None) for one region shape."""
    height, width = image.shape[:2]
    feather_px = rng.uniform(*recipe.feather_range) * sigma + 1.0
    if shape == "whole":
        return regions.whole_alpha(height, width), None
    if shape == "rectangle":
        return regions.rectangle_alpha(height, width, rng, feather_px), None
    if shape == "ellipse":
        return regions.ellipse_alpha(height, width, rng, feather_px), None
    if shape == "polygon":
        return regions.polygon_alpha(height, width, rng, feather_px), None
    if shape == "blob":
        return regions.blob_alpha(height, width, rng, feather_px), None
    if shape == "side":
        transition = rng.uniform(*recipe.side_transition_range) * max(height, width)
        return regions.side_alpha(height, width, rng, transition)
    if shape == "foreground_background":
        return regions.foreground_background_alpha(image, rng, feather_px)
    raise ValueError(f"unknown region shape {shape!r}; expected one of {regions.REGION_SHAPES}")


def _degrade(
    image: np.ndarray, recipe: RealisticRecipe, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """Night, sensor noise, JPEG re-compression: in the order a camera would apply them."""
    applied: list[str] = []
    image = image.astype(np.float32)
    if rng.random() < recipe.night_probability:
        image = degradations.darken_night(
            image, rng.uniform(*recipe.night_gamma_range), rng.uniform(*recipe.night_gain_range)
        )
        applied.append("night")
    # Dark images are noisy: night always gets noise.
    if applied or rng.random() < recipe.noise_probability:
        image = degradations.add_sensor_noise(
            image, rng, rng.uniform(*recipe.read_noise_range), rng.uniform(*recipe.shot_noise_range)
        )
        applied.append("noise")
    image = degradations.to_uint8(image)
    if rng.random() < recipe.jpeg_probability:
        low, high = recipe.jpeg_quality_range
        image = degradations.jpeg_recompress(image, int(rng.integers(low, high + 1)))
        applied.append("jpeg")
    return image, applied


def synthesize_realistic(
    image: np.ndarray,
    recipe: RealisticRecipe,
    rng: np.random.Generator,
    *,
    positive: bool,
    keep_blur_change: bool = False,
) -> SyntheticExample:
    """One realistic example: framing, then (if positive) blur in a region, then degradations.

    Framing and degradations are drawn with the same probabilities for both classes, so only
    the blur itself distinguishes them. ``keep_blur_change`` also returns the per-pixel change
    the blur made (it draws no random numbers, so the example is the same either way).
    """
    framed, applied = _frame(image, recipe, rng)
    height, width = framed.shape[:2]
    if not positive:
        degraded, more = _degrade(framed, recipe, rng)
        return SyntheticExample(
            image=degraded,
            mask=np.zeros((height, width), dtype=np.uint8),
            label=0,
            blur_kind=NO_BLUR,
            strength=0.0,
            region_shape=NO_BLUR,
            area_fraction=0.0,
            degradations=tuple(applied + more),
            blur_change=np.zeros((height, width), np.float32) if keep_blur_change else None,
        )

    kind = _choose(rng, recipe.blur_kind_weights)
    spec = random_kernel_spec(kind, rng)
    sigma = _sample_sigma(recipe, rng, max(height, width))
    shape, alpha, depth, mask = _large_enough_region(framed, recipe, rng, sigma)
    blurred, strength = _blur_at_depth(framed, spec, sigma, depth, mask, recipe, rng)
    mixed = composite(framed, blurred, alpha)
    degraded, more = _degrade(mixed, recipe, rng)
    return SyntheticExample(
        image=degraded,
        mask=mask,
        label=1,
        blur_kind=spec.kind,
        strength=strength,
        region_shape=shape,
        area_fraction=float(mask.mean()),
        degradations=tuple(applied + more),
        blur_change=(
            np.abs(mixed - framed.astype(np.float32)).mean(axis=-1) if keep_blur_change else None
        ),
    )


def _large_enough_region(
    framed: np.ndarray, recipe: RealisticRecipe, rng: np.random.Generator, sigma: float
) -> tuple[str, np.ndarray, np.ndarray | None, np.ndarray]:
    """(shape, alpha, depth or None, label mask) of a region to blur.

    The region must cover at least ``recipe.min_area_fraction`` of the frame: one shape is
    drawn and tried five times; if none is large enough the whole frame is blurred.
    """
    shape = _choose(rng, recipe.region_shape_weights)
    for _ in range(5):
        alpha, depth = _region(shape, framed, recipe, rng, sigma)
        mask = regions.label_mask(alpha)
        if mask.mean() >= recipe.min_area_fraction:
            return shape, alpha, depth, mask
    height, width = framed.shape[:2]
    alpha = regions.whole_alpha(height, width)
    return "whole", alpha, None, regions.label_mask(alpha)


def _blur_at_depth(
    framed: np.ndarray,
    spec: KernelSpec,
    sigma: float,
    depth: np.ndarray | None,
    mask: np.ndarray,
    recipe: RealisticRecipe,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """The blurred frame and the blur strength to record.

    Without a depth map from the region, some examples still get a linear depth ramp, so the
    blur strength varies across the region as it does with real depth of field.
    """
    height, width = framed.shape[:2]
    if depth is None and rng.random() < recipe.depth_varying_probability:
        depth = regions.linear_depth_ramp(height, width, rng)
    if depth is not None:
        strength_map = sigma * (recipe.min_depth_strength + (1 - recipe.min_depth_strength) * depth)
        strength_map = np.maximum(strength_map, recipe.min_sigma_px)
        blurred = blur_depth_varying(framed, spec, strength_map)
        nominal = float(strength_map[mask.astype(bool)].mean())
    else:
        blurred = convolve(framed, spec.kernel(sigma))
        nominal = sigma
    # Record what the rendered kernel really is, not the nominal target (they differ slightly
    # for small discrete kernels, rims and soft aperture edges).
    measured_ratio = effective_sigma(spec.kernel(sigma)) / sigma
    return blurred, float(nominal * measured_ratio)
