"""Mask statistics and encoding (no Beam, hand-checkable arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from sbdn_pipeline import masks


def test_area_fraction_and_regions_in_original_pixels() -> None:
    mask = np.zeros((10, 20), np.float32)
    mask[0:5, 0:10] = 0.9   # region A: 50 px
    mask[8:10, 15:20] = 0.6  # region B: 10 px
    mask[7, 0] = 0.4         # below threshold
    stats = masks.mask_statistics(mask, threshold=0.5, image_width=200, image_height=100,
                                  min_region_fraction=0.0)
    assert stats.blur_area_fraction == pytest.approx(60 / 200)
    assert len(stats.regions) == 2
    big, small = stats.regions
    # Each mask pixel covers 10 x 10 image pixels; max bounds are exclusive.
    assert (big.x_min, big.y_min, big.x_max, big.y_max) == (0, 0, 100, 50)
    assert big.area_fraction == pytest.approx(0.25)
    assert big.mean_confidence == pytest.approx(0.9)
    assert (small.x_min, small.y_min, small.x_max, small.y_max) == (150, 80, 200, 100)
    assert small.mean_confidence == pytest.approx(0.6)


def test_diagonal_neighbours_form_one_region() -> None:
    mask = np.eye(6, dtype=np.float32)
    stats = masks.mask_statistics(mask, threshold=0.5, image_width=6, image_height=6,
                                  min_region_fraction=0.0)
    assert len(stats.regions) == 1


def test_tiny_regions_are_not_listed_but_count_towards_area() -> None:
    mask = np.zeros((100, 100), np.float32)
    mask[0:50, :] = 1.0
    mask[90, 90] = 1.0  # one pixel = 0.0001 of the image
    stats = masks.mask_statistics(mask, threshold=0.5, image_width=100, image_height=100,
                                  min_region_fraction=0.001)
    assert len(stats.regions) == 1
    assert stats.blur_area_fraction == pytest.approx(0.5001)


def test_sharp_mask_has_no_regions() -> None:
    stats = masks.mask_statistics(np.zeros((8, 8), np.float32), threshold=0.5,
                                  image_width=64, image_height=64)
    assert stats.blur_area_fraction == 0.0 and stats.regions == []


def test_mask_png_round_trip_keeps_confidences_to_8_bits() -> None:
    mask = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    decoded = masks.decode_mask_png(masks.encode_mask_png(mask))
    assert decoded.shape == (8, 8)
    assert np.abs(decoded - mask).max() <= 0.5 / 255 + 1e-6


def _step_image(height: int, width: int, edge: int, seed: int = 0) -> np.ndarray:
    """Dark left of column ``edge``, bright right of it, with a little sensor-like noise."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 200.0)
    image[:, :edge] = 50.0
    return np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8)


def test_guided_refinement_moves_a_blocky_mask_edge_onto_the_image_edge() -> None:
    from sbdn_pipeline.geometry import resize_mask

    height, width, edge, block = 96, 200, 101, 8
    image = _step_image(height, width, edge)
    # The identifier's blocky answer: blurred up to the block border at 96, 5 px short.
    coarse = np.zeros((height // block, width // block), np.float32)
    coarse[:, : 96 // block] = 1.0
    refined = masks.refine_mask(coarse, image)
    assert refined.shape == (height, width) and refined.dtype == np.float32
    assert refined.min() >= 0.0 and refined.max() <= 1.0
    for row in refined:
        assert np.all(row[: edge - 1] >= 0.5) and np.all(row[edge + 1:] < 0.5)
    # Plain bilinear upsampling keeps the block border instead.
    plain = resize_mask(coarse, height, width)
    assert int(np.argmax(plain[48] < 0.5)) <= 97


def test_guided_refinement_keeps_a_uniform_mask_uniform() -> None:
    image = _step_image(64, 64, 30)
    for value in (0.0, 1.0):
        refined = masks.refine_mask(np.full((16, 16), value, np.float32), image)
        np.testing.assert_allclose(refined, value, atol=1e-4)


def test_guided_filter_smooths_where_the_guide_is_flat() -> None:
    flat = np.full((40, 40), 0.5, np.float32)
    noisy = np.random.default_rng(1).random((40, 40)).astype(np.float32)
    smoothed = masks.guided_filter(flat, noisy, radius=3, eps=1e-2)
    assert smoothed.std() < noisy.std() / 3


def test_stored_mask_is_reduced_to_the_png_long_side() -> None:
    big = np.random.default_rng(2).random((768, 1024)).astype(np.float32)
    stored = masks.reduce_for_storage(big, 512)
    assert stored.shape == (384, 512)
    assert stored.mean() == pytest.approx(big.mean(), abs=1e-3)
    small = np.zeros((100, 80), np.float32)
    assert masks.reduce_for_storage(small, 512).shape == (100, 80)
