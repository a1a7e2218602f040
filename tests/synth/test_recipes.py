"""Recipes: blur lands where the mask says, negatives stay sharp, presets, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from sbdn_pipeline.synth import recipes, regions
from tests.synth.tinyset import laplacian_energy, textured_photo

# Only the blur itself: no framing changes or degradations, so energy can be compared with the
# source pixel for pixel.
BLUR_ONLY = dataclasses.replace(
    recipes.RealisticRecipe(),
    downscale_probability=0.0,
    crop_probability=0.0,
    low_texture_crop_probability=0.0,
    night_probability=0.0,
    noise_probability=0.0,
    jpeg_probability=0.0,
)


def _cores(mask: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels well inside and well outside the mask (away from the soft transition)."""
    inside = ndimage.distance_transform_edt(mask) > margin
    outside = ndimage.distance_transform_edt(1 - mask) > margin
    return inside, outside


@pytest.mark.parametrize("seed", range(10))
def test_blur_removes_fine_detail_inside_the_mask_and_not_outside(seed: int) -> None:
    photo = textured_photo(192, 256, seed)
    example = recipes.synthesize(photo, BLUR_ONLY, np.random.default_rng(seed), positive=True)
    assert example.label == 1 and example.image.shape == photo.shape
    source_energy = laplacian_energy(photo)
    energy_ratio = laplacian_energy(example.image) / np.maximum(source_energy.mean(), 1e-6)
    margin = int(6 * example.strength) + 8
    inside, outside = _cores(example.mask, margin)
    assert inside.any(), "the blurred region should have a core away from its border"
    assert energy_ratio[inside].mean() < 0.75 * (
        source_energy[inside].mean() / source_energy.mean()
    )
    if outside.sum() > 200:
        kept = energy_ratio[outside].mean() / (source_energy[outside].mean() / source_energy.mean())
        assert kept > 0.9


def test_blurred_region_has_less_detail_than_the_rest_even_with_degradations() -> None:
    ratios = []
    for seed in range(12):
        photo = textured_photo(192, 256, 100 + seed)
        example = recipes.synthesize(
            photo, recipes.RealisticRecipe(), np.random.default_rng(seed), positive=True
        )
        inside, outside = _cores(example.mask, 8)
        if inside.sum() > 200 and outside.sum() > 200:
            energy = laplacian_energy(example.image)
            ratios.append(energy[inside].mean() / energy[outside].mean())
    assert len(ratios) >= 4
    assert np.median(ratios) < 0.8


@pytest.mark.parametrize("seed", range(6))
def test_sharp_negatives_have_empty_mask_and_no_blur_metadata(seed: int) -> None:
    example = recipes.synthesize(
        textured_photo(150, 200, seed),
        recipes.RealisticRecipe(),
        np.random.default_rng(seed),
        positive=False,
    )
    assert example.label == 0
    assert not example.mask.any()
    assert (example.blur_kind, example.region_shape) == ("none", "none")
    assert example.strength == 0 and example.area_fraction == 0
    assert example.mask.shape == example.image.shape[:2]


def test_positive_metadata_is_consistent_with_its_mask() -> None:
    for seed in range(8):
        example = recipes.synthesize(
            textured_photo(160, 240, seed),
            recipes.RealisticRecipe(),
            np.random.default_rng(seed),
            positive=True,
        )
        assert example.mask.shape == example.image.shape[:2]
        assert example.area_fraction == pytest.approx(example.mask.mean())
        assert example.area_fraction >= recipes.RealisticRecipe().min_area_fraction
        assert example.region_shape in regions.REGION_SHAPES
        assert example.strength >= 0.5


