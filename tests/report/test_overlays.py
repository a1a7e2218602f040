"""Blur overlays: red exactly where the mask says blurred, region boxes, hash-only file names."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from sbdn_pipeline import masks
from sbdn_pipeline.report import overlays

GREY = 128


def _grey(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def _is_red(pixels: np.ndarray) -> np.ndarray:
    red, green, blue = (pixels[..., i].astype(int) for i in range(3))
    return (red > GREY + 40) & (green < GREY - 40) & (blue < GREY - 40)


def test_only_pixels_inside_the_mask_turn_red() -> None:
    pixels = _grey(60, 80)
    # A 15 x 20 mask (1 mask pixel = 4 x 4 image pixels): a blurred block at rows 3-8, cols 5-12.
    mask = np.zeros((15, 20), np.float32)
    mask[3:9, 5:13] = 0.9
    out = overlays.render_overlay(pixels, mask, [], mask_threshold=0.5)
    red = _is_red(out)
    expected = np.zeros((60, 80), bool)
    expected[12:36, 20:52] = True
    assert np.array_equal(red, expected)
    # Outside the mask not a single pixel changed; the input was not modified.
    assert np.array_equal(out[~expected], pixels[~expected])
    assert (pixels == GREY).all()


def test_pixels_below_the_mask_threshold_stay_untouched() -> None:
    mask = np.full((4, 4), 0.4, np.float32)
    out = overlays.render_overlay(_grey(16, 16), mask, [], mask_threshold=0.5)
    assert (out == GREY).all()
    out = overlays.render_overlay(_grey(16, 16), mask, [], mask_threshold=0.4)
    assert _is_red(out).all()


def test_region_boxes_are_drawn_on_their_outline_in_original_coordinates() -> None:
    # Boxes are given in ORIGINAL pixels (200 x 100) and drawn on a half-size copy.
    region = {"x_min": 40, "y_min": 20, "x_max": 120, "y_max": 80}
    out = overlays.render_overlay(_grey(50, 100), np.zeros((10, 20), np.float32), [region],
                                  mask_threshold=0.5, image_size=(200, 100))
    box = np.all(out == overlays.BOX_RGB, axis=-1)
    # Scaled box: x 20..60, y 10..40 (max exclusive); its four edges are drawn...
    assert box[10, 20:60].all() and box[39, 20:60].all()
    assert box[10:40, 20].all() and box[10:40, 59].all()
    # ...its inside and everything outside it are not.
    assert not box[15:35, 25:55].any()
    assert not box[:10].any() and not box[41:].any() and not box[:, :20].any()


def test_mask_with_other_aspect_ratio_is_stretched_over_the_whole_image() -> None:
    mask = np.zeros((2, 2), np.float32)
    mask[:, 1] = 1.0  # right half blurred
    out = overlays.render_overlay(_grey(30, 90), mask, [], mask_threshold=0.5)
    red = _is_red(out)
    assert red[:, 46:].all() and not red[:, :44].any()


def test_overlay_of_a_real_mask_png_matches_its_region_boxes() -> None:
    mask = np.zeros((24, 32), np.float32)
    mask[4:12, 8:20] = 1.0
    decoded = masks.decode_mask_png(masks.encode_mask_png(mask))
    stats = masks.mask_statistics(decoded, threshold=0.5, image_width=320, image_height=240)
    regions = [vars(region) for region in stats.regions]
    out = overlays.render_overlay(_grey(240, 320), decoded, regions, mask_threshold=0.5)
    box = np.all(out == overlays.BOX_RGB, axis=-1)
    assert regions[0]["x_min"] == 80 and regions[0]["x_max"] == 200
    assert box[40:120, 80].all() and box[40:120, 199].all()
    assert _is_red(out)[50:110, 90:190].all()


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        overlays.render_overlay(np.zeros((4, 4, 3), np.float32), np.zeros((2, 2)), [], 0.5)
    with pytest.raises(ValueError, match="2-D mask"):
        overlays.render_overlay(_grey(4, 4), np.zeros((2, 2, 1)), [], 0.5)


def test_jpeg_encoding_keeps_size_and_the_red_tint() -> None:
    mask = np.ones((2, 2), np.float32)
    out = overlays.render_overlay(_grey(40, 60), mask, [], mask_threshold=0.5)
    data = overlays.encode_overlay_jpeg(out)
    assert data[:3] == b"\xff\xd8\xff"
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert decoded.shape == (40, 60, 3) and _is_red(decoded).all()


def test_overlay_name_comes_from_the_image_hash_only() -> None:
    data = b"the same bytes at two paths"
    sha = hashlib.sha256(data).hexdigest()
    # Two copies of one image (e.g. /a/x.jpg and /b/private/y.jpg) share one overlay name,
    # and the name carries no part of either path.
    assert overlays.overlay_name(sha) == f"{sha}.jpg"
    assert "/" not in overlays.overlay_name(sha)
    for bad in ("../../etc/passwd", sha.upper(), sha[:-1], sha + "0", "", None):
        with pytest.raises(ValueError):
            overlays.overlay_name(bad)
