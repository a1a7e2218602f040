"""The one letterbox geometry, bit for bit: numpy path, tf.data tensor path, mask mapping."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sbdn_pipeline import geometry
from sbdn_pipeline.training import reader

S = 64
# (height, width): landscape, portrait, smaller than the input (enlarged), exact size, odd
# sizes, a side that rounds to itself while the other is resized (shrinking and enlarging),
# and one-pixel images.
SHAPES = [
    (50, 100), (120, 30), (300, 200), (200, 300),  # landscape / portrait, shrunk
    (20, 40), (40, 20), (33, 17),                  # smaller than the input: enlarged
    (64, 64), (64, 40), (40, 64),                  # exact size (content == image)
    (77, 33), (127, 129), (65, 64), (63, 65), (255, 255),  # odd sizes
    (10, 63), (10, 65), (65, 10),                  # short side unchanged, long side resized
    (1, 1), (1, 5), (5, 1000),
]


def _image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[: height // 2, : width // 2] = 255  # a saturated block: area may overshoot 255
    return image


def _through_tf_data(image: np.ndarray) -> tuple[np.ndarray, geometry.LetterboxInfo]:
    """The tensor path as the training reader runs it: inside a traced Dataset.map."""
    def view(pixels: tf.Tensor):
        return geometry.letterbox_tensor(pixels, S), geometry.letterbox_geometry_tensor(
            tf.shape(pixels)[0], tf.shape(pixels)[1], S)

    dataset = tf.data.Dataset.from_tensors(tf.constant(image)).map(view)
    boxed, (content_h, content_w, top, left) = next(dataset.as_numpy_iterator())
    return boxed, geometry.LetterboxInfo(S, int(top), int(left), int(content_h), int(content_w))


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
def test_numpy_and_tf_data_paths_are_bit_identical(shape: tuple[int, int]) -> None:
    image = _image(*shape, seed=shape[0] * 1000 + shape[1])
    expected, info = geometry.letterbox(image, S)
    boxed, tensor_info = _through_tf_data(image)
    assert tensor_info == info == geometry.letterbox_geometry(*shape, S)
    assert boxed.dtype == expected.dtype == np.float32 and boxed.shape == (S, S, 3)
    np.testing.assert_array_equal(boxed, expected)
    # Eager calls and float32 inputs (the reader stacks float RGB + mask) change nothing.
    np.testing.assert_array_equal(geometry.letterbox_tensor(tf.constant(image), S), expected)
    np.testing.assert_array_equal(
        geometry.letterbox_tensor(tf.constant(image, tf.float32), S), expected)
    # Black padding outside the content, exactly.
    content = np.zeros((S, S), bool)
    content[info.top:info.top + info.content_height,
            info.left:info.left + info.content_width] = True
    assert np.all(expected[~content] == 0.0)


@pytest.mark.parametrize("shape", [(50, 100), (120, 30), (64, 64), (10, 63), (33, 17)])
def test_training_reader_letterbox_is_the_same_geometry_clipped(shape: tuple[int, int]) -> None:
    image = _image(*shape, seed=7)
    mask = np.zeros((*shape, 1), np.float32)
    mask[:, : shape[1] // 2] = 1.0
    expected, info = geometry.letterbox(image, S)
    pixels, boxed_mask = reader.letterbox_pair(tf.constant(image), tf.constant(mask), S)
    np.testing.assert_array_equal(pixels.numpy(), np.clip(expected, 0.0, 255.0))
    # The mask went through the same geometry: its own letterbox, clipped to [0, 1].
    mask_rgb = np.repeat(mask, 3, axis=-1)
    mask_boxed = geometry.letterbox_tensor(tf.constant(mask_rgb), S).numpy()[..., :1]
    np.testing.assert_array_equal(boxed_mask.numpy(), np.clip(mask_boxed, 0.0, 1.0))
    assert boxed_mask.numpy()[: info.top].max(initial=0.0) == 0.0


def test_resize_method_follows_the_content_size() -> None:
    def method(height: int, width: int) -> str:
        return geometry.resize_method(height, width, geometry.letterbox_geometry(height, width, S))

    assert method(64, 64) == method(40, 64) == "none"
    assert method(128, 100) == "area"
    assert method(20, 40) == "bilinear"
    assert method(10, 65) == "bilinear"  # rows unchanged: decided by the rows, as always was


@pytest.mark.parametrize("stride", [1, 4, 8])
@pytest.mark.parametrize("shape", [(50, 100), (120, 30), (64, 64), (33, 77), (1, 9)])
def test_unletterbox_mask_inverts_the_geometry(shape: tuple[int, int], stride: int) -> None:
    info = geometry.letterbox_geometry(*shape, S)
    # A mask that marks the letterbox content at the input's resolution, then at 1/stride.
    full = np.zeros((S, S), np.float32)
    full[info.top:info.top + info.content_height, info.left:info.left + info.content_width] = 1
    side = S // stride
    coarse = full.reshape(side, stride, side, stride).max(axis=(1, 3))
    cropped = geometry.unletterbox_mask(coarse[..., None], info)
    # Exactly the content, rounded outwards to whole mask pixels: nothing of it cut off, and
    # no row or column that is padding only.
    assert np.all(cropped == 1.0) and cropped.sum() == coarse.sum()
    top, left, bottom, right = geometry.mask_window(info, side)
    assert cropped.shape == (bottom - top, right - left)
    if stride == 1:
        assert cropped.shape == (info.content_height, info.content_width)
        # Letterbox then unletterbox gives back the content pixels themselves.
        image = _image(*shape, seed=3)
        boxed, _ = geometry.letterbox(image, S)
        restored = geometry.unletterbox_mask(boxed[..., 0], info)
        if (info.content_height, info.content_width) == shape:
            np.testing.assert_array_equal(restored, image[..., 0].astype(np.float32))
        # and resizing the cropped mask to the image covers the whole image.
        resized = geometry.resize_mask(cropped, *shape)
        assert resized.shape == shape and np.all(resized == 1.0)


def test_shrink_to_long_side_uses_the_shared_rounding() -> None:
    image = _image(301, 97, seed=1)
    shrunk = geometry.shrink_to_long_side(image, 64)
    assert shrunk.shape[:2] == geometry.shrunk_size(301, 97, 64) == (64, 21)
    assert shrunk.dtype == np.uint8
    assert geometry.shrink_to_long_side(image, 400) is image


def test_pure_geometry_imports_without_tensorflow() -> None:
    code = ("import sys; from sbdn_pipeline import geometry; "
            "geometry.letterbox_geometry(3, 4, 8); geometry.unletterbox_mask("
            "__import__('numpy').zeros((8, 8)), geometry.letterbox_geometry(3, 4, 8)); "
            "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
