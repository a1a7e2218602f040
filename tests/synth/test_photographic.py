"""The photographic preset: linear light, noise, segments, layered depth of field, cross recipe."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sbdn_pipeline.synth import photographic as ph
from sbdn_pipeline.synth import recipes, segments, unseen_kernels
from sbdn_pipeline.synth.kernels import KernelSpec, effective_sigma
from tests.synth.tinyset import laplacian_energy, textured_photo


def test_linear_light_round_trip_is_exact_on_every_grey_level() -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    back = ph.linear_to_srgb(ph.srgb_to_linear(levels))
    assert np.abs(back - levels).max() < 0.01
    # The curve is the sRGB one: mid grey 128 is about 21.6 % linear light.
    assert ph.srgb_to_linear(np.full((1, 1, 3), 128))[0, 0, 0] == pytest.approx(0.2158, abs=1e-3)


def test_highlights_bloom_only_where_the_photo_was_clipped() -> None:
    image = np.full((8, 8, 3), 100, np.uint8)
    image[2, 2] = 255
    linear = ph.srgb_to_linear(image)
    radiance = ph.boost_highlights(image, linear, gain=8.0)
    assert radiance[2, 2, 0] == pytest.approx(8.0)
    np.testing.assert_array_equal(radiance[0, 0], linear[0, 0])


def test_a_blurred_highlight_blooms_into_a_bright_disc_in_linear_light() -> None:
    # A point light on a dark scene: blurred in linear light with the highlight restored,
    # the defocus disc stays visibly bright; blurred in sRGB it would all but vanish.
    image = np.full((41, 41, 3), 20, np.uint8)
    image[20, 20] = 255
    kernel = KernelSpec("defocus").kernel(3.0)
    from sbdn_pipeline.synth.blur import convolve

    linear = ph.srgb_to_linear(image)
    bloomed = ph.linear_to_srgb(convolve(ph.boost_highlights(image, linear, 12.0), kernel))
    plain = convolve(image.astype(np.float32), kernel)
    assert bloomed[20, 22, 0] > plain[20, 22, 0] + 40


def test_noise_has_the_same_parameters_in_blurred_and_sharp_areas() -> None:
    # A flat frame whose left half is "blurred": the degradation never looks at the mask, so
    # noise strength (the only cue a network could use) is the same on both sides.
    recipe = dataclasses.replace(
        ph.PhotographicRecipe(), night_probability=0.0, final_resize_probability=0.0,
        jpeg_probability=0.0,
    )
    linear = np.full((200, 200, 3), 0.2, np.float32)
    mask = np.zeros((200, 200), np.uint8)
    mask[:, :100] = 1
    image, stored, _, _ = ph.degrade(linear, mask, recipe, np.random.default_rng(4))
    left, right = image[:, :100].astype(float), image[:, 100:].astype(float)
    assert left.std() > 0.5  # there is noise at all
    assert left.std() == pytest.approx(right.std(), rel=0.1)
    assert left.mean() == pytest.approx(right.mean(), abs=0.5)
    np.testing.assert_array_equal(stored, mask)


def test_layered_depth_of_field_keeps_the_subject_pixels_intact() -> None:
    image = textured_photo(96, 128, 1)
    subject = np.zeros((96, 128), bool)
    subject[30:70, 40:90] = True
    linear = ph.srgb_to_linear(image)
    result, blurred = ph.blur_behind_subject(
        linear, linear, subject, KernelSpec("defocus"), sigma=4.0
    )
    inner = np.zeros_like(subject)
    inner[33:67, 43:87] = True  # away from the 1 px feathered outline
    np.testing.assert_allclose(result[inner], linear[inner], atol=1e-6)
    np.testing.assert_array_equal(blurred, ~subject)
    # The background is blurred, and the subject's colours did not bleed into it: next to
    # the subject the background equals a blur of the background alone (filled behind it).
    out = ph.linear_to_srgb(result)
    background = ~subject & (np.indices(subject.shape)[0] > 80)
    assert laplacian_energy(out)[background].mean() < 0.3 * laplacian_energy(image)[background].mean()


def test_fill_behind_continues_the_background_under_the_subject() -> None:
    linear = np.zeros((40, 40, 3), np.float32)
    linear[:, :20] = 0.2
    linear[:, 20:] = 0.8
    subject = np.zeros((40, 40), bool)
    subject[10:30, 10:30] = True
    linear[subject] = 5.0  # the subject's colours must not appear in the fill
    filled = ph.fill_behind(linear, subject)
    assert filled[subject].max() <= 0.8 + 1e-4
    assert filled[20, 12, 0] < filled[20, 28, 0]  # left stays darker, right brighter


def test_a_blurred_occluder_spreads_over_the_sharp_scene() -> None:
    image = textured_photo(64, 64, 2)
    linear = ph.srgb_to_linear(image)
    occluder = np.zeros((64, 64), bool)
    occluder[20:44, 20:44] = True
    kernel = KernelSpec("gaussian").kernel(3.0)
    result, mask = ph.blur_occluder(linear, linear, occluder, kernel)
    assert abs(int(mask.sum()) - int(occluder.sum())) < 0.15 * occluder.sum()
    np.testing.assert_allclose(result[:5, :5], linear[:5, :5], atol=1e-5)  # far away: sharp


def test_segment_labels_stay_aligned_with_their_photo_through_framing() -> None:
    # A bright square in a textured photo, and a label map marking exactly that square at
    # another resolution (label maps can be smaller or bigger than the photo).
    image = textured_photo(300, 400, 3)
    image[100:200, 150:250] = 255
    labels = np.zeros((150, 200), np.int32)
    labels[50:100, 75:125] = 7
    recipe = dataclasses.replace(ph.PhotographicRecipe(), downscale_probability=1.0)
    for seed in range(3):
        framed, framed_labels, _ = ph.frame(image, labels, recipe, np.random.default_rng(seed))
        assert framed_labels.shape == framed.shape[:2]
        white = framed.min(axis=-1) >= 250
        agreement = (white == (framed_labels == 7)).mean()
        assert agreement > 0.98


def test_grown_regions_are_unions_of_whole_segments() -> None:
    labels = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 10, 0), 10, 1)
    region = segments.grow_region(labels, np.random.default_rng(0), 0.4, seed_central=True)
    for segment in np.unique(labels):
        inside = region[labels == segment]
        assert inside.all() or not inside.any()
    assert 0.2 <= region.mean() <= 0.6


def test_snapping_moves_a_coarse_border_onto_the_image_edge() -> None:
    image = np.full((80, 80, 3), 30, np.uint8)
    image[:, 40:] = 220  # a vertical edge at x = 40
    coarse = np.zeros((80, 80), bool)
    coarse[:, 36:] = True  # the region's border is 4 px off
    snapped = segments.snap_to_edges(image, coarse, radius=10)
    columns = snapped.mean(axis=0)
    assert columns[38] < 0.5 and columns[41] > 0.5


def test_natural_blur_mask_finds_the_soft_half_of_a_photo() -> None:
    from scipy import ndimage

    image = textured_photo(120, 160, 5).astype(np.float32)
    image[:, 80:] = ndimage.gaussian_filter(image[:, 80:], (4, 4, 0))
    labels = np.zeros((120, 160), np.int32)
    labels[:, 80:] = 1
    mask = segments.natural_blur_mask(image.astype(np.uint8), labels)
    assert mask[:, 85:].mean() > 0.95 and mask[:, :75].mean() < 0.05


@pytest.mark.parametrize("kind", unseen_kernels.UNSEEN_KINDS)
def test_unseen_kernels_have_the_requested_strength(kind: str) -> None:
    spec = unseen_kernels.random_unseen_spec(kind, np.random.default_rng(1))
    for sigma in (2.0, 6.0):
        kernel = spec.kernel(sigma)
        assert kernel.sum() == pytest.approx(1.0, abs=1e-4)
        assert effective_sigma(kernel) == pytest.approx(sigma, rel=0.2)


@pytest.mark.parametrize("preset", ["photographic", "cross-recipe"])
def test_presets_make_labelled_examples_deterministically(preset: str) -> None:
    recipe = recipes.recipe_for_preset(preset)
    image = textured_photo(240, 320, 6)
    for variant in range(6):
        draws = [
            recipes.synthesize(image, recipe, np.random.default_rng(variant), positive=variant % 2 == 1)
            for _ in range(2)
        ]
        first, second = draws
        np.testing.assert_array_equal(first.image, second.image)
        assert first.image.shape[:2] == first.mask.shape
        assert first.label == (variant % 2)
        if first.label:
            assert first.mask.mean() >= recipe.min_area_fraction - 0.01
            assert first.strength > 0
        else:
            assert not first.mask.any() and first.blur_kind == "none"


def test_cross_recipe_never_draws_training_kernels_or_shapes() -> None:
    training = ph.PhotographicRecipe()
    cross = ph.CROSS_RECIPE
    assert not {k for k, _ in training.kernel_weights} & {k for k, _ in cross.kernel_weights}
    assert not {s for s, _ in training.scenario_weights} - {"segment", "whole"} & {
        s for s, _ in cross.scenario_weights
    }
    image = textured_photo(200, 260, 7)
    kinds = {
        recipes.synthesize(image, cross, np.random.default_rng(seed), positive=True).blur_kind
        for seed in range(12)
    }
    assert kinds <= set(unseen_kernels.UNSEEN_KINDS)


def test_natural_depth_of_field_photos_are_never_sharp_negatives() -> None:
    from scipy import ndimage

    image = textured_photo(160, 200, 8).astype(np.float32)
    image[:, 100:] = ndimage.gaussian_filter(image[:, 100:], (5, 5, 0))
    labels = np.zeros((160, 200), np.int32)
    labels[:, 100:] = 1
    recipe = dataclasses.replace(
        ph.PhotographicRecipe(), downscale_probability=0.0, low_texture_crop_probability=0.0,
        final_resize_probability=0.0,
    )
    example = recipes.synthesize(
        image.astype(np.uint8), recipe, np.random.default_rng(0), positive=False,
        labels=labels, natural_depth_of_field=True,
    )
    assert example.label == 1 and example.region_shape == "natural"
    assert example.mask[:, 105:].mean() > 0.9 and example.mask[:, :95].mean() < 0.1


def test_video_motion_streaks_scale_with_the_frame() -> None:
    recipe = ph.PhotographicRecipe()
    scene = ph._Scene(
        textured_photo(72, 128, 9), *(2 * [ph.srgb_to_linear(textured_photo(72, 128, 9))]),
        None, np.random.default_rng(0),
    )
    blur = ph._scenario("video_motion", scene, recipe, sigma=1.0)
    # 5-20 px at 1280 px is 0.5-2 px at 128 px: effective sigma length / sqrt(24), >= 0.5.
    assert 0.5 <= blur.strength <= 20 / 10 / math.sqrt(24) + 0.6
    assert blur.mask.all()


def test_a_label_map_of_a_photo_stored_turned_is_turned_back() -> None:
    # Portrait BSDS500 photos are stored as landscape while their segmentations stay upright.
    image = textured_photo(60, 90, 4)
    image[10:30, 20:70] = 250
    upright = np.zeros((60, 90), np.int32)
    upright[10:30, 20:70] = 1
    for k in (1, 3):
        stored = np.rot90(upright, k)
        np.testing.assert_array_equal(segments.orient_labels(stored, image), upright)
    np.testing.assert_array_equal(segments.orient_labels(upright, image), upright)