def test_same_generator_seed_gives_the_same_example() -> None:
    photo = textured_photo(128, 160, 0)
    first = recipes.synthesize(
        photo, recipes.RealisticRecipe(), np.random.default_rng([7, 1]), positive=True
    )
    again = recipes.synthesize(
        photo, recipes.RealisticRecipe(), np.random.default_rng([7, 1]), positive=True
    )
    other = recipes.synthesize(
        photo, recipes.RealisticRecipe(), np.random.default_rng([7, 2]), positive=True
    )
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.mask, again.mask)
    assert (first.blur_kind, first.strength) == (again.blur_kind, again.strength)
    assert not np.array_equal(first.image, other.image) or not np.array_equal(
        first.mask, other.mask
    )


def test_realistic_examples_are_capped_to_the_long_side_limit() -> None:
    recipe = dataclasses.replace(recipes.RealisticRecipe(max_long_side=100), min_short_side=32)
    for seed in range(5):
        example = recipes.synthesize(
            textured_photo(150, 300, seed),
            recipe,
            np.random.default_rng(seed),
            positive=seed % 2 == 1,
        )
        assert max(example.image.shape[:2]) <= 100


def test_original_preset_is_224_square_with_one_hard_edged_rectangle() -> None:
    photo = textured_photo(300, 480, 0)
    recipe = recipes.recipe_for_preset("original")
    example = recipes.synthesize(photo, recipe, np.random.default_rng(0), positive=True)
    assert example.image.shape == (224, 224, 3)
    assert (example.blur_kind, example.region_shape, example.label) == ("gaussian", "rectangle", 1)
    mask = example.mask.astype(bool)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()  # a filled rectangle
    assert mask.sum() == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    # The box of the original recipe: x from 10 to 400 of 480 px, y from h/4 to 3h/4.
    assert rows[0] == pytest.approx(56, abs=2) and rows[-1] == pytest.approx(167, abs=2)
    assert cols[0] == pytest.approx(10 * 224 / 480, abs=2)
    assert cols[-1] == pytest.approx(400 * 224 / 480, abs=2)
    energy = laplacian_energy(example.image)
    assert energy[mask].mean() < 0.5 * energy[~mask].mean()


def test_original_preset_negative_is_the_resized_photo() -> None:
    example = recipes.synthesize(
        textured_photo(300, 480, 1),
        recipes.OriginalRecipe(),
        np.random.default_rng(0),
        positive=False,
    )
    assert example.image.shape == (224, 224, 3)
    assert example.label == 0 and not example.mask.any()


def test_unknown_preset_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown preset 'fancy'"):
        recipes.recipe_for_preset("fancy")


@pytest.mark.parametrize("positive", [True, False])
def test_keeping_the_blur_change_draws_nothing_and_changes_no_example(positive: bool) -> None:
    photo = textured_photo(96, 128, 7)
    plain = recipes.synthesize_realistic(
        photo, recipes.RealisticRecipe(), np.random.default_rng(3), positive=positive
    )
    kept = recipes.synthesize_realistic(
        photo, recipes.RealisticRecipe(), np.random.default_rng(3), positive=positive,
        keep_blur_change=True,
    )
    assert plain.blur_change is None
    np.testing.assert_array_equal(plain.image, kept.image)
    np.testing.assert_array_equal(plain.mask, kept.mask)
    assert kept.blur_change.shape == kept.mask.shape
    if not positive:
        assert not kept.blur_change.any()


def test_blur_change_is_large_on_texture_and_zero_on_a_flat_region() -> None:
    photo = textured_photo(96, 128, 11)
    photo[:, 64:] = 128  # right half flat grey: blurring it changes nothing
    whole = dataclasses.replace(BLUR_ONLY, region_shape_weights=(("whole", 1.0),))
    example = recipes.synthesize_realistic(
        photo, whole, np.random.default_rng(5), positive=True, keep_blur_change=True
    )
    assert example.mask.all()
    change = example.blur_change
    # Away from the seam between the halves, where the kernel mixes texture into grey.
    margin = int(4 * example.strength) + 4
    assert change[:, : 64 - margin].mean() > 4.0
    assert change[:, 64 + margin :].max() < 1e-3
