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
