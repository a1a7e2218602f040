"""The fixed high-pass stem: silent on flat areas, loud on fine detail, serialisable."""

from __future__ import annotations

import numpy as np

from sbdn_pipeline.architectures.high_pass_filters import HighPassFilters


def _interior(x: np.ndarray) -> np.ndarray:
    return x[:, 2:-2, 2:-2, :]  # ignore the zero-padded border


def test_flat_image_has_no_high_pass_energy_and_passes_rgb_through():
    flat = np.full((1, 16, 16, 3), 100.0, dtype="float32")
    out = _interior(np.asarray(HighPassFilters()(flat)))
    assert out.shape[-1] == 9
    np.testing.assert_allclose(out[..., :3], 100.0 / 127.5, rtol=1e-5)
    np.testing.assert_allclose(out[..., 3:], 0.0, atol=1e-5)


def test_checkerboard_gives_strong_laplacian_and_blur_lowers_it():
    rows, cols = np.indices((16, 16))
    checker = ((rows + cols) % 2 * 255.0).astype("float32")
    image = np.repeat(checker[np.newaxis, :, :, np.newaxis], 3, axis=-1)
    # A 3x3 box blur of the same pattern: the energy blur removes is what the stem measures.
    padded = np.pad(checker, 1, mode="reflect")
    blurred = sum(padded[i : i + 16, j : j + 16] for i in range(3) for j in range(3)) / 9.0
    blurred_image = np.repeat(blurred[np.newaxis, :, :, np.newaxis], 3, axis=-1)

    layer = HighPassFilters(gain=1.0)
    sharp_out = _interior(np.asarray(layer(image)))
    blurred_out = _interior(np.asarray(layer(blurred_image.astype("float32"))))

    # Laplacian of a 0/1 checkerboard is +-4 (luma weights sum to 1);
    # |lap| = relu(lap) + relu(-lap).
    np.testing.assert_allclose(sharp_out[..., 3] + sharp_out[..., 6], 4.0, rtol=1e-4)
    assert blurred_out[..., 3:].mean() < 0.25 * sharp_out[..., 3:].mean()


def test_config_round_trip_keeps_the_gain():
    layer = HighPassFilters(gain=3.0, name="hp")
    clone = HighPassFilters.from_config(layer.get_config())
    assert clone.gain == 3.0
    image = np.random.default_rng(1).uniform(0, 255, (1, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(clone(image)), np.asarray(layer(image)))
