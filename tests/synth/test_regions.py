"""Region shapes: soft blend weights of the right size, binary label masks from them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sbdn_pipeline.synth import regions
from tests.synth.tinyset import textured_photo

HEIGHT, WIDTH = 90, 140


def _alpha(shape: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if shape == "whole":
        return regions.whole_alpha(HEIGHT, WIDTH)
    if shape == "side":
        return regions.side_alpha(HEIGHT, WIDTH, rng, transition_px=10)[0]
    if shape == "foreground_background":
        return regions.foreground_background_alpha(textured_photo(HEIGHT, WIDTH, seed), rng, 3)[0]
    return getattr(regions, f"{shape}_alpha")(HEIGHT, WIDTH, rng, 3.0)


@pytest.mark.parametrize("shape", regions.REGION_SHAPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_region_shape_is_a_frame_sized_alpha_in_unit_range(shape: str, seed: int) -> None:
    alpha = _alpha(shape, seed)
    assert alpha.shape == (HEIGHT, WIDTH)
    assert alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert regions.label_mask(alpha).any()


def test_label_mask_is_where_alpha_is_at_least_one_half() -> None:
    alpha = np.array([[0.0, 0.49, 0.5, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(regions.label_mask(alpha), [[0, 0, 1, 1]])


def test_feathered_rectangle_has_soft_border_but_keeps_its_label_area() -> None:
    alpha = regions.rectangle_alpha(HEIGHT, WIDTH, np.random.default_rng(5), feather_px=6)
    soft = (alpha > 0.02) & (alpha < 0.98)
    assert soft.sum() > 0  # no paste seam: a band of partial blending
    mask = regions.label_mask(alpha).astype(bool)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    assert box.mean() > 0.95  # the label is (almost exactly) a filled rectangle


def test_side_region_grows_monotonically_across_its_transition() -> None:
    alpha, depth = regions.side_alpha(HEIGHT, WIDTH, np.random.default_rng(0), transition_px=20)
    mask = regions.label_mask(alpha).astype(bool)
    assert 0.1 < mask.mean() < 0.9
    # Depth is zero on the sharp side and grows inside the blurred side.
    assert depth[~mask].max() <= 0.05
    assert depth[mask].max() > 0.5
    # A graded transition, not a step.
    assert ((alpha > 0.1) & (alpha < 0.9)).sum() >= WIDTH


def test_foreground_background_region_is_one_connected_piece() -> None:
    for seed in range(4):
        alpha, _ = regions.foreground_background_alpha(
            textured_photo(120, 160, seed), np.random.default_rng(seed), 2.0
        )
        _, pieces = ndimage.label(regions.label_mask(alpha))
        assert pieces == 1
