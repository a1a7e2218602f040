"""Non-blur degradations used for hard negatives (and, equally, on positives)."""

from __future__ import annotations

import numpy as np

from sbdn_pipeline.synth import degradations
from tests.synth.tinyset import textured_photo


def test_low_texture_crop_picks_the_flat_part_of_the_photo() -> None:
    photo = textured_photo(120, 240, 0)
    photo[:, 120:] = 128  # the right half is a flat wall
    crop = degradations.low_texture_crop(photo, np.random.default_rng(0), side_fraction=0.5)
    assert crop.shape == (60, 60, 3)
    assert crop.std() < 5


def test_night_darkening_lowers_brightness() -> None:
    photo = textured_photo(40, 40, 1)
    dark = degradations.darken_night(photo, gamma=2.0, gain=0.5)
    assert dark.mean() < 0.5 * photo.mean()


def test_sensor_noise_adds_variation_around_the_signal() -> None:
    flat = np.full((64, 64, 3), 100, dtype=np.uint8)
    noisy = degradations.add_sensor_noise(
        flat, np.random.default_rng(0), read_sigma=3.0, shot_scale=0.2
    )
    assert abs(noisy.mean() - 100) < 1
    assert 2 < noisy.std() < 8


def test_jpeg_recompression_changes_pixels_but_not_size() -> None:
    photo = textured_photo(48, 64, 2)
    recompressed = degradations.jpeg_recompress(photo, quality=30)
    assert recompressed.shape == photo.shape
    assert np.abs(recompressed.astype(int) - photo).mean() > 1


def test_cap_long_side_only_ever_shrinks() -> None:
    photo = textured_photo(100, 200, 3)
    assert degradations.cap_long_side(photo, 100).shape == (50, 100, 3)
    assert degradations.cap_long_side(photo, 400).shape == (100, 200, 3)
