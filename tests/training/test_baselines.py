"""Laplacian baselines: blur lowers the variance and lights up the energy map where it is."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sbdn_pipeline.training import baselines, metrics


def _texture(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (size, size, 3)).astype("uint8")


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(image.astype("float32"), sigma=(sigma, sigma, 0)).astype("uint8")


def test_laplacian_of_a_single_bright_pixel_by_hand():
    grey = np.zeros((5, 5), dtype="float32")
    grey[2, 2] = 10.0
    response = baselines.laplacian(grey)
    assert response[2, 2] == -40.0
    assert response[1, 2] == response[2, 3] == 10.0
    assert baselines.laplacian_variance(np.zeros((5, 5))) == 0.0


def test_blur_lowers_variance_and_raises_the_blur_score():
    sharp = _texture()
    blurred = _blur(sharp, 2.0)
    assert baselines.laplacian_variance(blurred) < 0.1 * baselines.laplacian_variance(sharp)
    assert baselines.laplacian_blur_score(blurred) > baselines.laplacian_blur_score(sharp)


def test_energy_map_marks_the_blurred_half():
    image = _texture(128)
    image[:, 64:] = _blur(image, 3.0)[:, 64:]
    truth = np.zeros((128, 128), dtype="float32")
    truth[:, 64:] = 1.0

    blur_map = baselines.laplacian_energy_map(image)

    assert blur_map.shape == (128, 128) and blur_map.dtype == np.float32
    assert blur_map.min() >= 0.0 and blur_map.max() <= 1.0
    assert metrics.iou(blur_map, truth) > 0.8


def test_energy_map_of_a_flat_image_is_undecided():
    np.testing.assert_allclose(
        baselines.laplacian_energy_map(np.full((20, 30, 3), 7, "uint8")), 0.5
    )


def test_energy_window_scales_with_the_long_side():
    assert baselines.energy_window(1024, 768) == 32
    assert baselines.energy_window(100, 50) == 7


def test_non_image_shapes_are_rejected():
    with pytest.raises(ValueError, match="RGB"):
        baselines.laplacian_variance(np.zeros((4, 4, 4)))


# --- blur effect, LBP sharpness, registry ---------------------------------------------------


def _half_blurred(size: int = 128, sigma: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    image = _texture(size)
    image[:, size // 2 :] = _blur(image, sigma)[:, size // 2 :]
    truth = np.zeros((size, size), dtype="float32")
    truth[:, size // 2 :] = 1.0
    return image, truth


@pytest.mark.parametrize("shape", [(40, 50, 3), (64, 64), (33, 70, 3)])
@pytest.mark.parametrize("sigma", [0.0, 1.5])
def test_blur_effect_equals_skimage(shape, sigma):
    skimage_measure = pytest.importorskip("skimage.measure")
    rng = np.random.default_rng(len(shape) * 10 + shape[1])
    image = rng.uniform(0, 255, shape).astype("uint8")
    if sigma:
        image = ndimage.gaussian_filter(
            image.astype("float32"), (sigma, sigma, 0)[: image.ndim]
        ).astype("uint8")
    expected = skimage_measure.blur_effect(image, channel_axis=-1 if image.ndim == 3 else None)
    assert baselines.blur_effect(image) == pytest.approx(expected, abs=1e-6)
    # Also with another re-blur size.
    expected_5 = skimage_measure.blur_effect(
        image, h_size=5, channel_axis=-1 if image.ndim == 3 else None
    )
    assert baselines.blur_effect(image, h_size=5) == pytest.approx(expected_5, abs=1e-6)


def test_blur_effect_rises_with_blur_and_is_one_on_a_flat_image():
    sharp = _texture()
    assert baselines.blur_effect(_blur(sharp, 2.0)) > baselines.blur_effect(sharp) + 0.2
    assert baselines.blur_effect(np.full((16, 16), 9.0)) == 1.0


def test_lbp_codes_by_hand():
    # A dark centre pixel with every neighbour much brighter: all 8 bits set -> code 8.
    grey = np.full((5, 5), 200.0, dtype="float32")
    grey[2, 2] = 0.0
    assert baselines.lbp_sharp_pixels(grey)[2, 2]
    # Flat: no bit set anywhere -> code 0, not sharp.
    assert not baselines.lbp_sharp_pixels(np.full((5, 5), 50.0)).any()
    # A bright centre: every neighbour is darker, no bit set -> code 0.
    grey = np.full((5, 5), 0.0, dtype="float32")
    grey[2, 2] = 200.0
    assert not baselines.lbp_sharp_pixels(grey)[2, 2]
    # Differences below T_LBP (0.016 * 255 = 4.1 grey levels) do not count.
    grey = np.full((5, 5), 4.0, dtype="float32")
    grey[2, 2] = 0.0
    assert not baselines.lbp_sharp_pixels(grey)[2, 2]


def test_lbp_non_uniform_pattern_is_code_nine():
    # Neighbours alternate brighter / not brighter around the circle: 8 transitions.
    grey = np.zeros((3, 3), dtype="float32")
    grey[1, 2] = grey[1, 0] = grey[0, 1] = grey[2, 1] = 100.0  # the 4 axial neighbours
    # Diagonal samples are bilinear: 0.5 * (0.293 * 100 + 0.293 * 100) ~ 29 > 4.1 too, so
    # make the corners strongly negative to pull the diagonals below the centre.
    grey[0, 0] = grey[0, 2] = grey[2, 0] = grey[2, 2] = -200.0
    assert baselines.lbp_sharp_pixels(grey)[1, 1]


def test_lbp_map_is_higher_on_the_blurred_half_than_on_the_sharp_texture():
    image, truth = _half_blurred()

    blur_map = baselines.lbp_blur_map(image)

    assert blur_map.shape == (128, 128) and blur_map.dtype == np.float32
    assert 0.0 <= blur_map.min() and blur_map.max() <= 1.0
    assert blur_map[:, 72:].mean() > blur_map[:, :56].mean() + 0.4
    assert metrics.iou(blur_map, truth) > 0.8
    np.testing.assert_allclose(baselines.lbp_blur_map(np.full((20, 30, 3), 7, "uint8")), 0.5)


def test_lbp_score_is_higher_for_a_blurred_image():
    sharp = _texture()
    assert baselines.lbp_blur_score(_blur(sharp, 2.0)) > baselines.lbp_blur_score(sharp) + 0.3


def test_lbp_windows_follow_the_paper_at_640_px_and_scale():
    assert baselines.lbp_windows(427, 640) == (11, 15, 21)
    assert baselines.lbp_windows(1024, 768) == (19, 25, 35)
    assert baselines.lbp_windows(48, 64) == (5,)


def test_registry_lists_each_baseline_once_by_kind():
    names = set(baselines.BASELINES)
    image_level = {b.name for b in baselines.image_level_baselines()}
    maps = {b.name for b in baselines.map_baselines()}
    assert image_level == {"blur-effect", "laplacian-variance", "lbp-mean"}
    assert maps == {"laplacian-energy", "lbp-map", "all-blurred"}
    assert image_level | maps == names and not image_level & maps
    image, _ = _half_blurred(64)
    for baseline in baselines.image_level_baselines():
        assert np.isfinite(baseline.compute(image))
    for baseline in baselines.map_baselines():
        output = baseline.compute(image)
        assert output.shape == (64, 64) and output.dtype == np.float32
