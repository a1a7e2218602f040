"""Tile plans, tile extraction, pooling of tile probabilities and stitching of tile masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sbdn_pipeline import tiling


def covered_pixels(plan: tiling.TilePlan) -> np.ndarray:
    seen = np.zeros((plan.scaled_height, plan.scaled_width), bool)
    for top, left in plan.origins:
        seen[max(top, 0):top + plan.tile, max(left, 0):left + plan.tile] = True
    return seen


@pytest.mark.parametrize("height, width", [(321, 481), (768, 1024), (720, 1280)])
def test_a_large_enough_budget_analyses_at_native_scale_and_covers(height, width) -> None:
    plan = tiling.plan_tiles(height, width, tile=384, budget=64)
    assert plan.scale == 1.0
    assert (plan.scaled_height, plan.scaled_width) == (height, width)
    assert plan.count == math.ceil(height / 384) * math.ceil(width / 384)
    assert plan.covers and covered_pixels(plan).all()


def test_481x321_is_padded_not_upscaled() -> None:
    plan = tiling.plan_tiles(321, 481, tile=384, budget=4)
    # 321 rows < 384: one tile row, the content centred (black above and below).
    assert plan.scale == 1.0 and plan.tops == (-31,)
    assert plan.lefts == (0, 481 - 384)
    tiles = tiling.extract_tiles(np.full((321, 481, 3), 200, np.uint8), plan)
    assert tiles.shape == (2, 384, 384, 3) and tiles.dtype == np.float32
    assert np.all(tiles[:, :31] == 0) and np.all(tiles[:, 31:352] == 200)
    assert np.all(tiles[:, 352:] == 0)


def test_1024x768_uses_the_smallest_downscale_the_budget_allows() -> None:
    # 6 tiles cover it at native scale; 4 need 768 px on the long side (1.333x); 2 need 2x.
    assert tiling.plan_tiles(768, 1024, 384, 6).scale == 1.0
    four = tiling.plan_tiles(768, 1024, 384, 4)
    assert four.scale == pytest.approx(1024 / 768)
    assert (four.scaled_height, four.scaled_width) == (576, 768)
    assert four.count == 4 and four.covers
    two = tiling.plan_tiles(768, 1024, 384, 2)
    assert two.scale == 2.0 and (two.scaled_height, two.scaled_width) == (384, 512)
    assert two.count == 2 and two.covers and covered_pixels(two).all()


def test_1280x720_frame_within_2x() -> None:
    plan = tiling.plan_tiles(720, 1280, 384, 2)
    assert 1 < plan.scale < 2 and plan.count == 2 and plan.covers
    assert plan.scaled_height <= 384 and plan.scaled_width <= 768


def test_4000x3000_spreads_the_budget_evenly_at_2x() -> None:
    plan = tiling.plan_tiles(3000, 4000, 384, 4)
    assert plan.scale == 2.0 and (plan.scaled_height, plan.scaled_width) == (1500, 2000)
    assert not plan.covers and plan.count == 4
    assert len(plan.tops) == 2 and len(plan.lefts) == 2  # a 2x2 grid, not a strip
    # Each tile is centred in its quarter of the frame.
    centres_y = [top + 192 for top in plan.tops]
    centres_x = [left + 192 for left in plan.lefts]
    assert centres_y == pytest.approx([375, 1125], abs=1)
    assert centres_x == pytest.approx([500, 1500], abs=1)
    for top, left in plan.origins:
        assert 0 <= top and top + 384 <= 1500 and 0 <= left and left + 384 <= 2000


def test_identifier_tiles_start_on_whole_mask_pixels() -> None:
    for height, width in [(321, 481), (768, 1024), (720, 1280), (3000, 4000), (633, 949)]:
        plan = tiling.plan_tiles(height, width, 320, 6, align=4)
        assert all(top % 4 == 0 for top in plan.tops)
        assert all(left % 4 == 0 for left in plan.lefts)
        if plan.covers:
            assert covered_pixels(plan).all()


def test_budget_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        tiling.plan_tiles(100, 100, 64, 0)


def test_extract_tiles_checks_the_pixels_are_at_the_plan_scale() -> None:
    plan = tiling.plan_tiles(768, 1024, 384, 2)
    with pytest.raises(ValueError, match="plan expects"):
        tiling.extract_tiles(np.zeros((768, 1024, 3), np.uint8), plan)


def test_tiles_hold_the_right_pixels() -> None:
    image = np.arange(200 * 300 * 3, dtype=np.float32).reshape(200, 300, 3)
    plan = tiling.plan_tiles(200, 300, 128, 16)
    tiles = tiling.extract_tiles(image, plan)
    for tile, (top, left) in zip(tiles, plan.origins):
        np.testing.assert_array_equal(tile, image[top:top + 128, left:left + 128])


def test_pooling_functions_on_hand_made_arrays() -> None:
    tiles = np.array([0.1, 0.9, 0.2, 0.8, 0.3])
    assert tiling.pool_mean(tiles) == pytest.approx(0.46)
    assert tiling.pool_topk(tiles) == pytest.approx((0.9 + 0.8 + 0.3) / 3)  # ceil(5/2) = 3
    assert tiling.pool_topk(np.array([0.2, 0.6])) == pytest.approx(0.6)
    assert tiling.pool_max(tiles) == pytest.approx(0.9)
    assert tiling.pool_probabilities(tiles, 0.2, "mean+global") == pytest.approx(0.33)
    assert tiling.pool_probabilities(tiles, 0.2, "max+global") == pytest.approx(0.55)
    assert tiling.pool_probabilities(None, 0.7, "global") == pytest.approx(0.7)
    everything = tiling.pool_all(tiles, 0.2)
    assert set(everything) == set(tiling.POOLING_METHODS)


def test_pooling_refuses_unknown_methods_and_missing_views() -> None:
    with pytest.raises(ValueError, match="unknown tile pooling"):
        tiling.pool_probabilities(np.array([0.5]), 0.5, "median")
    with pytest.raises(ValueError, match="needs the global view"):
        tiling.pool_probabilities(np.array([0.5]), None, "mean+global")
    assert tiling.needs_global_view("topk+global") and not tiling.needs_global_view("topk")


def test_stitching_shapes_and_overlap_average() -> None:
    plan = tiling.plan_tiles(100, 150, 64, 16, align=4)
    assert plan.covers
    constant = np.full((plan.count, 16, 16, 1), 0.25, np.float32)
    mask, weight = tiling.stitch_masks(constant, plan, stride=4)
    assert mask.shape == weight.shape == (25, 38)  # ceil(100/4), ceil(150/4)
    assert np.all(weight > 0)
    np.testing.assert_allclose(mask, 0.25, atol=1e-6)


def test_stitching_puts_each_tile_mask_where_its_tile_was() -> None:
    # Tile masks equal to "is the tile's centre in the left half of the image": stitched,
    # the left columns must be 1 and the right columns 0.
    plan = tiling.plan_tiles(64, 256, 64, 4, align=4)
    assert plan.count == 4 and plan.lefts == (0, 64, 128, 192)
    tile_masks = np.stack([np.full((16, 16), float(left + 32 < 128), np.float32)
                           for _, left in plan.origins])
    mask, _ = tiling.stitch_masks(tile_masks, plan, stride=4)
    assert np.all(mask[:, :32] == 1.0) and np.all(mask[:, 32:] == 0.0)


def test_stitching_leaves_zero_weight_where_no_tile_looked() -> None:
    plan = tiling.plan_tiles(3000, 4000, 320, 2, align=4)
    assert not plan.covers
    masks = np.ones((plan.count, 80, 80), np.float32)
    mask, weight = tiling.stitch_masks(masks, plan, stride=4)
    assert mask.shape == (375, 500)
    assert 0 < (weight > 0).mean() < 0.5
    assert np.all(mask[weight == 0] == 0)


def test_stitching_refuses_masks_that_do_not_fit_the_plan() -> None:
    plan = tiling.plan_tiles(100, 150, 64, 16, align=4)
    with pytest.raises(ValueError, match="do not fit"):
        tiling.stitch_masks(np.zeros((plan.count, 8, 8)), plan, stride=4)


def test_an_uncapped_plan_always_covers_within_its_budget() -> None:
    # The identifier's plans: a mask must cover the frame, so they may go beyond 2x.
    for height, width in [(321, 481), (768, 1024), (720, 1280), (3000, 4000)]:
        for budget in (1, 2, 4):
            plan = tiling.plan_tiles(height, width, 320, budget, align=4, max_scale=None)
            assert plan.covers and plan.count <= budget
            assert covered_pixels(plan).all()
    assert tiling.plan_tiles(768, 1024, 320, 2, align=4, max_scale=None).scale == 2.4
