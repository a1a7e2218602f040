"""Small generated test images and tiny real Keras models with known behaviour.

The shared part lives in ``benchmarks/`` (the scale benchmark uses it too, and benchmarks
import nothing from tests): :mod:`benchmarks.synthetic_images` (sharp, blurred and
half-blurred texture), :mod:`benchmarks.tiny_models` (hand-set Laplacian-energy models whose
verdicts on those images are predictable) and :mod:`benchmarks.hostile_files`. This module
re-exports them under the names the tests use and adds the fixtures only tests need.
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.hostile_files import (
    FAR_FUTURE_MTIME_NS,
    HOSTILE_EMPTIED,
    HOSTILE_FAR_FUTURE,
    HOSTILE_LOCKED_FOLDER,
    HOSTILE_OUTPUT,
    HOSTILE_VANISHES,
    png_header_only,
    progressive_jpeg,
    write_hostile_files,
)
from benchmarks.synthetic_images import (
    blurred_image,
    encode,
    half_blurred_image,
    sharp_image,
)
from benchmarks.tiny_models import (
    TINY_INPUT_SIZE,
    TINY_MASK_STRIDE,
    save_tiny_models,
)

__all__ = [
    "FAR_FUTURE_MTIME_NS",
    "HOSTILE_EMPTIED",
    "HOSTILE_FAR_FUTURE",
    "HOSTILE_LOCKED_FOLDER",
    "HOSTILE_OUTPUT",
    "HOSTILE_VANISHES",
    "TINY_INPUT_SIZE",
    "TINY_MASK_STRIDE",
    "blurred_image",
    "encode",
    "half_blurred_image",
    "png_header_only",
    "progressive_jpeg",
    "save_constant_classifier",
    "save_tiny_models",
    "sharp_image",
    "write_hostile_files",
    "write_mixed_folder",
]


def save_constant_classifier(path: str, value: float, size: int = TINY_INPUT_SIZE) -> str:
    """A broken classifier that answers ``value`` (e.g. NaN or 7.0) for every image."""
    import keras

    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    answer = keras.layers.Dense(1, name="answer")  # no sigmoid: the output is the bias
    model = keras.Model(inputs, answer(pooled), name="constant_classifier")
    answer.set_weights([np.zeros((3, 1), np.float32), np.array([value], np.float32)])
    model.save(path)
    return path


def write_mixed_folder(folder: str, n_sharp: int = 4, n_blurred: int = 4) -> dict[str, object]:
    """Write a mixed set of images; returns paths grouped by what should happen to them."""
    expected: dict[str, list[str]] = {"sharp": [], "blurry": [], "error": []}

    def write(name: str, data: bytes, group: str) -> str:
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        expected[group].append(os.path.abspath(path))
        return path

    for index in range(n_sharp):
        write(f"sharp_{index}.png", encode(sharp_image(96, 96, index), "PNG"), "sharp")
    for index in range(n_blurred):
        write(f"blurred_{index}.png", encode(blurred_image(96, 96, 100 + index), "PNG"), "blurry")
    write("half/half_blurred.png", encode(half_blurred_image(96, 96, 7), "PNG"), "blurry")
    write("formats/sharp.jpg", encode(sharp_image(96, 96, 11), "JPEG", quality=98), "sharp")
    write("formats/blurred.webp", encode(blurred_image(96, 96, 12), "WEBP", lossless=True),
          "blurry")
    write("formats/blurred.tiff", encode(blurred_image(96, 96, 13), "TIFF"), "blurry")
    write("formats/sharp.bmp", encode(sharp_image(96, 96, 14), "BMP"), "sharp")
    write("formats/blurred.gif", encode(blurred_image(96, 96, 15), "GIF"), "blurry")
    write("formats/blurred grey ü.png",
          encode(blurred_image(96, 96, 16)[..., 0].copy(), "PNG"), "blurry")
    truncated = encode(sharp_image(96, 96, 17), "JPEG")
    write("corrupt/truncated.jpg", truncated[: len(truncated) // 3], "error")
    write("corrupt/empty.jpg", b"", "error")
    write("corrupt/error_page.jpg", b"<!DOCTYPE html><html><body>403 Forbidden</body></html>",
          "error")
    write("corrupt/random.png", np.random.default_rng(5).bytes(2048), "error")
    write("corrupt/bomb.png", png_header_only(50_000, 50_000), "error")
    return expected
