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
